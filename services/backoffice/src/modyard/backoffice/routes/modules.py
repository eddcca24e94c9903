"""Modules: the catalogue with Installed badges, a module's detail, install / remove / ACL."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from modyard.backoffice.config_form import form_fields, parse_config
from modyard.backoffice.console import ConsoleDep
from modyard.backoffice.modules import (
    docs_url,
    flows_using,
    installations,
    module_rows,
    rules_applying,
)
from modyard.backoffice.rendering import is_htmx, problem_words, render
from modyard.sdk.client import ModyardAPIError

router = APIRouter(tags=["modules"])

NAME = Path(max_length=214, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@/-]*$")
ModuleName = Annotated[str, NAME]
Slug = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Version = Annotated[str | None, Query(max_length=128)]


def _back(name: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"/modules/{quote(name)}?notice={quote(notice)}", status_code=303)


def _install_template(request: Request) -> str:
    """The form alone for htmx (it goes into the module page), else a page around it."""
    return "modules/install_form.html" if is_htmx(request) else "modules/install_page.html"


@router.get("/modules")
async def list_modules(
    request: Request,
    console: ConsoleDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    status: Literal["all", "installed", "available"] = "all",
) -> Response:
    rows, workspace_exists = await module_rows(console.client, console.workspace, q, status)
    context = {
        "console": console,
        "rows": rows,
        "q": q or "",
        "status": status,
        "workspace_exists": workspace_exists,
    }
    if request.headers.get("HX-Target") == "module-list":
        return render(request, "modules/list_items.html", context)
    return render(request, "modules/list.html", context)


async def _detail_context(console: ConsoleDep, name: str, version: str | None) -> dict[str, Any]:
    client = console.client
    module = await client.registry.module(name)
    chosen = version or module.latest_version
    if chosen is None and module.versions:
        chosen = module.versions[0].version
    published = await client.registry.version(name, chosen) if chosen else None
    manifest = published.manifest if published else {}
    components = manifest.get("components") or []
    mine = [
        item for item in await installations(client, console.workspace) or [] if item.module == name
    ]
    flows = await client.runtime.flows(console.workspace) if mine else []
    rules = await client.installer.acl_rules("components")
    return {
        "console": console,
        "module": module,
        "version": chosen,
        "manifest": manifest,
        "components": components,
        "installed": [
            {"installation": item, "flows": flows_using(flows, item.slug)} for item in mine
        ],
        "rules": rules_applying(rules, name, [component["name"] for component in components]),
        "docs_url": docs_url(manifest),
        "config_fields": form_fields(manifest.get("config")),
    }


@router.get("/modules/{name:path}/download")
async def download(name: ModuleName, console: ConsoleDep, version: Version = None) -> Response:
    chosen = version or (await console.client.registry.module(name)).latest_version
    if not chosen:
        return _back(name, "This module has no version to download.")
    data, filename = await console.client.registry.download(name, chosen)
    safe = filename.replace('"', "").replace("/", "_") or "module.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


@router.get("/modules/{name:path}/install")
async def install_form(
    request: Request, name: ModuleName, console: ConsoleDep, version: Version = None
) -> Response:
    context = await _detail_context(console, name, version)
    return render(
        request,
        _install_template(request),
        {**context, "values": {}, "idempotency_key": uuid.uuid4().hex},
    )


@router.post("/modules/{name:path}/install")
async def install(
    request: Request, name: ModuleName, console: ConsoleDep, version: Version = None
) -> Response:
    context = await _detail_context(console, name, version)
    form = {key: str(value) for key, value in (await request.form()).items()}
    config, local_errors = parse_config(context["config_fields"], form)
    slug = form.get("slug", "").strip() or None
    problem: dict[str, Any] | None = None
    if local_errors:
        problem = {
            "status": 422,
            "title": "The configuration is not valid",
            "detail": "Correct the fields below.",
            "errors": [
                {"pointer": f"/body/config/{key}", "detail": text}
                for key, text in local_errors.items()
            ],
            "extra": [],
        }
    else:
        try:
            installed = await console.client.installer.install(
                console.workspace,
                name,
                version=context["version"],
                slug=slug,
                config=config,
                # A double click installs once.
                idempotency_key=form.get("idempotency_key") or None,
            )
        except ModyardAPIError as exc:
            if exc.status >= 500 or exc.status == 401:
                raise
            problem = problem_words(exc)
        else:
            target = f"/modules/{quote(name)}?notice=" + quote(
                f"Installed {name} {installed.version} as {installed.slug}."
            )
            if is_htmx(request):
                return Response(status_code=204, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
    values = {key.removeprefix("config."): value for key, value in form.items()}
    return render(
        request,
        _install_template(request),
        {
            **context,
            "values": values,
            "slug": slug,
            "problem": problem,
            "idempotency_key": form.get("idempotency_key") or uuid.uuid4().hex,
        },
        status_code=int(problem["status"]),
    )


@router.post("/modules/{name:path}/installations/{slug}/remove")
async def remove(name: ModuleName, slug: Slug, console: ConsoleDep) -> Response:
    await console.client.installer.remove(console.workspace, slug)
    return _back(name, f"Removed {slug} from workspace {console.workspace}.")


@router.post("/modules/{name:path}/installations/{slug}/acl")
async def grant_users(name: ModuleName, slug: Slug, console: ConsoleDep) -> Response:
    rule = await console.client.installer.grant_users(console.workspace, slug)
    return _back(name, f"Users may now use {rule.resource} ({rule.action}).")


@router.get("/modules/{name:path}")
async def detail(
    request: Request, name: ModuleName, console: ConsoleDep, version: Version = None
) -> Response:
    context = await _detail_context(console, name, version)
    return render(request, "modules/detail.html", {**context, "idempotency_key": uuid.uuid4().hex})
