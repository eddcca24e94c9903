"""A typed async client for the modyard services' HTTP APIs.

It grows with each service's API. Errors come back as :class:`ModyardAPIError`, which carries the
RFC 9457 problem the service answered with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from modyard.common.api_schemas import Health, PingReceipts, PingSent
from modyard.common.settings import CommonSettings
from modyard.contracts.api import ApiModel
from modyard.contracts.api.deployer import DeploymentOut, DeploymentPage
from modyard.contracts.api.gateway import (
    ActionAnswer,
    CellCredentials,
    CellDetail,
    CellSummary,
    RequestEntry,
    SlotBundles,
)
from modyard.contracts.api.installer import (
    AclRuleOut,
    ComponentOut,
    InstallationOut,
    InstallResult,
    RevocationOut,
    WorkspaceOut,
)
from modyard.contracts.api.registry import (
    ModuleDetail,
    ModuleSummary,
    PublishedVersion,
    PublishResult,
)
from modyard.contracts.api.runtime import (
    AppInstanceOut,
    AutomationOut,
    BulkResult,
    DeliveryOut,
    EndpointOutput,
    FlowOut,
    FlowValidation,
    PublishedApp,
    PublishOut,
    RunOut,
    SourceOut,
    UnprocessedOut,
    WebhookOut,
    WorkerCredentialsOut,
)

UPLOAD_CHUNK = 64 * 1024
SERVICES = ("registry", "installer", "runtime", "appcell-gateway", "deployer")

Answer = TypeVar("Answer", bound=ApiModel)


class ModyardAPIError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "about:blank"))
        self.detail = str(problem.get("detail") or problem.get("title") or "no detail")
        super().__init__(f"{status}: {self.detail}")


class Readiness(BaseModel):
    service: str
    ready: bool
    checks: dict[str, str]
    detail: str | None = None


ServiceName = Literal["registry", "installer", "runtime", "appcell-gateway", "deployer"]


class ModyardClient:
    def __init__(
        self,
        urls: dict[str, str],
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._urls = dict(urls)
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)
        self.registry = RegistryClient(self)
        self.installer = InstallerClient(self)
        self.runtime = RuntimeClient(self)
        self.automations = AutomationsClient(self)
        self.gateway = GatewayClient(self)
        self.deployer = DeployerClient(self)

    @classmethod
    def from_settings(
        cls, settings: CommonSettings | None = None, *, token: str | None = None
    ) -> Self:
        settings = settings or CommonSettings()
        return cls(settings.service_urls(), token=token)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def url(self, service: str) -> str:
        try:
            return self._urls[service]
        except KeyError:
            raise ValueError(
                f"unknown service {service!r}; known: {', '.join(self._urls)}"
            ) from None

    async def _request(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self._http.request(method, self.url(service) + path, **kwargs)
        if response.is_error:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise ModyardAPIError(
                response.status_code, problem if isinstance(problem, dict) else {}
            )
        return response

    # -- health ---------------------------------------------------------------------------------

    async def health(self, service: str) -> Health:
        return Health.model_validate((await self._request("GET", service, "/healthz")).json())

    async def readiness(self, service: str) -> Readiness:
        """Readiness of ``service``; a 503 is an answer here, not an error."""
        response = await self._http.get(self.url(service) + "/readyz")
        body = response.json()
        return Readiness(
            service=service,
            ready=response.status_code == 200,
            checks=body.get("checks", {}),
            detail=body.get("detail"),
        )

    # -- diagnostics ----------------------------------------------------------------------------

    async def send_ping(self, service: str) -> PingSent:
        response = await self._request("POST", service, "/v1/diagnostics/pings")
        return PingSent.model_validate(response.json())

    async def ping_receipts(self, service: str, ping_id: str) -> PingReceipts:
        response = await self._request("GET", service, f"/v1/diagnostics/pings/{ping_id}")
        return PingReceipts.model_validate(response.json())


class _ServiceAPI:
    """One service's part of :class:`ModyardClient`: requests go to ``service``'s URL."""

    service: str

    def __init__(self, client: ModyardClient) -> None:
        self._client = client

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self._client._request(method, self.service, path, **kwargs)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._call(method, path, **kwargs)
        return response.json() if response.content else None

    async def _answer(self, model: type[Answer], method: str, path: str, **kwargs: Any) -> Answer:
        """The answer read as ``model`` (modyard.contracts.api)."""
        return model.model_validate(await self._json(method, path, **kwargs))

    async def _answers(
        self, model: type[Answer], method: str, path: str, **kwargs: Any
    ) -> list[Answer]:
        """A list answer (a bare list, or the ``items`` of an unpaged listing)."""
        found = await self._json(method, path, **kwargs)
        items = found["items"] if isinstance(found, dict) else found
        return [model.model_validate(item) for item in items]

    async def _pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every item of a cursor-paged ``{items, next_cursor}`` listing, page after page."""
        params = dict(params)
        while True:
            page = await self._json("GET", path, params=params)
            for item in page["items"]:
                yield item
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]


