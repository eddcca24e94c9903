"""HTTP API of automations (thin: the service layer does the work)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.auth import CurrentPrincipal, Principal
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, BadRequest, Forbidden
from modyard.common.localized_text import localized_text
from modyard.runtime import changes
from modyard.runtime.automations import store
from modyard.runtime.automations.models import AutomationWorkspace, StoredAutomation
from modyard.runtime.automations.schemas import (
    AutomationIn,
    AutomationOut,
    AutomationPage,
    RunIn,
    RunOut,
    SettingsIn,
    SettingsOut,
    SourceIn,
    SourceOut,
)
from modyard.runtime.automations.secret_config import MASK, secret_fields
from modyard.runtime.automations.service import AutomationService, Target
from modyard.runtime.context import SLOT

router = APIRouter(prefix="/v1/workspaces/{ws}", tags=["automations"], responses=PROBLEM_RESPONSES)
Workspace = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Slug = Annotated[str, Path(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ -]{0,127}$")]
# Endpoint and run names may be an instance's: "nlu.french.embed".
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,254}$")]
# An endpoint's may be a path ("v1/users/42" for the endpoint "v1/users/:id").
EndpointPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .:/@~+=,-]{0,511}$")]


def check_workspace(principal: Principal, workspace: str) -> None:
    if not principal.can_access_workspace(workspace):
        raise Forbidden(f"Your token does not name workspace {workspace!r}.")


def automations_of(request: Request) -> AutomationService:
    service = SLOT.get(request).automations
    if service is None:
        raise RuntimeError("the automations start with the app's lifespan")
    return service


async def _changed(session: AsyncSession, request: Request, workspace: str) -> None:
    """Every runtime process rebuilds the workspace's program once this commits."""
    await changes.automations_changed(session, workspace, SLOT.get(request).news)


def _out(row: StoredAutomation) -> AutomationOut:
    definition = row.definition
    return AutomationOut(
        slug=row.slug,
        name=localized_text(definition.get("name")) or row.slug,
        description=localized_text(definition.get("description")),
        private=bool(definition.get("private")),
        disabled=bool(definition.get("disabled")),
        validateArguments=bool(definition.get("validateArguments")),
        arguments=definition.get("arguments") or {},
        when=definition.get("when") or {},
        do=definition.get("do") or [],
        output=definition.get("output"),
    )


def _settings_out(row: AutomationWorkspace) -> SettingsOut:
    secrets = secret_fields(row.config_schema)
    value = {k: MASK if k in secrets else v for k, v in row.config_value.items()}
    return SettingsOut(
        workspace=row.workspace,
        label=row.label,
        description=row.description,
        photo=row.photo,
        config={"schema": row.config_schema, "value": value},
        app_name=row.app_name,
        published_version=row.published_version,
    )


def _run_out(target: Target, result: Any) -> RunOut:
    return RunOut(
        automation=target.automation.slug,
        app_instance=".".join(target.program.path) or None,
        output=result.output,
        emitted=result.emitted,
        duration_ms=round(result.duration_ms, 3),
    )


@router.get("/automations", response_model=AutomationPage)
async def list_automations(
    ws: Workspace, session: DbSession, principal: CurrentPrincipal
) -> AutomationPage:
    """The workspace's own automations (an app instance's come with its app)."""
    check_workspace(principal, ws)
    return AutomationPage(items=[_out(row) for row in await store.list_automations(session, ws)])


@router.put("/automations/{slug}", response_model=AutomationOut)
async def save_automation(
    ws: Workspace,
    slug: Slug,
    body: AutomationIn,
    request: Request,
    response: Response,
    session: DbSession,
    principal: CurrentPrincipal,
) -> AutomationOut:
    """Create or replace an automation; every expression is checked (422 with pointers)."""
    check_workspace(principal, ws)
    _, created = await store.save_automation(session, ws, slug, body.model_dump(exclude_none=True))
    await _changed(session, request, ws)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return _out(await store.get_automation(session, ws, slug))


@router.get("/automations/{slug}", response_model=AutomationOut)
async def get_automation(
    ws: Workspace, slug: Slug, session: DbSession, principal: CurrentPrincipal
) -> AutomationOut:
    check_workspace(principal, ws)
    return _out(await store.get_automation(session, ws, slug))


