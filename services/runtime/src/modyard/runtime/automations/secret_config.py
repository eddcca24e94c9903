"""Secret config values of a workspace: the fields its ``config.schema`` marks ``secret: true``,
stored encrypted (``{"$sealed": <Fernet token>}``) and masked in API answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

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


def unseal(value: Any, box: SecretBox | None) -> Any:
    if isinstance(value, dict) and set(value) == {SEALED} and box is not None:
        return box.decrypt_json(value[SEALED])
    return value
