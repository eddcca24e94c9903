"""Prisme.ai's localized texts (``{fr: …, en: …}``), read in one language where one text is
wanted: the ``prismeai`` format reads automation names, descriptions and config field schemas this
way, and the runtime the same automations' names and argument schemas, so the two must agree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def localized_text(value: Any) -> str | None:
    """English, else the first language, of a localized text; a plain string as it is; None for
    anything else (the caller says what was wrong)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and value and all(isinstance(v, str) for v in value.values()):
        return str(value.get("en") or next(iter(value.values())))
    return None


def plain_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema with localized ``title``/``description`` read as :func:`localized_text`
    (JSON Schema wants strings there), in its properties and items too."""
    plain: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "description") and isinstance(value, Mapping):
            text = localized_text(value)
            plain[key] = text if text is not None else value
        elif key in ("properties", "patternProperties") and isinstance(value, Mapping):
            plain[key] = {
                k: plain_schema(v) if isinstance(v, Mapping) else v for k, v in value.items()
            }
        elif key == "items" and isinstance(value, Mapping):
            plain[key] = plain_schema(value)
        else:
            plain[key] = value
    return plain
