"""Running module components: ``amqp`` sends a request to the module's worker queue and waits for
the reply on this process's reply queue (correlated by id); the worker answers with outputs per
port or with an error saying whether it is worth retrying."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage

from modyard.common.bus.connection import Bus, BusUnavailable, MessageReturned
from modyard.runtime.components.base import ComponentError, Outputs
from modyard.runtime.engine.topology import MODULES_EXCHANGE

log = structlog.get_logger(__name__)


class AmqpExecutor:
    def __init__(self, bus: Bus, *, timeout_seconds: float) -> None:
        self._bus = bus
        self._timeout = timeout_seconds
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reply_queue = ""

    async def on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is None or future.done():
            return  # a late answer to a request that already timed out
        try:
            future.set_result(json.loads(message.body))
        except ValueError:
            future.set_exception(
                ComponentError("the module's worker answered with invalid JSON", retryable=False)
            )

    async def call(self, module: str, request: dict[str, Any]) -> Outputs:
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self._bus.publish_message(
                json.dumps(request, default=str).encode(),
                exchange=MODULES_EXCHANGE,
                routing_key=module,
                message_id=str(request.get("message_id") or correlation_id),
                message_type="modyard.component.request",
                correlation_id=correlation_id,
                reply_to=self.reply_queue,
                expiration=self._timeout,
            )
            reply = await asyncio.wait_for(future, self._timeout)
        except MessageReturned as exc:
            raise ComponentError(
                f"no worker of module {module!r} is listening", retryable=True
            ) from exc
        except BusUnavailable as exc:
            raise ComponentError("the message broker is not connected", retryable=True) from exc
        except TimeoutError as exc:
            raise ComponentError(
                f"module {module!r} did not answer within {self._timeout} s", retryable=True
            ) from exc
        finally:
            self._pending.pop(correlation_id, None)
        if "error" in reply:
            error = reply["error"] or {}
            raise ComponentError(
                str(error.get("message") or "the component failed"),
                retryable=bool(error.get("retryable", True)),
                status=error.get("status"),
            )
        outputs = reply.get("outputs") or {}
        if not isinstance(outputs, dict):
            raise ComponentError(
                "the module's worker answered outputs that are not per port", retryable=False
            )
        return {str(port): list(values) for port, values in outputs.items()}
