"""Secret config values of a workspace: the fields its ``config.schema`` marks ``secret: true``,
stored encrypted (``{"$sealed": <Fernet token>}``) and masked in API answers.

Only those fields are ever unsealed: a value of the same shape in any other field is the tenant's
own data and stays as written (otherwise a tenant could paste a sealed value it obtained anywhere
into a plain field and have the runtime decrypt it). ``rotate-secrets`` re-encrypts the sealed
fields under the runtime's current key (:class:`SealedConfigColumn`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import column as sql_column
from sqlalchemy import select, update
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.db.secret_rotation import EncryptedColumn, RotationReport
from modyard.common.secrets import SecretBox

SEALED: Final = "$sealed"
#: What the API shows instead of a secret value (and takes back as "unchanged").
MASK: Final = "********"


def secret_fields(schema: Mapping[str, Any]) -> set[str]:
    """Names of Prisme.ai config fields marked ``secret: true``."""
    return {
        name for name, field in schema.items() if isinstance(field, Mapping) and field.get("secret")
    }


def seal(value: Any, box: SecretBox) -> dict[str, str]:
    return {SEALED: box.encrypt_json(value)}


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED} and isinstance(value[SEALED], str)


def unseal(value: Any, box: SecretBox | None, *, secret: bool) -> Any:
    """The plaintext of a sealed value of a field declared ``secret``; anything else as it is."""
    if secret and box is not None and is_sealed(value):
        return box.decrypt_json(value[SEALED])
    return value


def unsealed_config(
    schema: Mapping[str, Any], value: Mapping[str, Any], box: SecretBox | None
) -> dict[str, Any]:
    """The workspace's config with its declared secret fields decrypted."""
    secrets = secret_fields(schema)
    return {name: unseal(item, box, secret=name in secrets) for name, item in value.items()}


@dataclass(frozen=True)
class SealedConfigColumn(EncryptedColumn):
    """A JSON config column whose declared secret fields (per ``schema_column``) are sealed:
    ``rotate-secrets`` re-encrypts each under the current key, row by row (keyed by ``key``)."""

    schema_column: str = "config_schema"
    key: str = "workspace"

    def __str__(self) -> str:
        return f"{self.table}.{self.column} (sealed fields)"

    async def rotate(self, session: AsyncSession, box: SecretBox) -> RotationReport:
        report = RotationReport(self)
        stored = sql_table(
            self.table,
            sql_column(self.key),
            sql_column(self.schema_column, JSONB),
            sql_column(self.column, JSONB),
        )
        rows = (await session.execute(select(stored).with_for_update())).all()
        for key, schema, config in rows:
            changed = dict(config or {})
            for name in secret_fields(schema or {}):
                if not is_sealed(changed.get(name)):
                    continue
                rotated = report.count(box, changed[name][SEALED])
                if rotated is not None:
                    changed[name] = {SEALED: rotated}
            if changed != (config or {}):
                await session.execute(
                    update(stored).where(stored.c[self.key] == key).values({self.column: changed})
                )
        return report
