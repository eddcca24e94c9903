"""``Cell``: an AppCell cell, answering the gateway's requests.

    cell = Cell("newResellerClubCell")

    @cell.action("Domain", "create")
    async def create_domain(payload, settings):
        return vendor.register(payload["domain"], user=settings["userid"])

A request is ``{request_id, action, resource, payload, settings, installation, plugin,
customer_product_id}``; the handler gets ``(payload, settings)`` (and, if it takes a third
parameter, the :class:`Request` itself) and returns the result, which the gateway validates
against the action's ``$result`` schema. Raising a :class:`~modyard.cell.errors.CellError`
answers with its status; the settings are the installation's configuration, sent with every
request, so a cell stores none.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from modyard.cell.errors import CellError
from modyard.cell.wire import WireConnection
from modyard.cell.worker import Handler, Worker, WorkerOptions, call_handler

log = structlog.get_logger("modyard.cell")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Request:
    request_id: str
    resource: str
    action: str
    payload: Any
    settings: dict[str, Any]
    installation: str | None = None
    plugin: str | None = None
    customer_product_id: str | None = None


class Cell:
    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: dict[tuple[str, str], tuple[Handler, bool]] = {}

    def action(self, resource: str, action: str) -> Callable[[F], F]:
        """Register the handler of ``resource``'s ``action`` (e.g. ``("Contact", "fetchAll")``)."""

        def register(handler: F) -> F:
            if (resource, action) in self._handlers:
                raise ValueError(f"{resource}.{action} already has a handler")
            wants_request = len(inspect.signature(handler).parameters) >= 3
            self._handlers[(resource, action)] = (handler, wants_request)
            return handler

        return register

    @property
    def actions(self) -> list[tuple[str, str]]:
        return sorted(self._handlers)

    # -- the adapter the worker core runs -----------------------------------------------------------

    async def declare(self, connection: WireConnection, queue: str | None) -> str:
        if not queue:
            raise ValueError(
                "a cell consumes the queue the gateway gave its installation: pass the queue "
                "(`modyard cells credentials`)"
            )
        # Passive: the gateway owns the queue; the cell's user may only read it.
        return await connection.declare_queue(queue, passive=True)

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"resource": request.get("resource"), "action": request.get("action")}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        resource, action = str(request.get("resource")), str(request.get("action"))
        found = self._handlers.get((resource, action))
        if found is None:
            return CellError(
                f"cell {self.name} has no handler for {resource}.{action}", status=501
            ).as_reply()
        handler, wants_request = found
        settings = request.get("settings") or {}
        args: list[Any] = [request.get("payload"), settings]
        if wants_request:
            args.append(
                Request(
                    request_id=str(request.get("request_id") or ""),
                    resource=resource,
                    action=action,
                    payload=request.get("payload"),
                    settings=settings,
                    installation=request.get("installation"),
                    plugin=request.get("plugin"),
                    customer_product_id=request.get("customer_product_id"),
                )
            )
        try:
            return {"result": await call_handler(handler, *args)}
        except CellError as exc:
            return exc.as_reply()
        except Exception as exc:
            log.exception("handler_failed", resource=resource, action=action)
            return CellError(f"{type(exc).__name__}: {exc}").as_reply()

    def worker(self, options: WorkerOptions) -> Worker:
        return Worker(self, options)
