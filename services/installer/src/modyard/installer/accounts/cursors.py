"""Opaque keyset cursors over ``(created_at, id)`` for the newest-first account list."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from modyard.common.errors import InvalidParam, ValidationFailed


def encode(created_at: datetime, identifier: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(identifier)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, identifier = json.loads(
            base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        )
        return datetime.fromisoformat(created), uuid.UUID(identifier)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            "The cursor is not one this list gave out; pass next_cursor as it came.",
            slug="invalid-cursor",
            errors=[InvalidParam(pointer="/query/cursor", detail=str(exc)[:200])],
        ) from exc
