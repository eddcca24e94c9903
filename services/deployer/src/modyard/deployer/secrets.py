"""Registry tokens and environment values at rest: Fernet under ``MultiFernet``.

The first key of ``MODYARD_DEPLOYER_SECRET_KEYS`` encrypts, every key decrypts, so keys rotate by
prepending a new one (the installer's secrets work the same way; a service never imports
another service, hence this small copy). Errors never carry key material or plaintext.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

KEYS_SETTING = "MODYARD_DEPLOYER_SECRET_KEYS"


class InvalidSecretKey(ValueError):
    """A configured key is not a Fernet key, or none is set."""


class SecretUnreadable(ValueError):
    """A stored secret that no configured key decrypts."""


class SecretBox:
    __slots__ = ("_fernet", "_key_count")

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise InvalidSecretKey(f"no secret key is configured; set {KEYS_SETTING}")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii", errors="replace")))
            except (ValueError, TypeError):
                raise InvalidSecretKey(
                    f"key {position} of {len(keys)} in {KEYS_SETTING} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes); generate one with `modyard secret-key`"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._key_count = len(fernets)

    @classmethod
    def from_setting(cls, value: SecretStr) -> SecretBox:
        return cls([key.strip() for key in value.get_secret_value().split(",") if key.strip()])

    def __repr__(self) -> str:
        return f"SecretBox(keys={self._key_count})"

    def encrypt_json(self, value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt_json(self, token: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode("ascii")).decode("utf-8"))
        except (InvalidToken, TypeError, ValueError):
            raise SecretUnreadable(
                f"a stored secret cannot be decrypted with the {self._key_count} configured "
                f"key(s): it was encrypted under a key since removed from {KEYS_SETTING}"
            ) from None
