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

cryptography (its Rust extension and OpenSSL, ~7 MiB of a process) is imported when a box first
encrypts or decrypts, not when this module is imported or a box is made: every service makes its
box at start-up, but most of them open a secret only on a few requests. The keys are still checked
when the box is made (a Fernet key is 32 url-safe base64-encoded bytes), so a wrong key still stops
the service at start-up.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, final

from pydantic import SecretStr

if TYPE_CHECKING:
    from cryptography.fernet import Fernet, MultiFernet

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


def _checked_key(key: bytes) -> bytes:
    """``key`` if it is a Fernet key (what ``Fernet(key)`` checks, without importing it)."""
    try:
        raw = base64.urlsafe_b64decode(key)
    except (binascii.Error, ValueError):
        raise ValueError("not url-safe base64") from None
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    return key


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

    __slots__ = ("_ciphers", "_key_count", "_keys", "_setting")

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
        checked: list[bytes] = []
        for position, key in enumerate(keys, start=1):
            try:
                checked.append(_checked_key(_plain_key(key)))
            except (ValueError, TypeError):
                raise InvalidSecretKey(
                    f"key {position} of {len(keys)} in {setting} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes); generate one with "
                    "SecretBox.generate_key() or `modyard secret-key`"
                ) from None
        self._keys = tuple(checked)
        self._key_count = len(checked)
        self._ciphers: tuple[Fernet, MultiFernet] | None = None

    def _fernets(self) -> tuple[Fernet, MultiFernet]:
        """The current key's Fernet and every key's MultiFernet, made on first use (see the
        module's docstring: cryptography is imported here, not at start-up)."""
        if self._ciphers is None:
            from cryptography.fernet import Fernet, MultiFernet

            fernets = [Fernet(key) for key in self._keys]
            self._ciphers = (fernets[0], MultiFernet(fernets))
        return self._ciphers

    @classmethod
    def from_setting(cls, value: str | SecretStr, *, setting: str = KEYS_SETTING) -> SecretBox:
        """From the setting's text: keys separated by commas (blanks around them ignored)."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return cls([key.strip() for key in text.split(",") if key.strip()], setting=setting)

    @staticmethod
    def generate_key() -> str:
        """A new random key, as text to put in the setting."""
        # What Fernet.generate_key() returns, without importing cryptography for it.
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")

    @property
    def key_count(self) -> int:
        return self._key_count

    def __repr__(self) -> str:
        return f"SecretBox(keys={self._key_count})"

    def encrypt(self, data: bytes) -> str:
        return self._fernets()[1].encrypt(data).decode("ascii")

    def decrypt(self, token: str | bytes) -> bytes:
        fernet = self._fernets()[1]
        from cryptography.fernet import InvalidToken  # loaded by _fernets

        try:
            return fernet.decrypt(token)
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
        fernet = self._fernets()[1]
        from cryptography.fernet import InvalidToken  # loaded by _fernets

        try:
            return fernet.rotate(token).decode("ascii")
        except (InvalidToken, TypeError, ValueError):
            raise SecretUnreadable(
                f"a stored secret cannot be rotated: none of the {self._key_count} configured key(s) "
                f"decrypts it (was its key removed from {self._setting}?)"
            ) from None

    def needs_rotation(self, token: str | bytes) -> bool:
        """True when ``token`` was not written under the current key (it needs :meth:`rotate`)."""
        current = self._fernets()[0]
        from cryptography.fernet import InvalidToken  # loaded by _fernets

        try:
            current.decrypt(token)
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
