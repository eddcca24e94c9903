"""One Slingr call on its package version's child: a flow step (its return value is the
node's output on ``out``) or the package's HTTP listeners for one webhook request (a
``webhookSync`` listener's return value answers the caller).

The installation's configuration never travels in the runtime's request (the AMQP message, the
dead-letter store, logs): the request names the installation, and the configuration is read,
decrypted, from the installer's service API right before the call and goes only to the child,
as ``context.auth`` does for accounts (docs/slingr.md, "Configuration")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from modyard.common.egress.policy import Allowance
from modyard.jsrunner.context_api import CallScope
from modyard.jsrunner.modules import ModuleVersion
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.sandbox import SandboxFailure, SandboxSpec
from modyard.jsrunner.slingr import calls
from modyard.jsrunner.slingr.inputs import InputError

#: The request port of a webhook for the package's listeners (the runtime's
#: ``/v1/listeners/{ws}/{installation}/{path}``), instead of a flow step's message.
LISTENER_PORT = "listener"
#: The request port of a dependent package's ``dependencies.<package>.functions`` call.
FUNCTION_PORT = "function"

#: The installation's effective (decrypted) configuration: ``(workspace, installation)`` →
#: its values, from the installer (host.py ``InstallerStorage.effective_config``).
ConfigSource = Callable[[str, str], Awaitable[dict[str, Any]]]
#: An installation's listener address: ``(workspace, installation)`` → URL, None while unknown
#: (host.py ``InstallerStorage.listener_url``).
ListenerSource = Callable[[str, str], str | None]


class ConfigUnavailable(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


async def config_of(request: dict[str, Any], configs: ConfigSource | None) -> dict[str, Any]:
    """The configuration of the installation the request names, read now. Without an installer
    (the runner alone: its unit harness and benchmark) or an installation, the request's own
    ``config`` (which the runtime no longer sends for Slingr packages)."""
    workspace = str(request.get("workspace") or "")
    installation = str(request.get("installation") or "")
    if configs is None or not workspace or not installation:
        given = request.get("config")
        return dict(given) if isinstance(given, dict) else {}
    try:
        return await configs(workspace, installation)
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        if status == 404:
            raise ConfigUnavailable(
                f"installation {installation!r} is not installed in {workspace!r}", status=404
            ) from exc
        raise ConfigUnavailable(
            f"the installer answered {status} for the configuration of {installation!r}",
            status=status,
        ) from exc
    except httpx.HTTPError as exc:
        raise ConfigUnavailable(
            f"the installer cannot be reached for the configuration of {installation!r}"
        ) from exc


def listener_url_of(request: dict[str, Any], listeners: ListenerSource | None) -> str | None:
    """The installation's listener address (``WEBHOOK_URL``, ``event.data.requestInfo.url``);
    None without an installer (the runner alone) or an installation."""
    workspace = str(request.get("workspace") or "")
    installation = str(request.get("installation") or "")
    if listeners is None or not workspace or not installation:
        return None
    return listeners(workspace, installation)


async def handle(
    pool: ChildPool,
    module: ModuleVersion,
    spec: SandboxSpec,
    request: dict[str, Any],
    *,
    allowance: Allowance | None,
    classify: Callable[[dict[str, Any]], dict[str, Any]],
    configs: ConfigSource | None = None,
    listeners: ListenerSource | None = None,
) -> dict[str, Any]:
    component_name = str(request.get("component") or "")
    port = str(request.get("port") or "in")
    scope = CallScope(
        workspace=str(request.get("workspace") or ""),
        flow_id=str(request.get("flow_id") or ""),
        node_id=str(request.get("node_id") or ""),
        module=module.name,
        component=component_name,
        message_id=str(request.get("message_id") or request.get("correlation_id") or ""),
    )
    if port in ("start", "stop"):
        return {"outputs": {}}  # flow steps have no start/stop: nothing to run
    component = module.components.get(component_name)
    if port not in (LISTENER_PORT, FUNCTION_PORT) and component is None:
        return {
            "error": {
                "message": f"{module.name} {module.version} has no flow step {component_name!r}",
                "retryable": False,
            }
        }
    try:
        config = await config_of(request, configs)
    except ConfigUnavailable as exc:
        # A removed installation may come back (as the runtime's own lookup said before).
        error: dict[str, Any] = {"message": exc.message, "retryable": True}
        if exc.status is not None:
            error["status"] = exc.status
        return {"error": error}
    listener_url = listener_url_of(request, listeners)
    if port == LISTENER_PORT:
        frame = calls.listener_frame(module, request, config)
    elif port == FUNCTION_PORT:
        frame = calls.function_frame(module, request, config)
    else:
        assert component is not None
        try:
            frame = calls.step_frame(module, component, request, config)
        except InputError as exc:
            return {"error": {"message": exc.message, "retryable": False, "kind": exc.code.lower()}}
    frame["listenerUrl"] = listener_url
    # Whose package this is: a worker keeps one context per installation (node/slingr/worker.js),
    # so script-level state a package builds from its configuration never serves another.
    frame["tenant"] = [scope.workspace, str(request.get("installation") or "")]
    # A flow step's events go back with its answer: the runtime records them with the node's
    # success, through its outbox, at the message's event depth (as core.emit's).
    slingr_scope = calls.scope_of(
        module, scope, request, collect=frame["kind"] == "step" and bool(scope.flow_id)
    )
    try:
        child = await pool.child(spec)
        answer, logs = await child.call(
            frame, slingr_scope, allowance=allowance, workspace=scope.workspace
        )
    except SandboxFailure as exc:
        return {"error": {"message": exc.message, "retryable": exc.retryable, "kind": "sandbox"}}
    if answer.get("t") == "done":
        outputs = answer.get("outputs")
        reply: dict[str, Any] = {"outputs": outputs if isinstance(outputs, dict) else {}}
        if isinstance(answer.get("response"), dict):
            reply["response"] = answer["response"]
        if slingr_scope.emitted:
            reply["events"] = slingr_scope.emitted
        if logs and frame["kind"] == "step":
            # sys.logs lines go to the flow's log with the node's success (the runtime keeps
            # them in its node logs), besides the runner's own log.
            reply["logs"] = [{"source": "sys.logs", **line} for line in logs]
        return reply
    failed = answer.get("error")
    classified = classify(failed if isinstance(failed, dict) else {})
    if classified.get("kind") == "unknown":
        # A script's own TypeError or Error fails the same way on every try (Slingr retries
        # nothing either); connection failures and 5xx statuses stay retried.
        classified = {**classified, "retryable": False, "kind": "script"}
    return {"error": classified}
