"""Re-encrypting stored secrets under a service's current key (``modyard-<service>
rotate-secrets``), so that keys rotated out of ``MODYARD_<SERVICE>_SECRET_KEYS`` can be removed.

Every secret column holds one :class:`~modyard.common.secrets.SecretBox` token per row. Tokens are
unique (each has a random IV and a timestamp), so a row is updated by matching its old token: no
key column is needed, and a row another writer changed meanwhile is simply left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import column as sql_column
from sqlalchemy import select, update
from sqlalchemy import table as sql_table

from modyard.common.db.database import Database
from modyard.common.secrets import SecretBox, SecretUnreadable


@dataclass(frozen=True)
class EncryptedColumn:
    """A text column of the service's schema holding one SecretBox token per row (or NULL)."""

    table: str
    column: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass
class RotationReport:
    column: EncryptedColumn
    rotated: int = 0
    current: int = 0
    #: Tokens no configured key opens: they stay as they are (put the old key back to rotate them).
    unreadable: int = 0


async def rotate_secrets(
    database: Database, box: SecretBox, columns: Sequence[EncryptedColumn]
) -> list[RotationReport]:
    reports = []
    for column in columns:
        report = RotationReport(column)
        stored = sql_table(column.table, sql_column(column.column))
        tokens_column = stored.c[column.column]
        async with database.transaction() as session:
            tokens = (
                await session.scalars(
                    select(tokens_column).where(tokens_column.is_not(None)).with_for_update()
                )
            ).all()
            for token in tokens:
                if not box.needs_rotation(token):
                    report.current += 1
                    continue
                try:
                    rotated = box.rotate(token)
                except SecretUnreadable:
                    report.unreadable += 1
                    continue
                await session.execute(
                    update(stored).where(tokens_column == token).values({column.column: rotated})
                )
                report.rotated += 1
        reports.append(report)
    return reports
