"""``Idempotency-Key``: a retried request gets the first answer instead of doing the work twice.

The key is remembered with a hash of the request and the response, in the same transaction as the
work, so a retry after a lost response returns exactly what the first call committed; the same key
with another body is refused.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.errors import ValidationFailed
from modyard.installer.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


async def replay(
    session: AsyncSession, key: str, scope: str, body_hash: str, ttl: timedelta
) -> tuple[int, dict[str, Any]] | None:
    """The stored answer for ``key``, or None when this is its first use (the key is then locked)."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
            slug="invalid-idempotency-key",
        )
    # Concurrent requests with one key wait here for the first to finish.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{scope}:{key}"}
    )
    await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < datetime.now(UTC) - ttl)
    )
    record = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.key == key, IdempotencyRecord.scope == scope
        )
    )
    if record is None:
        return None
    if record.request_hash != body_hash:
        raise ValidationFailed(
            "This Idempotency-Key was used for a different request; use a new key for new work.",
            slug="idempotency-key-reused",
        )
    return record.status_code, record.response


async def remember(
    session: AsyncSession,
    key: str,
    scope: str,
    body_hash: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    session.add(
        IdempotencyRecord(
            key=key, scope=scope, request_hash=body_hash, status_code=status_code, response=response
        )
    )
    await session.flush()
