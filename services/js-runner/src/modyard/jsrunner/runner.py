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

from typing import Any, Final

import structlog

from modyard.jsrunner.isolation import Isolation
from modyard.jsrunner.modules import ModuleStore, ModuleUnavailable, ModuleVersion
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.sandbox import SandboxFailure, SandboxSpec
from modyard.jsrunner.settings import JsRunnerSettings

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


def auth_of(config: Any, service: str | None) -> dict[str, Any]:
    """``context.auth``: the installation's configuration under the component's auth service
    when it has such a section, else the whole configuration (until accounts exist)."""
    if not isinstance(config, dict):
        return {}
    if service and isinstance(config.get(service), dict):
        return dict(config[service])
    return dict(config)


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

    def spec(self, module: ModuleVersion) -> SandboxSpec:
        return SandboxSpec(
            key=module.key,
            module=module.name,
            module_dir=module.directory,
            require_paths=self.store.base_paths,
            allowances=tuple(self._settings.module_allowances.get(module.name, ())),
        )

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (never raises for the module's own failures)."""
        name, version = str(request.get("module") or ""), str(request.get("version") or "")
        component_name = str(request.get("component") or "")
        try:
            module = await self.store.get(name, version)
        except ModuleUnavailable as exc:
            return {"error": {"message": exc.message, "retryable": exc.retryable}}
        component = module.components.get(component_name)
        if component is None:
            return {
                "error": {
                    "message": f"{name} {version} has no JavaScript component {component_name!r}",
                    "retryable": False,
                }
            }
        port = str(request.get("port") or "in")
        frame = {
            "entry": str(component.entry),
            "method": "tick" if port == "tick" else "receive",
            "port": None if port == "tick" else port,
            "content": request.get("payload"),
            "correlationId": request.get("correlation_id"),
            "properties": request.get("properties") or {},
            "auth": auth_of(request.get("config"), component.auth_service),
            "nodeId": request.get("node_id"),
            "flowId": request.get("flow_id"),
        }
        try:
            child = await self.pool.child(self.spec(module))
            answer, _logs = await child.call(frame)
        except SandboxFailure as exc:
            return {
                "error": {"message": exc.message, "retryable": exc.retryable, "kind": "sandbox"}
            }
        if answer.get("t") == "done":
            outputs = answer.get("outputs")
            return {"outputs": outputs if isinstance(outputs, dict) else {}}
        error = answer.get("error")
        return {"error": classify(error if isinstance(error, dict) else {})}
