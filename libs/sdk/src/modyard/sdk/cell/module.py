"""``ModuleWorker``: the components of a module run by the runtime's ``amqp`` executor.

    worker = ModuleWorker("echo-mod")

    @worker.component("Echo")
    async def echo(payload, call):
        return {"out": [{"echo": payload}]}

The runtime publishes ``{message_id, workspace, flow_id, node_id, installation, module, version,
component, port, payload, properties, config}`` to the ``modyard.modules`` exchange with the module's
name as routing key; the worker's queue (``modyard.modules.<module>``, declared and bound here) gets
it. The handler gets ``(payload, call)`` and returns outputs per port (``{"out": [...]}``); any
other value is sent on the ``out`` port. A :class:`CellError` answers ``{"error": {message,
retryable, status}}``, so the runtime retries what is retryable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from modyard.common.bus.wire import WireConnection
from modyard.sdk.cell.errors import CellError
from modyard.sdk.cell.worker import Handler, Worker, WorkerOptions, call_handler

log = structlog.get_logger("modyard.sdk.cell")

MODULES_EXCHANGE = "modyard.modules"

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


def module_queue(module: str) -> str:
    return f"{MODULES_EXCHANGE}.{module}"


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
        await connection.declare_exchange(MODULES_EXCHANGE, "direct", durable=True)
        declared = await connection.declare_queue(queue or module_queue(self.name), durable=True)
        await connection.bind_queue(declared, MODULES_EXCHANGE, self.name)
        return declared

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
