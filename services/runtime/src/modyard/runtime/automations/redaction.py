"""Secrets (config fields marked ``secret``) never leave a run in events or logs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

MASK: Final = "[redacted]"
#: Shorter values are not masked inside longer text: ``"a"`` would blank every word.
MIN_SECRET_LENGTH: Final = 4


class Redactor:
    """Replaces every occurrence of a known secret inside the strings of a JSON value."""

    def __init__(self, secrets: Iterable[Any] = ()) -> None:
        self.secrets = sorted(
            {s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True
        )

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if value == secret:
                return MASK
            if len(secret) >= MIN_SECRET_LENGTH and secret in value:
                value = value.replace(secret, MASK)
        return value

    def __call__(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        return value
