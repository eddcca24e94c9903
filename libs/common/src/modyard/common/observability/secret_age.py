"""When the oldest stored secret was encrypted, for the "key rotation overdue" alert.

A Fernet token carries the time it was made (bytes 1 to 8, big-endian seconds), readable without the
key. ``rotate-secrets`` re-encrypts every token that is not under the current key, so after a key
rotation the oldest time is the rotation's; a service whose key never changes keeps ageing ones.
The scan reads every token of the service's encrypted columns, so it runs rarely (hourly).
Secrets kept inside JSON documents (columns with a rotation of their own) are not scanned.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence

import structlog
from sqlalchemy import column as sql_column
from sqlalchemy import select
from sqlalchemy import table as sql_table
from sqlalchemy.exc import SQLAlchemyError

from modyard.common.db.database import Database
from modyard.common.db.secret_rotation import EncryptedColumn
from modyard.common.observability.metrics import SECRET_OLDEST_ENCRYPTION

log = structlog.get_logger(__name__)

SCAN_SECONDS = 3600.0


def token_time(token: str) -> int | None:
    """The seconds since the epoch a Fernet token was made at; None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token.encode()[:16] + b"=" * (-len(token[:16]) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 9 or raw[0] != 0x80:
        return None
    return int.from_bytes(raw[1:9], "big")


async def oldest_encryption(database: Database, columns: Sequence[EncryptedColumn]) -> int | None:
    oldest: int | None = None
    async with database.transaction() as session:
        for encrypted in columns:
            if type(encrypted) is not EncryptedColumn:
                continue  # secrets inside documents: their own rotation, not scanned
            stored = sql_table(encrypted.table, sql_column(encrypted.column))
            tokens = stored.c[encrypted.column]
            for token in await session.scalars(select(tokens).where(tokens.is_not(None))):
                made = token_time(str(token))
                if made is not None and (oldest is None or made < oldest):
                    oldest = made
    return oldest


async def watch_secret_age(
    database: Database,
    migrated: asyncio.Event,
    service: str,
    columns: Sequence[EncryptedColumn],
    *,
    interval: float = SCAN_SECONDS,
) -> None:
    await migrated.wait()
    while True:
        try:
            oldest = await oldest_encryption(database, columns)
            SECRET_OLDEST_ENCRYPTION.labels(service).set(oldest or 0)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("secret_age_not_measured", error=str(exc)[:200])
        await asyncio.sleep(interval)
