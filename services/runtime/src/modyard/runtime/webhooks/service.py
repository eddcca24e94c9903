"""System webhooks: subscriptions, enqueueing events (:func:`notify`) and reading deliveries.

:func:`notify` only inserts rows in the caller's transaction: an event is delivered if and only if
the change that raised it commits, and no flow ever waits on a receiver. The
:class:`~modyard.runtime.webhooks.delivery.WebhookDeliverer` does the HTTP work in the background.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import Select, String, Table, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from modyard.common.db.commit_hooks import after_commit
from modyard.common.errors import BadRequest, Conflict, NotFound
from modyard.common.observability import tracing
from modyard.common.secrets import SecretBox
from modyard.runtime.cursors import decode_cursor, encode_cursor
from modyard.runtime.webhooks.models import DeliveryStatus, SystemWebhook, WebhookDelivery
from modyard.runtime.webhooks.payloads import (
    ALL_EVENTS,
    EVENT_MODELS,
    EVENTS,
    WEBHOOK_TEST,
    WebhookPayload,
    WebhookTestData,
)
from modyard.runtime.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookOut,
)

log = structlog.get_logger(__name__)

_WAKE_HOOKED = "modyard_webhooks_wake_hooked"
#: A deliverer per engine, woken after a commit that enqueued deliveries (set by the deliverer).
_wakers: weakref.WeakKeyDictionary[AsyncEngine, Callable[[], None]] = weakref.WeakKeyDictionary()


def register_waker(engine: AsyncEngine, wake: Callable[[], None]) -> None:
    """Have ``wake`` called after each commit on ``engine`` that enqueued deliveries."""
    _wakers[engine] = wake


def wake_deliverer(engine: AsyncEngine) -> None:
    """Deliveries were enqueued outside a session (committed already): deliver them now."""
    wake = _wakers.get(engine)
    if wake is not None:
        wake()


def _wake_after_commit(session: AsyncSession) -> None:
    bind = session.bind
    wake = _wakers.get(bind) if isinstance(bind, AsyncEngine) else None
    if wake is None or session.info.get(_WAKE_HOOKED):
        return
    session.info[_WAKE_HOOKED] = True

    def committed() -> None:
        session.info.pop(_WAKE_HOOKED, None)
        wake()

    after_commit(session, committed)


def _event_data(event: str, data: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """``data`` as JSON, normalised by the event's model when it fits."""
    if isinstance(data, BaseModel):
        dumped: dict[str, Any] = data.model_dump(mode="json")
        return dumped
    model = EVENT_MODELS[event]
    try:
        return model.model_validate(dict(data)).model_dump(mode="json")
    except ValidationError as exc:
        # A notification must never fail the change that raised it: send what we were given.
        log.error(
            "webhook_payload_invalid", webhook_event=event, errors=exc.errors(include_url=False)
        )
        jsonable: dict[str, Any] = to_jsonable_python(dict(data), fallback=str)
        return jsonable


