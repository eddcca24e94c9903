"""Events the installer emits (``modyard.installer.installation.*``, their data modelled in
modyard.contracts.events.installer), with what the runtime, gateway and JS runner need to act
without calling back."""

from __future__ import annotations

from typing import Any

from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.contracts.events import payload
from modyard.contracts.events.installer import (
    INSTALLATION_CONFIGURED,
    INSTALLATION_CREATED,
    INSTALLATION_REMOVED,
    INSTALLATION_UPGRADED,
    MAJOR_UPGRADE_REASON,
    InstallationEvent,
)
from modyard.installer.models import Installation

__all__ = [
    "INSTALLATION_CONFIGURED",
    "INSTALLATION_CREATED",
    "INSTALLATION_REMOVED",
    "INSTALLATION_UPGRADED",
    "MAJOR_UPGRADE_REASON",
    "components_of",
    "installation_event",
]


def components_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """What the runtime needs to validate and run a flow's nodes without calling back (the
    fields of ``InstallationComponent``)."""
    return [
        {
            "name": component["name"],
            "role": component["role"],
            "executor": component.get("executor", {}).get("type"),
            "executor_options": component.get("executor", {}).get("extra", {}),
            "private": component.get("private", False),
            "polling_interval_seconds": component.get("polling_interval_seconds"),
            "webhook": component.get("webhook", False),
            "properties_schema": component.get("properties_schema"),
            "in_ports": [port["name"] for port in component.get("in_ports", [])],
            "out_ports": [port["name"] for port in component.get("out_ports", [])],
        }
        for component in manifest.get("components", [])
    ]


def installation_event(
    kind: str, source: str, workspace: str, installation: Installation, **extra: Any
) -> CloudEvent:
    """``extra``: the upgrade's and the removal's own fields of ``InstallationEvent`` (a name it
    does not have is an error here, not a key the consumers never read)."""
    unknown = extra.keys() - InstallationEvent.model_fields.keys()
    if unknown:
        raise TypeError(f"InstallationEvent has no field {', '.join(sorted(unknown))}")
    data = InstallationEvent.model_validate(
        {
            "workspace": workspace,
            "slug": installation.slug,
            "installation_id": str(installation.id),
            "module": installation.module,
            "version": installation.version,
            "format": installation.format,
            "kind": installation.kind,
            "pinned": installation.pinned,
            "parent_id": str(installation.parent_id) if installation.parent_id else None,
            "components": components_of(installation.manifest),
            **extra,
        }
    )
    return new_event(
        source=source, type=kind, subject=f"{workspace}/{installation.slug}", data=payload(data)
    )
