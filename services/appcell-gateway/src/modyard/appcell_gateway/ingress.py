"""AMQP ingress: requests a billing system publishes to the ``appcell.requests`` exchange.

A request is a JSON message ``{"installation", "plugin", "action", "payload", "data"?,
"customer_product_id"?}`` (``data``: what an AppCell payload template is compiled from) with ``reply_to``, ``correlation_id`` and the caller's token in the
``authorization`` header (``Bearer <jwt>``), the same token the HTTP API takes. The answer goes to
``reply_to`` through the default exchange with the same ``correlation_id``: the body the HTTP API
would return (``{status, result, postpayload}``, or the problem), its HTTP status in the header
``status`` and its content type (``application/json`` or ``application/problem+json``).

A request without ``reply_to`` is not run: it goes, with the reason in the header
``x-modyard-rejected-reason``, to the queue ``appcell-gateway.requests.dead``. Any other malformed
request (not JSON, wrong shape, no token) is answered with its problem.

The request is acknowledged once answered; a gateway that dies in between leaves it to be
redelivered to another replica (the quorum queue's ``delivery-limit`` stops a poison message).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modyard.appcell_gateway import json_body
from modyard.appcell_gateway.dispatch import INGRESS_DEAD_LETTER_QUEUE
from modyard.appcell_gateway.pipeline import CellRequest, Pipeline
from modyard.common.auth import bearer_principal
from modyard.common.errors import (
    PROBLEM_CONTENT_TYPE,
    InvalidParam,
    Problem,
    ValidationFailed,
    problem_type,
)
from modyard.common.request_context import bound_context
from modyard.common.tokens import VerifiedTokens

log = structlog.get_logger(__name__)


class IngressRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    installation: str = Field(min_length=1, max_length=255)
    plugin: str = Field(min_length=1, max_length=255)
    action: str = Field(min_length=1, max_length=255)
    payload: Any = None
    #: What an AppCell payload template is compiled from (docs/gateway.md, step 3).
    data: dict[str, Any] | None = None
    customer_product_id: str | None = Field(default=None, max_length=255)


class Ingress:
    def __init__(
        self,
        tokens: VerifiedTokens,
        pipeline: Callable[[], Pipeline],
        default_exchange: Callable[[], AbstractExchange],
    ) -> None:
        self._tokens = tokens
        self._pipeline = pipeline
        self._default_exchange = default_exchange

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        correlation_id = message.correlation_id or uuid.uuid4().hex
        if not message.reply_to:
            # Nobody could learn the outcome, so the action is not run: the request is kept,
            # with why, for whoever sent it to find.
            await self._dead_letter(message, "no reply_to: the answer would have nowhere to go")
            return
        with bound_context(request_id=correlation_id, correlation_id=correlation_id):
            try:
                status, body = 200, await self._answer(message, correlation_id)
            except Problem as problem:
                status = problem.status
                body = problem.to_detail(f"amqp:{message.routing_key}").model_dump(
                    mode="json", exclude_none=True
                )
            except Exception:
                # A bug: the caller still gets an answer (like HTTP's 500), never a silence.
                log.exception("ingress_request_failed")
                status = 500
                body = {
                    "type": problem_type("internal-error"),
                    "title": "Internal error",
                    "status": 500,
                    "detail": "The gateway failed on this request; its request_id finds the log.",
                    "request_id": correlation_id,
                }
            await self._default_exchange().publish(
                aio_pika.Message(
                    json_body.dumps(body),
                    content_type="application/json" if status == 200 else PROBLEM_CONTENT_TYPE,
                    correlation_id=correlation_id,
                    headers={"status": status},
                ),
                routing_key=message.reply_to,
            )
            await message.ack()

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        log.error("ingress_request_rejected", message_id=message.message_id, reason=reason)
        await self._default_exchange().publish(
            aio_pika.Message(
                message.body,
                content_type=message.content_type,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                headers={"x-modyard-rejected-reason": reason},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=INGRESS_DEAD_LETTER_QUEUE,
        )
        await message.ack()

    async def _answer(
        self, message: AbstractIncomingMessage, correlation_id: str
    ) -> dict[str, Any]:
        header = (message.headers or {}).get("authorization")
        if isinstance(header, bytes):
            header = header.decode("utf-8", errors="replace")
        scheme, _, token = str(header or "").partition(" ")
        principal = bearer_principal(
            self._tokens,
            scheme,
            token.strip(),
            missing="Put 'Bearer <token>' in the message's 'authorization' header.",
        )
        try:
            request = IngressRequest.model_validate_json(message.body)
        except ValidationError as exc:
            errors = [
                InvalidParam(
                    pointer="/" + "/".join(str(part) for part in error["loc"]),
                    detail=str(error["msg"]),
                )
                for error in exc.errors()
            ]
            raise ValidationFailed(
                "The message must be JSON {installation, plugin, action, payload, "
                "customer_product_id?}; fix the fields named in 'errors'.",
                errors=errors,
            ) from None
        return await self._pipeline().handle(
            CellRequest(
                cell=request.installation,
                plugin=request.plugin,
                action=request.action,
                payload=request.payload,
                data=request.data,
                customer_product_id=request.customer_product_id,
                principal=principal,
                ingress="amqp",
                correlation_id=correlation_id,
                payload_pointer="/payload",
                # A redelivered request (its gateway died before acknowledging it) or one the
                # billing system published again keeps its message id: the cell answers it from
                # its replay memory rather than running the action twice.
                idempotency_key=message.message_id,
            )
        )
