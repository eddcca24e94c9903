"""SemVer 2.0 versions and npm-style ranges (``^``, ``~``, exact, ``>=``, ``||``, ``x``).

A thin layer over ``semantic_version`` (its ``NpmSpec`` implements npm's range grammar), so that
every service reads versions the same way: Slingr's ``v1.2.3`` is ``1.2.3``.
"""

from __future__ import annotations

from collections.abc import Iterable

from semantic_version import NpmSpec as Range
from semantic_version import Version


class InvalidVersion(ValueError):
    pass


def parse_version(text: str) -> Version:
    candidate = text.strip()
    if candidate[:1] in ("v", "V"):
        candidate = candidate[1:]
    try:
        return Version(candidate)
    except ValueError as exc:
        raise InvalidVersion(
            f"{text!r} is not a SemVer 2.0 version (MAJOR.MINOR.PATCH, e.g. 1.4.0)"
        ) from exc


def normalize_version(text: str) -> str:
    return str(parse_version(text))


def parse_range(text: str) -> Range:
    """An npm range; ``v``-prefixed versions inside it (``^v1.2.0``) are accepted too."""
    cleaned = " ".join(_strip_v(token) for token in text.strip().split())
    try:
        return Range(cleaned or "*")
    except ValueError as exc:
        raise InvalidVersion(
            f"{text!r} is not an npm-style range (e.g. ^1.2.0, ~1.2, >=2.0.0 <3, 1.x, or a || b)"
        ) from exc


def normalize_range(text: str) -> str:
    """The range as we store it: validated, ``v`` prefixes removed, blanks collapsed."""
    return str(parse_range(text))


def satisfies(version: str | Version, range_text: str) -> bool:
    candidate = version if isinstance(version, Version) else parse_version(version)
    return candidate in parse_range(range_text)


def newest(versions: Iterable[str]) -> str | None:
    parsed = sorted((parse_version(v) for v in versions), reverse=True)
    return str(parsed[0]) if parsed else None


def _strip_v(token: str) -> str:
    for prefix in ("^", "~", ">=", "<=", ">", "<", "="):
        if token.startswith(prefix):
            rest = token[len(prefix) :]
            return prefix + (rest[1:] if rest[:1] in ("v", "V") and rest[1:2].isdigit() else rest)
    return token[1:] if token[:1] in ("v", "V") and token[1:2].isdigit() else token


def version_parts(text: str) -> tuple[int, int, int, bool]:
    """(major, minor, patch, is_prerelease), typed for storage and sorting."""
    version = parse_version(text)
    return (
        int(version.major),
        int(version.minor),
        int(version.patch),
        bool(version.prerelease),
    )
