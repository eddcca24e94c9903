"""Secrets at rest, and secrets in memory that cannot leak into logs.

:class:`SecretBox` encrypts JSON values with Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp)
under a list of keys, through ``MultiFernet``: the **first** key encrypts, **every** key decrypts.
Keys come from the owning service's ``MODYARD_<SERVICE>_SECRET_KEYS`` setting
(:class:`~modyard.common.settings.SecretKeysSettings`), comma-separated. To rotate: put a new key first and keep the old ones after it; tokens written under the old keys
stay readable, :meth:`SecretBox.rotate` re-encrypts one under the new key (a migration job can
walk the stored secrets, using :meth:`SecretBox.needs_rotation` to skip current ones), and once
none is left the old key can be removed.

Errors never carry key material or plaintext: a key that is not a Fernet key is reported by its
position (:class:`InvalidSecretKey`), a token no key opens as :class:`SecretUnreadable`, and both
are raised ``from None`` so the original exception (and its traceback's locals) is not chained.

:class:`SecretValue` holds a plaintext in memory for code that has to pass one around: its
``repr``, ``str`` and format show ``SecretValue('********')``, it refuses to be pickled, and the
value is read only with :meth:`SecretValue.reveal`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Any, Generic, NoReturn, TypeVar, final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

T = TypeVar("T")

#: The setting (environment variable) named in messages when a box is not told its own.
KEYS_SETTING = "MODYARD_<SERVICE>_SECRET_KEYS"


class InvalidSecretKey(ValueError):
    """A configured key is not a Fernet key (32 url-safe base64-encoded bytes), or none is set."""


class SecretUnreadable(ValueError):
    """A stored secret that no configured key decrypts, or that is not what was encrypted."""


@final
class SecretValue(Generic[T]):
    """A value that does not show itself: ``repr``/``str``/f-strings print a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        """The plaintext. Call it where the value is used, not where it is passed on."""
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('********')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        mine, theirs = self._value, other._value
        if isinstance(mine, str) and isinstance(theirs, str):
            # Constant time, so that comparing a guess with a secret does not time the secret.
            return hmac.compare_digest(mine.encode(), theirs.encode())
        return bool(mine == theirs)

    def __hash__(self) -> int:
        return hash(json.dumps(self._value, sort_keys=True, default=repr))

    def __copy__(self) -> SecretValue[T]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretValue[T]:
        return self  # immutable from the outside: sharing it is a copy

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue is not pickled; reveal() it where it is stored encrypted")


def _plain_key(key: str | bytes | SecretStr) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    return key.encode("ascii", errors="replace") if isinstance(key, str) else key


def _json_default(value: Any) -> Any:
    if isinstance(value, SecretValue):
        return value.reveal()
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    raise TypeError(
        f"a {type(value).__name__} is not a JSON value and cannot be stored as a secret"
    )


class SecretBox:
    """Encrypts JSON values under the first of its keys; decrypts under any of them."""

    __slots__ = ("_current", "_fernet", "_key_count", "_setting")

    def __init__(
        self, keys: Sequence[str | bytes | SecretStr], *, setting: str = KEYS_SETTING
    ) -> None:
        """``setting`` names where the keys come from, so that errors say what to change."""
        self._setting = setting
        if isinstance(keys, str | bytes):
            raise TypeError("SecretBox takes a list of keys; use SecretBox.from_setting for text")
        if not keys:
            raise InvalidSecretKey(
                f"no secret key is configured; set {setting} to one or more Fernet keys "
                "(generate one with SecretBox.generate_key() or `modyard secret-key`)"
            )
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(_plain_key(key)))
            except (ValueError, TypeError):
                raise InvalidSecretKey(
                    f"key {position} of {len(keys)} in {setting} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes); generate one with "
                    "SecretBox.generate_key() or `modyard secret-key`"
                ) from None
        self._current = fernets[0]
        self._fernet = MultiFernet(fernets)
        self._key_count = len(fernets)

    @classmethod
    def from_setting(cls, value: str | SecretStr, *, setting: str = KEYS_SETTING) -> SecretBox:
        """From the setting's text: keys separated by commas (blanks around them ignored)."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return cls([key.strip() for key in text.split(",") if key.strip()], setting=setting)

    @staticmethod
    def generate_key() -> str:
        """A new random key, as text to put in the setting."""
        return Fernet.generate_key().decode("ascii")

    @property
    def key_count(self) -> int:
        return self._key_count

    def __repr__(self) -> str:
        return f"SecretBox(keys={self._key_count})"

    def encrypt(self, data: bytes) -> str:
        return self._fernet.encrypt(data).decode("ascii")

    def decrypt(self, token: str | bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except (InvalidToken, TypeError, ValueError):
            raise SecretUnreadable(
                f"a stored secret cannot be decrypted with the {self._key_count} configured key(s): "
                f"it is damaged or was encrypted under a key since removed from {self._setting}"
            ) from None

    def encrypt_json(self, value: Any) -> str:
        """``value`` (JSON; :class:`SecretValue` and ``SecretStr`` are unwrapped) as a token."""
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
        return self.encrypt(text.encode("utf-8"))

    def decrypt_json(self, token: str | bytes) -> Any:
        data = self.decrypt(token)
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:
            raise SecretUnreadable(
                "a stored secret was decrypted but is not the JSON SecretBox writes"
            ) from None

    def rotate(self, token: str | bytes) -> str:
        """The same secret encrypted under the current (first) key."""
        try:
            return self._fernet.rotate(token).decode("ascii")
        except (InvalidToken, TypeError, ValueError):
            raise SecretUnreadable(
                f"a stored secret cannot be rotated: none of the {self._key_count} configured key(s) "
                f"decrypts it (was its key removed from {self._setting}?)"
            ) from None

    def needs_rotation(self, token: str | bytes) -> bool:
        """True when ``token`` was not written under the current key (it needs :meth:`rotate`)."""
        try:
            self._current.decrypt(token)
        except (InvalidToken, TypeError, ValueError):
            return True
        return False


__all__ = [
    "KEYS_SETTING",
    "InvalidSecretKey",
    "SecretBox",
    "SecretUnreadable",
    "SecretValue",
]
