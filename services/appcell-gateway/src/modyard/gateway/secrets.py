"""The cells' broker passwords at rest: Fernet under a list of keys (``MultiFernet``).

The first key of ``MODYARD_GATEWAY_SECRET_KEYS`` encrypts and every key decrypts, so keys rotate by
putting a new one first. Errors never carry key material or plaintext.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

KEYS_SETTING = "MODYARD_GATEWAY_SECRET_KEYS"


class SecretUnreadable(ValueError):
    """A stored secret no configured key decrypts."""


class SecretBox:
    __slots__ = ("_fernet",)

    def __init__(self, keys: SecretStr) -> None:
        texts = [key.strip() for key in keys.get_secret_value().split(",") if key.strip()]
        if not texts:
            raise ValueError(f"no secret key is configured; set {KEYS_SETTING}")
        fernets: list[Fernet] = []
        for position, key in enumerate(texts, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii", errors="replace")))
            except (ValueError, TypeError):
                raise ValueError(
                    f"key {position} of {len(texts)} in {KEYS_SETTING} is not a Fernet key "
                    "(`modyard secret-key` prints one)"
                ) from None
        self._fernet = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "SecretBox(********)"

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, TypeError, ValueError):
            raise SecretUnreadable(
                f"a stored cell credential cannot be decrypted with the keys in {KEYS_SETTING}"
            ) from None
