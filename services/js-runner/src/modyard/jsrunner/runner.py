"""One component request, from the runtime's JSON to the module's answer.

The request is the one every module executor gets (docs/runtime.md, "Module workers"):
``module``, ``version``, ``component``, ``port``, ``payload``, ``properties``, ``config``,
``flow_id``, ``node_id``, ``correlation_id``. The answer is ``{"outputs": {port: [message…]}}``
or ``{"error": {"message", "retryable", "status"}}``, classified as the runtime classifies
failures (``modyard.runtime.failures``): an HTTP status from ``httpRequest`` decides by status,
timeouts and connection errors are retried, ``CancelError`` is not, a crashed or killed sandbox
is retried, anything unknown is retried (Appmixer's default).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Final

import structlog
from sqlalchemy.exc import DBAPIError

from modyard.common.egress.policy import Allowance, parse_cidr, parse_host_pattern
from modyard.jsrunner import state, timers
from modyard.jsrunner.accounts.credentials import (
    AccountAuth,
    AccountsClient,
    AccountUnavailable,
    refresh_helps,
)
from modyard.jsrunner.context_api import CallScope, ContextApi
from modyard.jsrunner.isolation import Isolation
from modyard.jsrunner.modules import ModuleStore, ModuleUnavailable, ModuleVersion
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.sandbox import SandboxFailure, SandboxSpec
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.jsrunner.slingr import calls as slingr_calls
from modyard.jsrunner.slingr import run as slingr_run

log = structlog.get_logger(__name__)

#: The statuses retried (as ``modyard.runtime.failures.is_retryable_status``: 5xx, 408, 425,
#: 429); every other failing status is not.
_RETRIED_4XX: Final = frozenset({408, 425, 429})
#: Node's and axios's codes of failures that heal by waiting.
_TRANSIENT_CODES: Final = frozenset(
    {
        "ETIMEDOUT",
        "ECONNRESET",
        "ECONNREFUSED",
        "ECONNABORTED",
        "ENOTFOUND",
        "EAI_AGAIN",
        "EPIPE",
        "ERR_NETWORK",
        "ENETUNREACH",
    }
)
#: Codes of failures that never heal by waiting.
_PERMANENT_CODES: Final = frozenset(
    {
        "EGRESS_REFUSED",
        "ERR_INVALID_URL",
        "ERR_BAD_OPTION",
        "ERR_RESPONSE_TOO_LARGE",
        # The sandbox refused a file, a process, a worker or an addon: it will again.
        "ERR_ACCESS_DENIED",
        "ERR_DLOPEN_DISABLED",
        "MODULE_NOT_FOUND",
        # A persistent context member refused what was asked (context_api.py): it will again.
        "ERR_CONTEXT_LIMIT",
        # A Slingr script past its time or memory limit, or its own exception (docs/slingr.md).
        "ERR_SCRIPT_TIMEOUT",
        "ERR_SCRIPT_MEMORY",
        "ERR_SLINGR_EXCEPTION",
        "ERR_NOT_SUPPORTED",
        "ERR_FILE_NOT_FOUND",
    }
)


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in _RETRIED_4XX


def classify(error: dict[str, Any]) -> dict[str, Any]:
    """The runtime's error shape for a component's rejection."""
    message = str(error.get("message") or "the component failed")
    status = error.get("status")
    code = error.get("code")
    if error.get("cancel"):
        return {"message": message, "retryable": False, "kind": "cancelled"}
    if isinstance(status, int) and 100 <= status < 600:
        return {
            "message": message,
            "retryable": is_retryable_status(status),
            "status": status,
            "kind": "http_status",
        }
    if code in _PERMANENT_CODES:
        return {"message": message, "retryable": False, "kind": str(code).lower()}
    if code in _TRANSIENT_CODES:
        return {"message": message, "retryable": True, "kind": "connection"}
    return {"message": message, "retryable": True, "kind": "unknown"}


#: Request ports that call a lifecycle method instead of ``receive`` (the runtime's scheduler
#: sends ``tick``; its flow start and stop send ``start`` and ``stop``).
LIFECYCLE: Final = {"tick": "tick", "start": "start", "stop": "stop"}


def allowance_of(egress: Any) -> Allowance | None:
    """The workspace's egress allow-list the runtime sent with the request (``{"cidrs",
    "hosts"}``, checked when the workspace stored it); None: the deployment's policy only."""
    if not isinstance(egress, dict):
        return None
    try:
        allowance = Allowance(
            cidrs=tuple(parse_cidr(str(item)) for item in egress.get("cidrs") or ()),
            hosts=tuple(parse_host_pattern(str(item)) for item in egress.get("hosts") or ()),
        )
    except ValueError:
        log.warning("js_egress_allowance_ignored", egress=str(egress)[:200])
        return None
    return None if allowance.empty else allowance


