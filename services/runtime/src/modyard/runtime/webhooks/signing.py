"""The signature of a delivery, and its verification on the receiving side.

``X-Modyard-Signature: sha256=<hex>`` where ``<hex>`` is HMAC-SHA256 keyed with the webhook's
secret over ``f"{timestamp}.{body}"``; ``timestamp`` is ``X-Modyard-Timestamp`` (Unix seconds) and
``body`` the exact bytes received. Signing the timestamp with the body lets a receiver refuse
replays of an old delivery. This module needs only the standard library so receivers can copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_PREFIX = "sha256="
#: How old a delivery's timestamp may be when it is verified, by default.
DEFAULT_TOLERANCE_SECONDS = 300


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def compute_signature(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """The ``X-Modyard-Signature`` value of ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode() + b"." + _as_bytes(body)
    return SIGNATURE_PREFIX + hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: int | str | None,
    body: str | bytes,
    header: str | None,
    *,
    tolerance_seconds: float | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is the signature of ``body`` at ``timestamp`` under ``secret``.

    With ``tolerance_seconds`` (the default: 5 minutes), a timestamp further than that from
    ``now`` fails too, so a captured delivery cannot be replayed later. Pass ``None`` to skip it.
    """
    if not header or timestamp is None:
        return False
    try:
        sent_at = int(str(timestamp))
    except ValueError:
        return False
    if tolerance_seconds is not None:
        current = time.time() if now is None else now
        if abs(current - sent_at) > tolerance_seconds:
            return False
    # Over the timestamp exactly as received: that is the text the sender signed.
    expected = compute_signature(secret, str(timestamp), body)
    return hmac.compare_digest(expected.encode(), header.strip().encode())
