"""The AppCell platform's interface schemas (``core/``), which modyard ships as the platform.

A plugin lists in ``implements`` the interfaces it provides, by URLs under the AppCell
repository's ``core/``: ``https://repository.appcell.io/core/service.schema`` in older cells,
``…/core/interface/service.schema.json`` in cells made by MicroCell's ``app:rename``. Those schemas
belong to the platform that runs the cell, not to the cell, so real cells do not bundle them. modyard
is that platform: it ships its own schemas for the interfaces (``platform/appcell/core`` in this
package) and a reference naming one resolves to them, whatever the host, even when the cell bundles
a copy: a cell cannot weaken the contract it claims to implement.

Each interface schema describes the plugin's actions object (action key → executions); the gateway
checks the plugin against it at install time. A ``core/`` reference naming no shipped interface is
resolved as any other reference (to a file bundled in the archive).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

#: Where the shipped schemas live inside the package (declared as package data).
PLATFORM_PACKAGE = "modyard.modules"
PLATFORM_DIR = ("platform", "appcell", "core")

# core/<name>.schema, core/<name>.schema.json or core/interface/<name>.schema.json
_INTERFACE = re.compile(r"^core/(?:interface/)?(?P<name>[a-z0-9_-]+)\.schema(?:\.json)?$")


@dataclass(frozen=True)
class PlatformSchema:
    #: The interface's name (``service``, ``renewable`` …).
    name: str
    #: Where the manifest says the schema is: ``core/<name>.schema.json`` of the platform.
    path: str
    document: Any
    #: ``sha256:<hex>`` of the shipped file, so a manifest records which version it was checked with.
    digest: str


@cache
def platform_schemas() -> dict[str, PlatformSchema]:
    """Every shipped interface schema, by name."""
    folder = files(PLATFORM_PACKAGE).joinpath(*PLATFORM_DIR)
    shipped: dict[str, PlatformSchema] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".schema.json"):
            continue
        data = entry.read_bytes()
        name = entry.name.removesuffix(".schema.json")
        shipped[name] = PlatformSchema(
            name=name,
            path=f"core/{entry.name}",
            document=json.loads(data),
            digest="sha256:" + hashlib.sha256(data).hexdigest(),
        )
    return shipped


def interface_path(reference: str) -> str | None:
    """``core/…`` of an http(s) URL or relative reference, lower-cased, or None."""
    target = urldefrag(reference.strip()).url
    parts = urlsplit(target)
    if parts.scheme not in ("", "http", "https"):
        return None
    path = posixpath.normpath(unquote(parts.path).lstrip("/")) if parts.path.strip("/") else ""
    path = path.casefold()
    return path if path.startswith("core/") else None


def platform_schema_for(reference: str) -> PlatformSchema | None:
    """The shipped schema ``reference`` names, or None when it names none."""
    path = interface_path(reference)
    match = _INTERFACE.match(path) if path else None
    return platform_schemas().get(match["name"]) if match else None


def platform_schema_at(path: str) -> PlatformSchema | None:
    """The shipped schema whose manifest path is ``path`` (``core/service.schema.json``)."""
    return next((shipped for shipped in platform_schemas().values() if shipped.path == path), None)


def shipped_interfaces() -> str:
    """The interface names, for messages: ``availability, impersonate, …``."""
    return ", ".join(sorted(platform_schemas()))


__all__ = [
    "PlatformSchema",
    "interface_path",
    "platform_schema_at",
    "platform_schema_for",
    "platform_schemas",
    "shipped_interfaces",
]
