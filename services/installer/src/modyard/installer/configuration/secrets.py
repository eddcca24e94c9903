"""Which settings are secrets, and masking, splitting and restoring them (see the package docstring)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final, TypeAlias

import structlog

from modyard.common.secrets import SecretValue
from modyard.installer.configuration.declared import MISSING, Path, Setting, spec_settings
from modyard.installer.configuration.description import accepts_strings
from modyard.modules.manifest import ConfigSpec

log = structlog.get_logger(__name__)

#: What a secret looks like in anything the API returns.
MASK: Final = "********"

# Field types whose values are not free text, so never secrets by their name alone.
_NOT_TEXT_TYPES = frozenset(
    {"toggle", "number", "dropDown", "buttonsGroup", "fieldsGroup", "json", "boolean", "integer"}
)
_SECRET_NOUNS = ("password", "passwd", "passphrase", "secret", "token", "credential", "credentials")
_KEY_QUALIFIERS = frozenset(
    {"api", "private", "secret", "access", "signing", "encryption", "client"}
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _name_looks_secret(name: str) -> bool:
    words = [word.lower() for word in _WORDS.findall(name)]
    if not words:
        return False
    last = words[-1]
    if last.endswith(_SECRET_NOUNS) or last in ("apikey", "privatekey", "secretkey", "accesskey"):
        return True
    return last == "key" and len(words) > 1 and words[-2] in _KEY_QUALIFIERS


def _is_text_setting(setting: Setting) -> bool:
    if setting.is_group:
        return False
    if setting.ui is not None and setting.ui.type in _NOT_TEXT_TYPES:
        return False
    schema = setting.object_schema if setting.multiple else setting.schema
    if not schema:
        return True
    return accepts_strings(schema)


def _is_secret(setting: Setting) -> bool:
    if setting.ui is not None and (setting.ui.secret or setting.ui.type == "password"):
        return True
    if setting.schema is not None and (
        setting.schema.get("writeOnly") is True or setting.schema.get("secret") is True
    ):
        return True
    return _name_looks_secret(setting.name) and _is_text_setting(setting)


def _secret_paths(settings: Mapping[str, Setting], prefix: Path) -> Iterator[Path]:
    for name, setting in settings.items():
        path = (*prefix, name)
        if _is_secret(setting):
            yield path  # the whole value, members included
        else:
            yield from _secret_paths(setting.members, path)


def secret_paths(spec: ConfigSpec) -> frozenset[Path]:
    """Where a configuration of this module holds secrets (see the package docstring)."""
    return frozenset(_secret_paths(spec_settings(spec), ()))


# A trie of paths: name → sub-trie, or None where the value at that name is a secret.
_Trie: TypeAlias = dict[str, "_Trie | None"]


def _trie(paths: frozenset[Path] | set[Path]) -> _Trie:
    root: _Trie = {}
    for path in sorted(paths, key=len):
        node: _Trie | None = root
        for part in path[:-1]:
            assert node is not None
            node = node.setdefault(part, {})
            if node is None:
                break  # an ancestor is secret already: so is everything below it
        else:
            if path and node is not None:
                node[path[-1]] = None
    return root


def _masked(value: Any) -> Any:
    if value is None:
        return None  # "not set" is not a secret
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return MASK  # objects too: their keys may say as much as their values


def _mask(value: Any, trie: _Trie) -> Any:
    if isinstance(value, list):
        return [_mask(item, trie) for item in value]
    if not isinstance(value, Mapping):
        return copy.deepcopy(value)
    masked: dict[str, Any] = {}
    for key, item in value.items():
        if key not in trie:
            masked[key] = copy.deepcopy(item)
            continue
        sub = trie[key]
        masked[key] = _masked(item) if sub is None else _mask(item, sub)
    return masked


def mask(config: Mapping[str, Any], paths: frozenset[Path]) -> dict[str, Any]:
    """A copy of ``config`` with every secret value (each element of a list) shown as ``MASK``."""
    result: dict[str, Any] = _mask(config, _trie(paths))
    return result


def _split(value: Any, trie: _Trie) -> tuple[Any, Any, bool]:
    if isinstance(value, list):
        parts = [_split(item, trie) for item in value]
        found = any(part[2] for part in parts)
        return [part[0] for part in parts], [part[1] for part in parts] if found else None, found
    if not isinstance(value, Mapping):
        return copy.deepcopy(value), None, False
    plain: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for key, item in value.items():
        if key not in trie:
            plain[key] = copy.deepcopy(item)
            continue
        sub = trie[key]
        if sub is None:
            secrets[key] = copy.deepcopy(item)
            continue
        plain[key], secret, found = _split(item, sub)
        if found:
            secrets[key] = secret
    return plain, secrets, bool(secrets)


def split_secrets(
    config: Mapping[str, Any], paths: frozenset[Path]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(plain, secrets)``: the configuration without its secrets, and the secrets alone.

    Lists keep their length on both sides (an element without secrets is ``{}``/``None`` in
    ``secrets``), so :func:`merge_secrets` puts every secret back in its element.
    """
    plain, secrets, found = _split(config, _trie(paths))
    return plain, secrets if found else {}


