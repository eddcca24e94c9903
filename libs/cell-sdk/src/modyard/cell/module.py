"""``ModuleWorker``: the components of a module run by the runtime's ``amqp`` executor.

    worker = ModuleWorker("echo-mod")

    @worker.component("Echo")
    async def echo(payload, call):
        return {"out": [{"echo": payload}]}

The runtime publishes ``{message_id, workspace, flow_id, node_id, installation, module, version,
component, port, payload, properties, config}`` to the installation's own queue
(``modyard.modules.<installation id>``), which only that installation's worker user may read: run
the worker with the credentials the runtime issues for it (``modyard workers credentials WS SLUG
--json > worker.json``, then ``modyard cell run pkg.module:worker --credentials worker.json``).
Replies go to ``modyard.modules.replies`` (the request's ``reply-exchange`` header), the only
exchange that user may publish to, with its ``user_id``: the runtime takes no other.
The handler gets ``(payload, call)`` and returns outputs per port (``{"out": [...]}``); any
other value is sent on the ``out`` port. A :class:`CellError` answers ``{"error": {message,
retryable, status}}``, so the runtime retries what is retryable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from modyard.cell.errors import CellError
from modyard.cell.wire import WireConnection
from modyard.cell.worker import Handler, Worker, WorkerOptions, call_handler

log = structlog.get_logger("modyard.cell")

MODULES_PREFIX = "modyard.modules"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ComponentCall:
    message_id: str
    component: str
    port: str | None
    properties: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    workspace: str | None = None
    installation: str | None = None
    flow_id: str | None = None
    node_id: str | None = None
    state: Any = None


def module_queue(installation_id: str) -> str:
    """The queue of an installation's worker (the runtime declares it with the credentials)."""
    return f"{MODULES_PREFIX}.{installation_id}"


class ModuleWorker:
    def __init__(self, module: str) -> None:
        self.name = module
        self._handlers: dict[str, Handler] = {}

    def component(self, name: str) -> Callable[[F], F]:
        def register(handler: F) -> F:
            self._handlers[name] = handler
            return handler

        return register

    async def declare(self, connection: WireConnection, queue: str | None) -> str:
        if not queue:
            raise ValueError(
                f"module worker {self.name} consumes the queue of the installation it serves: pass "
                "the credentials the runtime issued for it (`modyard workers credentials "
                "WORKSPACE SLUG --json`, amqp_url and queue)"
            )
        # Passive: the runtime owns the queue; the worker's user may only read it.
        return await connection.declare_queue(queue, passive=True)

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"component": request.get("component"), "port": request.get("port")}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("component"))
        handler = self._handlers.get(name)
        if handler is None:
            return CellError(f"module {self.name} has no component {name!r}", status=501).as_reply()
        call = ComponentCall(
            message_id=str(request.get("message_id") or request.get("request_id") or ""),
            component=name,
            port=request.get("port"),
            properties=dict(request.get("properties") or {}),
            config=dict(request.get("config") or {}),
            workspace=request.get("workspace"),
            installation=request.get("installation"),
            flow_id=request.get("flow_id"),
            node_id=request.get("node_id"),
            state=request.get("state"),
        )
        try:
            outputs = await call_handler(handler, request.get("payload"), call)
        except CellError as exc:
            return exc.as_reply()
        except Exception as exc:
            log.exception("component_failed", component=name)
            return CellError(f"{type(exc).__name__}: {exc}", retryable=True).as_reply()
        if not isinstance(outputs, dict) or not all(isinstance(v, list) for v in outputs.values()):
            outputs = {"out": [outputs]}
        return {"outputs": outputs}

    def worker(self, options: WorkerOptions) -> Worker:
        return Worker(self, options)
