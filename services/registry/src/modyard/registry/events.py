"""Events the registry emits (``modyard.registry.module.*``, modyard.contracts.events.registry)."""

from __future__ import annotations

from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.contracts.events import payload
from modyard.contracts.events.registry import (
    MODULE_PUBLISHED,
    MODULE_YANKED,
    ModuleVersionEvent,
)
from modyard.registry.models import ModuleVersion

__all__ = ["MODULE_PUBLISHED", "MODULE_YANKED", "module_event"]


def module_event(kind: str, source: str, name: str, version: ModuleVersion) -> CloudEvent:
    manifest = version.manifest
    return new_event(
        source=source,
        type=kind,
        subject=f"{name}@{version.version}",
        data=payload(
            ModuleVersionEvent(
                name=name,
                version=version.version,
                format=manifest["format"],
                kind=manifest["kind"],
                digest=version.archive_digest,
                yanked=version.yanked,
                reason=version.yanked_reason,
            )
        ),
    )