def _merge_secret(plain: Any, secret: Any) -> Any:
    if secret is None:
        return copy.deepcopy(plain)
    if isinstance(plain, Mapping) and isinstance(secret, Mapping):
        merged = copy.deepcopy(dict(plain))
        for key, item in secret.items():
            merged[key] = _merge_secret(plain[key], item) if key in plain else copy.deepcopy(item)
        return merged
    if isinstance(plain, list) and isinstance(secret, list):
        merged_list = [_merge_secret(p, s) for p, s in zip(plain, secret, strict=False)]
        longer = plain if len(plain) > len(secret) else secret
        return merged_list + copy.deepcopy(longer[len(merged_list) :])
    return copy.deepcopy(secret)


def merge_secrets(plain: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`split_secrets`."""
    merged: dict[str, Any] = _merge_secret(plain, secrets)
    return merged


def _unmask(value: Any, previous: Any) -> Any:
    if value == MASK:
        return previous if previous is not None else MISSING
    if isinstance(value, list):
        restored = [
            _unmask(
                item,
                previous[index] if isinstance(previous, list) and index < len(previous) else None,
            )
            for index, item in enumerate(value)
        ]
        return [item for item in restored if item is not MISSING]
    return value


def _restore(value: Any, previous: Any, trie: _Trie) -> Any:
    if isinstance(value, list):
        return [
            _restore(
                item,
                previous[index] if isinstance(previous, list) and index < len(previous) else None,
                trie,
            )
            for index, item in enumerate(value)
        ]
    if not isinstance(value, Mapping):
        return value
    restored: dict[str, Any] = {}
    for key, item in value.items():
        before = previous.get(key) if isinstance(previous, Mapping) else None
        if key not in trie:
            restored[key] = item
            continue
        sub = trie[key]
        result = _unmask(item, before) if sub is None else _restore(item, before, sub)
        if result is not MISSING:
            restored[key] = result
    return restored


def restore_masked(
    values: Mapping[str, Any], previous: Mapping[str, Any], paths: frozenset[Path]
) -> dict[str, Any]:
    """``values`` with each secret sent back as ``MASK`` replaced by the ``previous`` value.

    What a client does when it edits a configuration it read masked. A mask with no previous value
    is dropped (a required secret is then reported missing). List elements match by position.
    """
    result: dict[str, Any] = _restore(copy.deepcopy(dict(values)), previous, _trie(paths))
    return result


def _conceal(value: Any, trie: _Trie) -> Any:
    if isinstance(value, list):
        return [_conceal(item, trie) for item in value]
    if not isinstance(value, Mapping):
        return value
    concealed: dict[str, Any] = {}
    for key, item in value.items():
        if key not in trie:
            concealed[key] = item
            continue
        sub = trie[key]
        if sub is not None:
            concealed[key] = _conceal(item, sub)
        else:
            concealed[key] = item if item is None else SecretValue(item)
    return concealed


def conceal(config: Mapping[str, Any], paths: frozenset[Path]) -> dict[str, Any]:
    """A copy whose secrets are :class:`SecretValue` s: safe to log or ``repr``; see :func:`reveal`."""
    result: dict[str, Any] = _conceal(config, _trie(paths))
    return result


def reveal(value: Any) -> Any:
    """The inverse of :func:`conceal`: plain JSON values again (for the wire to the runtime)."""
    if isinstance(value, SecretValue):
        return value.reveal()
    if isinstance(value, Mapping):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value