def build_payload(
    event: str,
    data: Mapping[str, Any] | BaseModel,
    *,
    event_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body every subscriber of ``event`` receives."""
    return WebhookPayload(
        id=event_id or uuid.uuid4(),
        event=event,
        created_at=created_at or datetime.now(UTC),
        data=_event_data(event, data),
    ).model_dump(mode="json")


def build_engine_payload(
    event: str,
    data: dict[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """:func:`build_payload` for ``data`` the engine assembled itself, already of the event's
    model (its fields' types, nothing missing): the same body, made JSON by pydantic-core's
    serialiser (the one ``model_dump(mode="json")`` uses) without validating it first, a third
    of the cost. A worker's failures build one each; test_webhooks holds the two equal for every
    shape the worker sends. Not for data from elsewhere: that is what the models are for."""
    body: dict[str, Any] = to_jsonable_python(
        {
            "id": event_id or uuid.uuid4(),
            "event": event,
            "created_at": created_at or datetime.now(UTC),
            "data": data,
        },
        # A component's details the serialiser cannot make JSON: their text, as build_payload's
        # fallback sends them, rather than a failure that would fail the message's delivery.
        fallback=str,
    )
    return body


# Built once, values bound at execution: a statement built per event cost SQLAlchemy its
# construction and a cache-key walk every time. (The worker's failures, which have no transaction
# of their own, take the batched path instead: engine/ledger.py, ExecutionLedger.notify.)
# On the tables, not the mapped classes: with a parameter dict, an ORM-enabled INSERT would be
# taken for a bulk insert of that dict.
_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_WEBHOOKS = cast(Table, SystemWebhook.__table__)
_ENQUEUE = insert(_DELIVERIES).from_select(
    ["webhook_id", "event", "event_id", "payload", "trace_context"],
    select(
        _WEBHOOKS.c.id,
        bindparam("event", type_=String(64)),
        bindparam("event_id", type_=PgUUID(as_uuid=False)),
        bindparam("payload", type_=JSONB),
        bindparam("trace_context", type_=JSONB),
    )
    .where(_WEBHOOKS.c.active.is_(True))
    .where(_WEBHOOKS.c.events.op("&&")(bindparam("events", type_=ARRAY(String(64)))))
    # A webhook deleted meanwhile is skipped, not a foreign key violation failing the caller's
    # transaction (see enqueue_many).
    .with_for_update(read=True, key_share=True, of=_WEBHOOKS),
    # Server defaults fill the rest: Python-side ones would be one value for every row.
    include_defaults=False,
)


def enqueue_many(first: int) -> str:
    """_ENQUEUE for many events at once, as asyncpg text whose parameters start at ``$first``
    (event names, ids, payloads, trace contexts, then ALL_EVENTS), without a RETURNING clause.

    The worker's failures, which have no transaction of their own to join, send theirs in the
    statement that records the node executions in flight (engine/ledger.py,
    ExecutionLedger.notify). Kept next to _ENQUEUE so that the two change together.

    ``FOR KEY SHARE``: a webhook deleted while the statement runs is skipped instead of failing
    the foreign key check, which would fail the successes recorded by the same statement (the
    check takes the same lock, so this costs nothing more)."""
    event, event_id, payload, trace_context, all_events = (f"${first + n}" for n in range(5))
    # Only parameter numbers are formatted in: every value is bound.
    return f"""
INSERT INTO webhook_deliveries (webhook_id, event, event_id, payload, trace_context)
SELECT webhook.id, notice.event, notice.event_id, notice.payload, notice.trace_context
FROM unnest({event}::text[], {event_id}::uuid[], {payload}::jsonb[], {trace_context}::jsonb[])
    AS notice(event, event_id, payload, trace_context)
JOIN system_webhooks AS webhook
    ON webhook.active AND webhook.events && ARRAY[notice.event, {all_events}]::varchar[]
FOR KEY SHARE OF webhook
"""  # noqa: S608


async def notify(session: AsyncSession, event: str, data: Mapping[str, Any] | BaseModel) -> int:
    """Enqueue ``event`` for every active webhook subscribed to it, in the caller's transaction.

    One ``INSERT … SELECT`` whatever the number of subscribers; returns how many deliveries were
    enqueued (0 when nobody listens). Nothing is sent before the transaction commits, and nothing
    at all if it rolls back. ``data`` is the event's model from
    :mod:`~modyard.runtime.webhooks.payloads` or a dict of the same shape.

    Raises ``ValueError`` only for an event name that is not in ``EVENTS`` (a bug in the caller).
    """
    if event not in EVENTS:
        raise ValueError(f"unknown system webhook event {event!r}; known: {', '.join(EVENTS)}")
    payload = build_payload(event, data)
    result = await session.execute(
        _ENQUEUE,
        {
            "event": event,
            "event_id": payload["id"],
            "payload": payload,
            "trace_context": tracing.current_traceparent() or None,
            "events": [event, ALL_EVENTS],
        },
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        _wake_after_commit(session)
    return count


# -- subscriptions ---------------------------------------------------------------------------


def describe_webhook(webhook: SystemWebhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        url=webhook.url,
        events=list(webhook.events),
        description=webhook.description,
        active=webhook.active,
        secret_set=bool(webhook.secret),
        created_by=webhook.created_by,
        created_at=webhook.created_at,
    )


async def create_webhook(
    session: AsyncSession, body: WebhookCreate, secrets: SecretBox, *, created_by: str
) -> SystemWebhook:
    webhook = SystemWebhook(
        url=body.url,
        events=list(body.events),
        # Encrypted at rest: a database dump must not let anyone forge signed deliveries.
        secret=secrets.encrypt(body.secret.encode()),
        description=body.description,
        active=True,
        created_by=created_by,
    )
    session.add(webhook)
    await session.flush()
    log.info("system_webhook_created", webhook_id=str(webhook.id), events=webhook.events)
    return webhook


async def list_webhooks(session: AsyncSession) -> list[SystemWebhook]:
    query = select(SystemWebhook).order_by(SystemWebhook.created_at, SystemWebhook.id)
    return list((await session.scalars(query)).all())


async def get_webhook(session: AsyncSession, webhook_id: uuid.UUID) -> SystemWebhook:
    webhook = await session.get(SystemWebhook, webhook_id)
    if webhook is None:
        raise NotFound(
            f"No system webhook has id {webhook_id}; list them with GET /v1/system-webhooks."
        )
    return webhook


async def delete_webhook(session: AsyncSession, webhook: SystemWebhook) -> None:
    """Delete the webhook with its deliveries (pending ones are never sent)."""
    await session.execute(delete(SystemWebhook).where(SystemWebhook.id == webhook.id))
    log.info("system_webhook_deleted", webhook_id=str(webhook.id))


async def enqueue_test(session: AsyncSession, webhook: SystemWebhook) -> WebhookDelivery:
    """A ``webhook.test`` delivery to this webhook alone, whatever it subscribes to."""
    data = WebhookTestData(
        webhook_id=webhook.id,
        message="A test delivery from modyard; no action is needed.",
    )
    payload = build_payload(WEBHOOK_TEST, data)
    delivery = WebhookDelivery(
        webhook_id=webhook.id,
        event=WEBHOOK_TEST,
        event_id=uuid.UUID(payload["id"]),
        payload=payload,
        status=DeliveryStatus.pending.value,
        attempts=0,
        attempt_log=[],
    )
    session.add(delivery)
    await session.flush()
    _wake_after_commit(session)
    return delivery


# -- deliveries ------------------------------------------------------------------------------


def describe_delivery(delivery: WebhookDelivery) -> DeliveryOut:
    pending = delivery.status == DeliveryStatus.pending.value
    return DeliveryOut(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event=delivery.event,
        event_id=delivery.event_id,
        status=DeliveryStatus(delivery.status),
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        last_attempt_at=delivery.last_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        attempt_log=[AttemptOut.model_validate(entry) for entry in delivery.attempt_log],
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        payload=delivery.payload,
    )


def _after(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        return decode_cursor(cursor)
    except ValueError as exc:
        raise BadRequest(
            "The cursor is not one this API gave out; start again without ?cursor=.",
            slug="invalid-cursor",
        ) from exc


async def list_deliveries(
    session: AsyncSession,
    webhook: SystemWebhook,
    *,
    status: DeliveryStatus | None,
    limit: int,
    cursor: str | None,
) -> DeliveryPage:
    """The webhook's deliveries, newest first, ``limit`` at a time."""
    query: Select[tuple[WebhookDelivery]] = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    if cursor:
        created_at, delivery_id = _after(cursor)
        query = query.where(
            tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < (created_at, delivery_id)
        )
    found = list((await session.scalars(query)).all())
    page, more = found[:limit], len(found) > limit
    return DeliveryPage(
        items=[describe_delivery(delivery) for delivery in page],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more and page else None,
    )


async def get_delivery(
    session: AsyncSession, webhook: SystemWebhook, delivery_id: uuid.UUID
) -> WebhookDelivery:
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.webhook_id != webhook.id:
        raise NotFound(
            f"Webhook {webhook.id} has no delivery {delivery_id}; "
            f"list them with GET /v1/system-webhooks/{webhook.id}/deliveries."
        )
    return delivery


async def redeliver(
    session: AsyncSession, webhook: SystemWebhook, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Send a finished delivery again, with a fresh retry schedule and the same body."""
    delivery = await get_delivery(session, webhook, delivery_id)
    if delivery.status == DeliveryStatus.pending.value:
        raise Conflict(
            "This delivery is still pending; it will be tried again at next_attempt_at.",
            slug="delivery-pending",
        )
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id)
        .values(
            status=DeliveryStatus.pending.value,
            attempts=0,
            next_attempt_at=datetime.now(UTC),
            delivered_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    await session.refresh(delivery)
    _wake_after_commit(session)
    return delivery