def auth_of(config: Any, service: str | None) -> dict[str, Any]:
    """``context.auth``: the installation's configuration under the component's auth service
    when it has such a section, else the whole configuration: for a node that names no account
    (accounts.py; docs/accounts.md)."""
    if not isinstance(config, dict):
        return {}
    if service and isinstance(config.get(service), dict):
        return dict(config[service])
    return dict(config)


#: At most this many of a module's files are read for ``state`` (the official connectors'
#: largest modules have a few hundred).
_SHARED_FILES_READ: Final = 2000


def _names_state(path: Path) -> bool:
    try:
        return re.search(r"\bstate\b", path.read_text(errors="replace")) is not None
    except OSError:
        return False


def _own_js_files(directory: Path, skipped: set[Path]) -> list[Path]:
    """The module's own ``.js`` files but ``skipped`` (dependencies' ``node_modules`` not
    walked), at most :data:`_SHARED_FILES_READ`."""
    found: list[Path] = []
    for root, folders, files in os.walk(directory):
        folders[:] = sorted(name for name in folders if name != "node_modules")
        for name in sorted(files):
            path = Path(root) / name
            if name.endswith(".js") and path not in skipped:
                found.append(path)
                if len(found) >= _SHARED_FILES_READ:
                    return found
    return found


def merged_auth(service_config: dict[str, Any], account: AccountAuth | None) -> dict[str, Any]:
    """``context.auth``: the service configuration's key/values with the node's account over
    them, as Appmixer gives both in ``context.auth`` (docs.appmixer.com, "Component Definition
    → Configuration": Backoffice values "will be available at context.config as well"); the
    configuration alone for a node without an account."""
    if account is None:
        return dict(service_config)
    return {**service_config, **account.auth}


def flow_descriptor(request: dict[str, Any], component: str) -> dict[str, Any]:
    """``context.flowDescriptor``: the calling node's entry, as Appmixer's flow descriptor has
    it (``type``, ``label``, ``config.properties``; ``config.transform`` empty: modyard maps
    inputs in the flow, not per component). Connectors read ``flowDescriptor[componentId]``
    (the shared lib.js ``sendArrayOutput`` its ``label``, utils.controls.Each its
    ``config.transform``); other nodes are not included."""
    node_id = str(request.get("node_id") or "")
    if not node_id:
        return {}
    return {
        node_id: {
            "type": component,
            "label": request.get("node_label"),
            "config": {"properties": request.get("properties") or {}, "transform": {}},
        }
    }


