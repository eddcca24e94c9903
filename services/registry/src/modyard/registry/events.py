"""Events the registry emits (``modyard.registry.module.*``)."""

from __future__ import annotations

from modyard.common.bus.envelope import CloudEvent, event_type, new_event
from modyard.registry.models import ModuleVersion

MODULE_PUBLISHED = event_type("registry", "module", "published")
MODULE_YANKED = event_type("registry", "module", "yanked")


def module_event(kind: str, source: str, name: str, version: ModuleVersion) -> CloudEvent:
    manifest = version.manifest
    return new_event(
        source=source,
        type=kind,
        subject=f"{name}@{version.version}",
        data={
            "name": name,
            "version": version.version,
            "format": manifest["format"],
            "kind": manifest["kind"],
            "digest": version.archive_digest,
            "yanked": version.yanked,
            "reason": version.yanked_reason,
        },
    )