class RegistryClient(_ServiceAPI):
    """The registry's API (``ModyardClient.registry``)."""

    service = "registry"

    async def publish_archive(
        self,
        data: bytes,
        *,
        version: str | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> PublishResult:
        """Upload a zip; ``version`` is needed when the module's files carry none (Slingr,
        Prisme.ai, AppCell); ``on_progress`` is called with the bytes sent so far."""

        async def chunks() -> AsyncIterator[bytes]:
            for offset in range(0, len(data), UPLOAD_CHUNK):
                yield data[offset : offset + UPLOAD_CHUNK]
                if on_progress is not None:
                    on_progress(min(offset + UPLOAD_CHUNK, len(data)))

        response = await self._call(
            "POST",
            "/v1/modules",
            params={"version": version} if version else None,
            content=chunks(),
            headers={"content-type": "application/zip", "content-length": str(len(data))},
        )
        return PublishResult.model_validate(response.json())

    async def publish_container(
        self, manifest: dict[str, Any], *, version: str | None = None
    ) -> PublishResult:
        params = {"version": version} if version else None
        return await self._answer(
            PublishResult, "POST", "/v1/modules", json=manifest, params=params
        )

    async def search(
        self,
        q: str | None = None,
        *,
        format: str | None = None,
        kind: str | None = None,
        limit: int = 50,
    ) -> AsyncIterator[ModuleSummary]:
        """Every matching module, following the cursor across pages."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("q", q), ("format", format), ("kind", kind)):
            if value:
                params[key] = value
        async for item in self._pages("/v1/modules", params):
            yield ModuleSummary.model_validate(item)

    async def module(self, name: str) -> ModuleDetail:
        return await self._answer(ModuleDetail, "GET", f"/v1/modules/{name}")

    async def version(self, name: str, version: str) -> PublishedVersion:
        path = f"/v1/modules/{name}/versions/{version}"
        return await self._answer(PublishedVersion, "GET", path)

    async def download(self, name: str, version: str) -> tuple[bytes, str]:
        """The archive's bytes and its file name."""
        path = f"/v1/modules/{name}/versions/{version}/archive"
        response = await self._call("GET", path)
        disposition = response.headers.get("content-disposition", "")
        filename = disposition.split('filename="')[-1].rstrip('"') or f"{name}-{version}.zip"
        return response.content, filename

    async def yank(self, name: str, version: str, reason: str | None = None) -> PublishedVersion:
        params = {"reason": reason} if reason else {}
        path = f"/v1/modules/{name}/versions/{version}"
        return await self._answer(PublishedVersion, "DELETE", path, params=params)


class InstallerClient(_ServiceAPI):
    """The installer's API (``ModyardClient.installer``)."""

    service = "installer"

    async def install(
        self,
        workspace: str,
        module: str,
        *,
        version: str | None = None,
        slug: str | None = None,
        config: dict[str, Any] | None = None,
        pinned: bool = False,
        idempotency_key: str | None = None,
    ) -> InstallResult:
        body: dict[str, Any] = {"module": module, "config": config or {}, "pinned": pinned}
        if version:
            body["version"] = version
        if slug:
            body["slug"] = slug
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        path = f"/v1/workspaces/{workspace}/installations"
        return await self._answer(InstallResult, "POST", path, json=body, headers=headers)

    async def installations(self, workspace: str) -> list[InstallationOut]:
        path = f"/v1/workspaces/{workspace}/installations"
        return await self._answers(InstallationOut, "GET", path)

    async def installation(self, workspace: str, slug: str) -> InstallationOut:
        path = f"/v1/workspaces/{workspace}/installations/{slug}"
        return await self._answer(InstallationOut, "GET", path)

    async def configure(self, workspace: str, slug: str, config: dict[str, Any]) -> InstallationOut:
        path = f"/v1/workspaces/{workspace}/installations/{slug}/config"
        return await self._answer(InstallationOut, "PATCH", path, json={"config": config})

    async def upgrade(
        self, workspace: str, slug: str, version: str | None, *, accept_breaking: bool = False
    ) -> InstallationOut:
        path = f"/v1/workspaces/{workspace}/installations/{slug}/upgrade"
        body = {"version": version, "accept_breaking": accept_breaking}
        return await self._answer(InstallationOut, "POST", path, json=body)

    async def remove(self, workspace: str, slug: str, *, force: bool = False) -> None:
        path = f"/v1/workspaces/{workspace}/installations/{slug}"
        await self._json("DELETE", path, params={"force": "true"} if force else {})

    async def acl_rules(self, acl_type: str) -> list[AclRuleOut]:
        return await self._answers(AclRuleOut, "GET", f"/v1/acl/{acl_type}")

    async def add_acl_rule(self, acl_type: str, rule: dict[str, Any]) -> AclRuleOut:
        return await self._answer(AclRuleOut, "POST", f"/v1/acl/{acl_type}", json=rule)

    async def remove_acl_rule(self, acl_type: str, rule_id: str) -> None:
        await self._json("DELETE", f"/v1/acl/{acl_type}/{rule_id}")

    async def grant_users(self, workspace: str, slug: str) -> AclRuleOut:
        """Open the installation's components to every user (``{role: user, resource:
        "<module>.*", action: use}``); the rule that was added, or the one that already was."""
        path = f"/v1/workspaces/{workspace}/installations/{slug}/acl/grant-users"
        return await self._answer(AclRuleOut, "POST", path)

    async def workspaces(self) -> list[WorkspaceOut]:
        return await self._answers(WorkspaceOut, "GET", "/v1/workspaces")

    async def workspace(self, workspace: str) -> WorkspaceOut:
        return await self._answer(WorkspaceOut, "GET", f"/v1/workspaces/{workspace}")

    async def components(self, workspace: str, *, as_user: str | None = None) -> list[ComponentOut]:
        """The components the caller (or ``as_user``) may use, each with the ``ref`` flows take."""
        params = {"as": as_user} if as_user else {}
        path = f"/v1/workspaces/{workspace}/components"
        return await self._answers(ComponentOut, "GET", path, params=params)

    async def create_workspace(
        self, slug: str, name: str, members: list[str] | None = None
    ) -> WorkspaceOut:
        body = {"slug": slug, "name": name, "members": members or []}
        return await self._answer(WorkspaceOut, "POST", "/v1/workspaces", json=body)

    async def delete_workspace(self, workspace: str) -> None:
        await self._json("DELETE", f"/v1/workspaces/{workspace}")

    async def set_member(self, workspace: str, subject: str, role: str) -> WorkspaceOut:
        """Add ``subject`` to the workspace, or change their role; the workspace as it now is."""
        path = f"/v1/workspaces/{workspace}/members/{quote(subject, safe='')}"
        return await self._answer(WorkspaceOut, "PUT", path, json={"role": role})

    async def remove_member(self, workspace: str, subject: str) -> WorkspaceOut:
        path = f"/v1/workspaces/{workspace}/members/{quote(subject, safe='')}"
        return await self._answer(WorkspaceOut, "DELETE", path)

    async def revoke_token(
        self, *, token: str | None = None, jti: str | None = None, subject: str | None = None
    ) -> RevocationOut:
        """Revoke a token (the token itself, or operators: its ``jti``); every service refuses
        it within ``MODYARD_TOKEN_DENIALS_POLL_SECONDS``."""
        body = {"token": token} if token is not None else {"jti": jti, "subject": subject}
        return await self._answer(RevocationOut, "POST", "/v1/tokens/revocations", json=body)


#: Passed as ``payload`` to :meth:`RuntimeClient.retry_unprocessed`: retry with the stored payload.
KEEP_PAYLOAD: Any = object()


def _filters(**values: Any) -> dict[str, Any]:
    """Query parameters of the set filters; datetimes in ISO 8601."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else str(value)
        for key, value in values.items()
        if value is not None
    }


class RuntimeClient(_ServiceAPI):
    """The runtime's API (``ModyardClient.runtime``): flows, unprocessed messages, system webhooks."""

    service = "runtime"

    # -- flows ----------------------------------------------------------------------------------

    async def flows(self, workspace: str, *, status: str | None = None) -> list[FlowOut]:
        path = f"/v1/workspaces/{workspace}/flows"
        return await self._answers(FlowOut, "GET", path, params=_filters(status=status))

    async def flow(self, workspace: str, flow_id: str) -> FlowOut:
        return await self._answer(FlowOut, "GET", f"/v1/workspaces/{workspace}/flows/{flow_id}")

    async def create_flow(self, workspace: str, flow: dict[str, Any]) -> FlowOut:
        """``flow`` holds ``name``, optionally ``description`` and ``owner``, and ``definition``."""
        path = f"/v1/workspaces/{workspace}/flows"
        return await self._answer(FlowOut, "POST", path, json=flow)

    async def replace_flow(self, workspace: str, flow_id: str, flow: dict[str, Any]) -> FlowOut:
        path = f"/v1/workspaces/{workspace}/flows/{flow_id}"
        return await self._answer(FlowOut, "PUT", path, json=flow)

    async def delete_flow(self, workspace: str, flow_id: str) -> None:
        await self._json("DELETE", f"/v1/workspaces/{workspace}/flows/{flow_id}")

    async def validate_flow(self, workspace: str, flow_id: str) -> FlowValidation:
        path = f"/v1/workspaces/{workspace}/flows/{flow_id}/validation"
        return await self._answer(FlowValidation, "GET", path)

    async def start_flow(self, workspace: str, flow_id: str) -> FlowOut:
        path = f"/v1/workspaces/{workspace}/flows/{flow_id}/start"
        return await self._answer(FlowOut, "POST", path)

    async def stop_flow(self, workspace: str, flow_id: str) -> FlowOut:
        path = f"/v1/workspaces/{workspace}/flows/{flow_id}/stop"
        return await self._answer(FlowOut, "POST", path)

    # -- unprocessed messages -------------------------------------------------------------------

    async def unprocessed(
        self,
        *,
        workspace: str | None = None,
        flow: str | None = None,
        node: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[UnprocessedOut]:
        """Every matching unprocessed message, oldest first, following the cursor across pages."""
        params = _filters(
            workspace=workspace, flow=flow, node=node, since=since, until=until, limit=page_size
        )
        async for item in self._pages("/v1/unprocessed-messages", params):
            yield UnprocessedOut.model_validate(item)

    async def unprocessed_message(self, message_id: str) -> UnprocessedOut:
        path = f"/v1/unprocessed-messages/{message_id}"
        return await self._answer(UnprocessedOut, "GET", path)

    async def retry_unprocessed(self, message_id: str, payload: Any = KEEP_PAYLOAD) -> BulkResult:
        """Put the message back into its flow, with ``payload`` instead of its own when given
        (``None`` included: it is a payload too)."""
        kwargs = {} if payload is KEEP_PAYLOAD else {"json": {"payload": payload}}
        path = f"/v1/unprocessed-messages/{message_id}"
        return await self._answer(BulkResult, "POST", path, **kwargs)

    async def retry_unprocessed_matching(
        self,
        *,
        workspace: str | None = None,
        flow: str | None = None,
        node: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
    ) -> BulkResult:
        """Retry every matching message (at most ``limit``; the runtime's default is 1000)."""
        params = _filters(
            workspace=workspace, flow=flow, node=node, since=since, until=until, limit=limit
        )
        path = "/v1/unprocessed-messages/retry"
        return await self._answer(BulkResult, "POST", path, params=params)

    async def delete_unprocessed(self, message_id: str) -> None:
        await self._json("DELETE", f"/v1/unprocessed-messages/{message_id}")

    async def delete_unprocessed_matching(
        self,
        *,
        workspace: str | None = None,
        flow: str | None = None,
        node: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> BulkResult:
        """Delete every matching message; with no filter at all, every message (operators only)."""
        params = _filters(workspace=workspace, flow=flow, node=node, since=since, until=until)
        path = "/v1/unprocessed-messages"
        return await self._answer(BulkResult, "DELETE", path, params=params)

    # -- module workers' broker credentials -----------------------------------------------------

    async def issue_worker_credentials(
        self, workspace: str, slug: str, *, close_connections: bool = False
    ) -> WorkerCredentialsOut:
        """New broker credentials for the installation's module worker (the password rotates)."""
        path = f"/v1/workspaces/{workspace}/installations/{slug}/worker-credentials"
        body = {"close_connections": close_connections}
        return await self._answer(WorkerCredentialsOut, "POST", path, json=body)

    async def revoke_worker_credentials(self, workspace: str, slug: str) -> None:
        path = f"/v1/workspaces/{workspace}/installations/{slug}/worker-credentials"
        await self._json("DELETE", path)

    # -- system webhooks ------------------------------------------------------------------------

    async def webhooks(self) -> list[WebhookOut]:
        return await self._answers(WebhookOut, "GET", "/v1/system-webhooks")

    async def webhook(self, webhook_id: str) -> WebhookOut:
        return await self._answer(WebhookOut, "GET", f"/v1/system-webhooks/{webhook_id}")

    async def add_webhook(
        self,
        url: str,
        *,
        events: list[str],
        secret: str,
        description: str | None = None,
    ) -> WebhookOut:
        body: dict[str, Any] = {"url": url, "events": events, "secret": secret}
        if description is not None:
            body["description"] = description
        return await self._answer(WebhookOut, "POST", "/v1/system-webhooks", json=body)

    async def remove_webhook(self, webhook_id: str) -> None:
        await self._json("DELETE", f"/v1/system-webhooks/{webhook_id}")

    async def deliveries(
        self, webhook_id: str, *, status: str | None = None, page_size: int = 50
    ) -> AsyncIterator[DeliveryOut]:
        """The webhook's deliveries, newest first, following the cursor across pages."""
        params = _filters(status=status, limit=page_size)
        async for item in self._pages(f"/v1/system-webhooks/{webhook_id}/deliveries", params):
            yield DeliveryOut.model_validate(item)

    async def test_webhook(self, webhook_id: str) -> DeliveryOut:
        """Enqueue a ``webhook.test`` delivery; it shows up in the webhook's deliveries."""
        return await self._answer(DeliveryOut, "POST", f"/v1/system-webhooks/{webhook_id}/test")


class AutomationsClient(_ServiceAPI):
    """The runtime's automations and apps (``ModyardClient.automations``)."""

    service = "runtime"

    async def automations(self, workspace: str) -> list[AutomationOut]:
        path = f"/v1/workspaces/{workspace}/automations"
        return await self._answers(AutomationOut, "GET", path)

    async def save(self, workspace: str, slug: str, definition: dict[str, Any]) -> AutomationOut:
        path = f"/v1/workspaces/{workspace}/automations/{slug}"
        return await self._answer(AutomationOut, "PUT", path, json=definition)

    async def import_source(self, workspace: str, source: dict[str, Any]) -> SourceOut:
        """Replace the workspace's automations and settings with a Prisme.ai workspace YAML."""
        path = f"/v1/workspaces/{workspace}/source"
        return await self._answer(SourceOut, "PUT", path, json=source)

    async def run(self, workspace: str, name: str, payload: dict[str, Any]) -> RunOut:
        path = f"/v1/workspaces/{workspace}/automations/{name}/run"
        return await self._answer(RunOut, "POST", path, json={"payload": payload})

    async def call_endpoint(self, workspace: str, name: str, body: Any = None) -> EndpointOutput:
        """POST ``body`` to the workspace's automation endpoint ``name``: its automation's output."""
        path = f"/v1/workspaces/{workspace}/endpoints/{name}"
        output: EndpointOutput = await self._json("POST", path, json=body)
        return output

    async def publish(self, workspace: str, app_name: str) -> PublishOut:
        path = f"/v1/workspaces/{workspace}/publish"
        return await self._answer(PublishOut, "POST", path, json={"app_name": app_name})

    async def apps(self) -> list[PublishedApp]:
        return await self._answers(PublishedApp, "GET", "/v1/apps")

    async def instances(self, workspace: str) -> list[AppInstanceOut]:
        return await self._answers(AppInstanceOut, "GET", f"/v1/workspaces/{workspace}/apps")


class GatewayClient(_ServiceAPI):
    """The appcell-gateway's API (``ModyardClient.gateway``): cells, their actions, the request log.

    A cell is named by its installation id or ``<workspace>:<slug>``.
    """

    service = "appcell-gateway"

    async def cells(
        self, *, workspace: str | None = None, status: str | None = None
    ) -> list[CellSummary]:
        params = _filters(workspace=workspace, status=status)
        return await self._answers(CellSummary, "GET", "/v1/cells", params=params)

    async def cell(self, cell: str) -> CellDetail:
        return await self._answer(CellDetail, "GET", f"/v1/cells/{cell}")

    async def credentials(self, cell: str) -> CellCredentials:
        """The broker URL, vhost, user and queue of the cell's worker (operators only)."""
        return await self._answer(CellCredentials, "GET", f"/v1/cells/{cell}/credentials")

    async def call(
        self,
        cell: str,
        plugin: str,
        action: str,
        payload: Any,
        *,
        customer_product_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ActionAnswer:
        """``{status, result, postpayload}``; a refused or failed call raises ModyardAPIError.
        A call retried with the same ``idempotency_key`` does not run the action twice."""
        body = {"payload": payload, "customer_product_id": customer_product_id}
        path = f"/v1/cells/{cell}/plugins/{plugin}/actions/{action}"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._answer(ActionAnswer, "POST", path, json=body, headers=headers)

    async def requests(
        self, *, cell: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RequestEntry]:
        params = _filters(cell=cell, status=status, limit=limit)
        return await self._answers(RequestEntry, "GET", "/v1/requests", params=params)

    async def slot(
        self, slot: str, *, product: str | None = None, workspace: str | None = None
    ) -> SlotBundles:
        """The frontend bundles to load into ``slot``, dependencies first."""
        params = _filters(product=product, workspace=workspace)
        return await self._answer(SlotBundles, "GET", f"/v1/ui/slots/{slot}", params=params)


class DeployerClient(_ServiceAPI):
    """The deployer's API (``ModyardClient.deployer``): container modules on Docker.

    ``ref`` is a deployment's id or name. Changes answer at once (202) with the deployment; the
    deployer then makes it so, which :meth:`deployment` shows (``status``, ``progress``).
    """

    service = "deployer"

    async def create(
        self,
        *,
        name: str,
        image: str,
        registry_host: str,
        token_id: str,
        token: str,
        tag: str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> DeploymentOut:
        body: dict[str, Any] = {
            "name": name,
            "image": image,
            "registry_host": registry_host,
            "token_id": token_id,
            "token": token,
            "env": env or {},
        }
        if tag is not None:
            body["tag"] = tag
        if port is not None:
            body["port"] = port
        return await self._answer(DeploymentOut, "POST", "/v1/deployments", json=body)

    async def deployments(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> DeploymentPage:
        """One page: ``{items, next_cursor}``."""
        params = _filters(name=name, status=status, cursor=cursor, limit=limit)
        return await self._answer(DeploymentPage, "GET", "/v1/deployments", params=params)

    async def all_deployments(self, *, status: str | None = None) -> AsyncIterator[DeploymentOut]:
        async for item in self._pages("/v1/deployments", _filters(status=status)):
            yield DeploymentOut.model_validate(item)

    async def deployment(self, ref: str) -> DeploymentOut:
        return await self._answer(DeploymentOut, "GET", f"/v1/deployments/{ref}")

    async def deploy(self, ref: str) -> DeploymentOut:
        return await self._answer(DeploymentOut, "POST", f"/v1/deployments/{ref}/deploy")

    async def suspend(self, ref: str) -> DeploymentOut:
        return await self._answer(DeploymentOut, "POST", f"/v1/deployments/{ref}/suspend")

    async def resume(self, ref: str) -> DeploymentOut:
        return await self._answer(DeploymentOut, "POST", f"/v1/deployments/{ref}/resume")

    async def update(
        self,
        ref: str,
        *,
        tag: str | None = None,
        env: dict[str, str] | None = None,
        token_id: str | None = None,
        token: str | None = None,
        port: int | None = None,
    ) -> DeploymentOut:
        body = {
            key: value
            for key, value in {
                "tag": tag,
                "env": env,
                "token_id": token_id,
                "token": token,
                "port": port,
            }.items()
            if value is not None
        }
        return await self._answer(DeploymentOut, "PATCH", f"/v1/deployments/{ref}", json=body)

    async def delete(self, ref: str) -> DeploymentOut:
        return await self._answer(DeploymentOut, "DELETE", f"/v1/deployments/{ref}")

    async def logs(
        self,
        ref: str,
        *,
        tail: int | None = None,
        since: datetime | None = None,
        follow: bool = False,
        timestamps: bool = False,
    ) -> AsyncIterator[str]:
        """The container's output as it comes (with ``follow``, until the caller stops)."""
        params = _filters(tail=tail, since=since)
        params.update(follow=str(follow).lower(), timestamps=str(timestamps).lower())
        url = self._client.url(self.service) + f"/v1/deployments/{ref}/logs"
        # No read timeout while following: output may be quiet for a long time.
        timeout = httpx.Timeout(10.0, read=None) if follow else httpx.Timeout(30.0)
        async with self._client._http.stream(
            "GET", url, params=params, timeout=timeout
        ) as response:
            if response.is_error:
                await response.aread()
                try:
                    problem = response.json()
                except ValueError:
                    problem = {"detail": response.text[:500]}
                raise ModyardAPIError(
                    response.status_code, problem if isinstance(problem, dict) else {}
                )
            async for text in response.aiter_text():
                yield text