@router.delete(
    "/automations/{slug}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
async def delete_automation(
    ws: Workspace, slug: Slug, request: Request, session: DbSession, principal: CurrentPrincipal
) -> Response:
    check_workspace(principal, ws)
    await store.delete_automation(session, ws, slug)
    await _changed(session, request, ws)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/automations/{name}/run", response_model=RunOut)
async def run_automation(
    ws: Workspace,
    name: Name,
    body: RunIn,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
) -> RunOut:
    """Run an automation now (``toolbox.execute`` for an instance's); ``payload`` is checked
    against its ``arguments`` and given as variables. Private ones answer 403 from here."""
    check_workspace(principal, ws)
    service = automations_of(request)
    target = await service.target(ws, name)
    result = await service.run(
        session,
        ws,
        target,
        arguments=body.payload,
        payload=body.payload,
        body=body.body,
        user={"id": principal.subject},
        trigger={"type": "direct"},
    )
    return _run_out(target, result)


async def call_endpoint(
    ws: Workspace,
    name: EndpointPath,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
) -> Response:
    """Run the automation serving endpoint ``name`` (``functions.execute`` for an instance's):
    the JSON body is ``body`` (its fields also the arguments); ``query``, ``headers``,
    ``method`` and ``pathParams`` are given as Prisme.ai gives them (the query also as
    ``payload.query``). What the automation sets in ``$http`` (``status``, ``headers``) shapes
    the response."""
    check_workspace(principal, ws)
    service = automations_of(request)
    target = await service.endpoint(ws, name)
    raw = await request.body()
    body: Any = None
    if raw:
        try:
            body = await request.json()
        except ValueError:
            raise BadRequest(
                "The request body is not JSON; send JSON (or nothing).", slug="body-not-json"
            ) from None
    result = await service.run(
        session,
        ws,
        target,
        arguments=body if isinstance(body, dict) else None,
        payload={"method": request.method, "query": dict(request.query_params), "body": body},
        body=body,
        user={"id": principal.subject},
        trigger={"type": "endpoint", "endpoint": name},
        inputs={
            "query": dict(request.query_params),
            "headers": {
                key: value
                for key, value in request.headers.items()
                if key.lower() not in _PRIVATE_HEADERS
            },
            "method": request.method,
            "pathParams": dict(target.path_params),
        },
    )
    status_code, headers = _http_response(result.http)
    if status_code in (204, 304):
        return Response(status_code=status_code, headers=headers)
    return JSONResponse(result.output, status_code=status_code, headers=headers)


#: The caller's credentials stay with the runtime: an app's automation never reads them.
_PRIVATE_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
#: Headers the server writes itself.
_SERVER_HEADERS: Final = frozenset(
    {"content-length", "content-type", "transfer-encoding", "connection", "set-cookie"}
)


def _http_response(http: Any) -> tuple[int, dict[str, str]]:
    """The status and headers an automation set in ``$http`` (Prisme.ai:
    ``set: {name: $http, value: {status: 202, headers: {...}}}``). A status outside 200-599 or
    a header that is not text (or would break the response) is ignored: the run succeeded."""
    if not isinstance(http, dict):
        return 200, {}
    status_code = http.get("status")
    if isinstance(status_code, bool) or not isinstance(status_code, int):
        status_code = 200
    if not 200 <= status_code <= 599:
        status_code = 200
    headers: dict[str, str] = {}
    if isinstance(http.get("headers"), dict):
        for key, value in http["headers"].items():
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                continue
            text, name = str(value), str(key)
            if (
                name.lower() in _SERVER_HEADERS
                or _HEADER_NAME.fullmatch(name) is None
                or any(c in text for c in "\r\n\0")
            ):
                continue
            headers[name] = text
    return status_code, headers


# One route per method: a single multi-method route gives every method the same operationId,
# which OpenAPI forbids (generated clients and schemathesis tell operations apart by it).
for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/endpoints/{name:path}",
        call_endpoint,
        methods=[_method],
        operation_id=f"call_endpoint_{_method.lower()}",
        responses={200: {"description": "The automation's output, as JSON"}},
    )


@router.put("/source", response_model=SourceOut)
async def import_source(
    ws: Workspace,
    body: SourceIn,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
) -> SourceOut:
    """Replace the workspace's automations and app settings with a Prisme.ai workspace
    document (single-file source: name, description, photo, config, automations)."""
    check_workspace(principal, ws)
    names = await store.import_source(session, ws, body.model_dump(), request.app.state.secrets)
    await _changed(session, request, ws)
    return SourceOut(workspace=ws, automations=names)


@router.get("/app-settings", response_model=SettingsOut)
async def get_settings(
    ws: Workspace, session: DbSession, principal: CurrentPrincipal
) -> SettingsOut:
    check_workspace(principal, ws)
    return _settings_out(await store.workspace_settings(session, ws))


@router.put("/app-settings", response_model=SettingsOut)
async def save_settings(
    ws: Workspace,
    body: SettingsIn,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
) -> SettingsOut:
    """Label, description, photo and config (``schema`` and ``value``) carried by a publish."""
    check_workspace(principal, ws)
    row = await store.save_settings(
        session,
        ws,
        request.app.state.secrets,
        label=body.label,
        description=body.description,
        photo=body.photo,
        config_schema=body.config.schema_,
        config_value=body.config.value,
    )
    await _changed(session, request, ws)
    return _settings_out(row)
