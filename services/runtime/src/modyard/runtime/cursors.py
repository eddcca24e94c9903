"""Opaque keyset cursors over ``(created_at, id)``, for the newest-first list endpoints."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime


def encode_cursor(created_at: datetime, identifier: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(identifier)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position :func:`encode_cursor` gave out; ``ValueError`` for anything else."""
    try:
        created, identifier = json.loads(
            base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        )
        return datetime.fromisoformat(created), uuid.UUID(identifier)
    except TypeError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors already
        raise ValueError(str(exc)) from exc


__all__ = ["decode_cursor", "encode_cursor"]