class JsRunner:
    def __init__(
        self,
        settings: JsRunnerSettings,
        isolation: Isolation,
        store: ModuleStore,
        pool: ChildPool,
    ) -> None:
        self._settings = settings
        self._isolation = isolation
        self.store = store
        self.pool = pool
        #: The persistent context members (state, lock, timers, store, files); None without a
        #: database (the runner-alone benchmark), where they reject.
        self.context_api: ContextApi | None = None
        self._reads_state: dict[Path, bool] = {}
        self._shared_state: dict[Path, bool] = {}
        #: Flow nodes' accounts, read from the installer (accounts.py).
        self.accounts = AccountsClient(settings)
        #: Slingr installations' configurations, read from the installer for each call (set by
        #: app.py; None: the runner alone, the request's own ``config``).
        self.slingr_configs: slingr_run.ConfigSource | None = None
        #: Their listener addresses (``WEBHOOK_URL``), known once a configuration was read.
        self.slingr_listeners: slingr_run.ListenerSource | None = None

    def use_context_api(self, api: ContextApi) -> None:
        self.context_api = api
        self.pool.rpc = api.answer

    def _reads_state_property(self, module: ModuleVersion, entry: Path) -> bool:
        """Whether the component's file, or a file of the module that is no component's own
        (a shared ``lib.js`` the component requires: connectors keep polling logic there),
        names ``state`` (``context.state``): its node state is then loaded before each call,
        as Appmixer does; others skip that query. ``node_modules`` is not read."""
        known = self._reads_state.get(entry)
        if known is None:
            known = _names_state(entry) or self._shared_names_state(module)
            self._reads_state[entry] = known
        return known

    def _shared_names_state(self, module: ModuleVersion) -> bool:
        known = self._shared_state.get(module.directory)
        if known is None:
            entries = {component.entry for component in module.components.values()}
            known = any(_names_state(path) for path in _own_js_files(module.directory, entries))
            self._shared_state[module.directory] = known
        return known

    def spec(self, module: ModuleVersion) -> SandboxSpec:
        spec = SandboxSpec(
            key=module.key,
            module=module.name,
            module_dir=module.directory,
            require_paths=self.store.base_paths,
            allowances=tuple(self._settings.module_allowances.get(module.name, ())),
        )
        if module.format == slingr_calls.SLINGR:  # its own child (warm pool included)
            return slingr_calls.spec(self._settings, module, spec)
        return spec

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (never raises for the module's own failures)."""
        name, version = str(request.get("module") or ""), str(request.get("version") or "")
        component_name = str(request.get("component") or "")
        try:
            module = await self.store.get(name, version)
        except ModuleUnavailable as exc:
            return {"error": {"message": exc.message, "retryable": exc.retryable}}
        if module.format == slingr_calls.SLINGR:
            return await slingr_run.handle(
                self.pool,
                module,
                self.spec(module),
                request,
                allowance=allowance_of(request.get("egress")),
                classify=classify,
                configs=self.slingr_configs,
                listeners=self.slingr_listeners,
            )
        if request.get("port") == slingr_run.LISTENER_PORT:
            # The runtime's /v1/listeners address of an installation that is not a Slingr package.
            return {
                "error": {
                    "message": f"{name} {version} is not a Slingr package: it has no listeners",
                    "retryable": False,
                    "status": 404,
                }
            }
        component = module.components.get(component_name)
        if component is None:
            return {
                "error": {
                    "message": f"{name} {version} has no JavaScript component {component_name!r}",
                    "retryable": False,
                }
            }
        port = str(request.get("port") or "in")
        scope = CallScope(
            workspace=str(request.get("workspace") or ""),
            flow_id=str(request.get("flow_id") or ""),
            node_id=str(request.get("node_id") or ""),
            module=name,
            component=component_name,
            message_id=str(request.get("message_id") or request.get("correlation_id") or ""),
            persistent=component.persistent_state,
        )
        extra: dict[str, Any] = {}
        account: AccountAuth | None = None
        if request.get("account") and scope.workspace:
            try:
                account = await self.accounts.credentials(scope.workspace, str(request["account"]))
            except AccountUnavailable as exc:
                return {"error": {"message": exc.message, "retryable": exc.retryable}}
        try:
            if port == "timeout":
                due = await self._due_timer(scope, request.get("payload"))
                if due is not None and "reply" in due:
                    return dict(due["reply"])
                extra = due or {}
            elif (
                self.context_api is not None
                and scope.workspace
                and self._reads_state_property(module, component.entry)
            ):
                extra["state"] = await state.load_all(self.context_api, scope)
        except (DBAPIError, OSError) as exc:
            log.warning("js_state_unavailable", module=name, error=str(exc)[:300])
            return {
                "error": {
                    "message": "the runner's database is unavailable (the component's state)",
                    "retryable": True,
                }
            }
        service_config = auth_of(request.get("config"), component.auth_service)
        frame = {
            "entry": str(component.entry),
            "method": LIFECYCLE.get(port, "receive"),
            "port": None if port in LIFECYCLE else port,
            # Webhook components: the URL the runtime serves for this node (getWebhookUrl).
            "webhookUrl": request.get("webhook_url"),
            "content": request.get("payload"),
            "correlationId": request.get("correlation_id"),
            "properties": request.get("properties") or {},
            "auth": merged_auth(service_config, account),
            # context.config: the service configuration alone, account or not (Appmixer).
            "config": service_config,
            "nodeId": request.get("node_id"),
            # context.id: the message's id, the same on every redelivery (Each keys its
            # progress by it: stateGet(context.id)).
            "contextId": scope.message_id or None,
            # context.flowDescriptor: this node's own entry (the runner sees no other node).
            "flowDescriptor": flow_descriptor(request, component_name),
            "flowId": request.get("flow_id"),
            # staticCache entries are kept apart per workspace (the child serves several).
            "cacheScope": scope.workspace,
            **extra,
        }
        succeeded = False
        try:
            child = await self.pool.child(self.spec(module))
            answer, _logs = await child.call(
                frame,
                scope,
                allowance=allowance_of(request.get("egress")),
                workspace=scope.workspace,
            )
            if refresh_helps(account, answer):
                # The token was refused: refreshed once (one refresh for concurrent callers),
                # then the call runs again.
                assert account is not None
                account = await self.accounts.refresh(scope.workspace, account)
                answer, _logs = await child.call(
                    {**frame, "auth": merged_auth(service_config, account)},
                    scope,
                    allowance=allowance_of(request.get("egress")),
                    workspace=scope.workspace,
                )
            succeeded = answer.get("t") == "done"
        except AccountUnavailable as exc:
            return {"error": {"message": exc.message, "retryable": exc.retryable}}
        except SandboxFailure as exc:
            return {
                "error": {"message": exc.message, "retryable": exc.retryable, "kind": "sandbox"}
            }
        finally:
            # Locks still held are released, timers of a failed call cancelled.
            parked = (
                await self.context_api.finish(scope, succeeded=succeeded)
                if self.context_api is not None
                else []
            )
            if port == "stop" and self.context_api is not None and scope.workspace:
                # The flow stops whatever stop() did: the node's state goes unless persistent.
                try:
                    await state.forget_node(self.context_api, scope)
                except (DBAPIError, OSError):
                    log.warning("js_state_not_forgotten", module=name, exc_info=True)
        if succeeded:
            outputs = answer.get("outputs")
            reply: dict[str, Any] = {"outputs": outputs if isinstance(outputs, dict) else {}}
            if isinstance(answer.get("response"), dict):
                # context.response(): the runtime answers the webhook's caller with it.
                reply["response"] = answer["response"]
            if parked:
                reply["timeouts"] = parked
            return reply
        error = answer.get("error")
        return {"error": classify(error if isinstance(error, dict) else {})}

    async def _due_timer(self, scope: CallScope, payload: Any) -> dict[str, Any] | None:
        """A ``timeout`` message: the timer's content to call the component with, or the reply
        that parks it again (early) or drops it (cleared, fired already, another node's)."""
        if self.context_api is None:
            return {
                "reply": {
                    "error": {
                        "message": "setTimeout needs the runner's database",
                        "retryable": True,
                    }
                }
            }
        body = payload if isinstance(payload, dict) else {}
        timer_id = str(body.get("timerId") or "")
        asked = body.get("round")
        round_ = asked if isinstance(asked, int) else 0
        what, value = await timers.due(self.context_api.database, scope, timer_id)
        if what == "gone":
            return {"reply": {"outputs": {}}}
        if what == "wait":
            return {
                "reply": {
                    "outputs": {},
                    "timeouts": [{"id": timer_id, "ms": value, "round": round_ + 1}],
                }
            }
        return {"content": value, "timeoutId": timer_id}
