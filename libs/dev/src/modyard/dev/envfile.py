"""Writing ``.run/infra.env``, the settings file ``CommonSettings`` reads after ``.env``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

HEADER = (
    "# Written by `modyard dev infra up`; rewritten on every run, do not edit.\n"
    "# Effective connection settings of the local (or already running) infrastructure.\n"
    "# Exported MODYARD_* variables and .env take precedence over this file.\n"
)

# Values made only of these characters need no quoting in a dotenv file.
_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./~*?\[\]{}-]*$")


def quote(value: str) -> str:
    """Quote a value for python-dotenv (which pydantic-settings uses) when it needs it."""
    if _PLAIN.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render(values: Mapping[str, str], comments: Mapping[str, str] | None = None) -> str:
    """``KEY=value`` lines in the given order, with optional ``# comment`` lines at the end."""
    lines = [HEADER]
    for key, value in values.items():
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise ValueError(f"not an environment variable name: {key!r}")
        lines.append(f"{key}={quote(value)}\n")
    for component, note in (comments or {}).items():
        first_line = note.strip().splitlines()[0] if note.strip() else ""
        lines.append(f"# {component}: {first_line}\n")
    return "".join(lines)


def write(path: Path, values: Mapping[str, str], comments: Mapping[str, str] | None = None) -> None:
    """Replace ``path`` atomically; owner-only because it holds (development) passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(render(values, comments))
    os.replace(tmp, path)
