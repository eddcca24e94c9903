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
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.db.database import Database
from modyard.common.secrets import SecretBox, SecretUnreadable


@dataclass
class RotationReport:
    column: EncryptedColumn
    rotated: int = 0
    current: int = 0
    #: Tokens no configured key opens: they stay as they are (put the old key back to rotate them).
    unreadable: int = 0

    def count(self, box: SecretBox, token: str) -> str | None:
        """``token`` under the current key when it needs rotating (else ``None``), counted."""
        if not box.needs_rotation(token):
            self.current += 1
            return None
        try:
            rotated = box.rotate(token)
        except SecretUnreadable:
            self.unreadable += 1
            return None
        self.rotated += 1
        return rotated


@dataclass(frozen=True)
class EncryptedColumn:
    """A text column of the service's schema holding one SecretBox token per row (or NULL).

    Secrets stored otherwise (inside JSON documents) subclass it and override :meth:`rotate`.
    """

    table: str
    column: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"

    async def rotate(self, session: AsyncSession, box: SecretBox) -> RotationReport:
        """Re-encrypt every token of the column under ``box``'s current key, in ``session``."""
        report = RotationReport(self)
        stored = sql_table(self.table, sql_column(self.column))
        tokens_column = stored.c[self.column]
        tokens = (
            await session.scalars(
                select(tokens_column).where(tokens_column.is_not(None)).with_for_update()
            )
        ).all()
        for token in tokens:
            rotated = report.count(box, token)
            if rotated is not None:
                await session.execute(
                    update(stored).where(tokens_column == token).values({self.column: rotated})
                )
        return report


async def rotate_secrets(
    database: Database, box: SecretBox, columns: Sequence[EncryptedColumn]
) -> list[RotationReport]:
    reports = []
    for column in columns:
        async with database.transaction() as session:
            reports.append(await column.rotate(session, box))
    return reports
