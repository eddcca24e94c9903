"""Events the installer emits (``modyard.installer.installation.*``), with what the runtime,
gateway and deployer need to act without calling back."""

from __future__ import annotations

from typing import Any

from modyard.common.bus.envelope import CloudEvent, event_type, new_event
from modyard.installer.models import Installation

INSTALLATION_CREATED = event_type("installer", "installation", "created")
INSTALLATION_CONFIGURED = event_type("installer", "installation", "configured")
INSTALLATION_UPGRADED = event_type("installer", "installation", "upgraded")
INSTALLATION_REMOVED = event_type("installer", "installation", "removed")

#: Why the runtime stops flows after a breaking upgrade.
MAJOR_UPGRADE_REASON = "module_major_upgrade"


def components_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """What the runtime needs to validate and run a flow's nodes without calling back."""
    return [
        {
            "name": component["name"],
            "role": component["role"],
            "executor": component.get("executor", {}).get("type"),
            # How to reach it, e.g. the ``http`` executor's deployment and path.
            "executor_options": component.get("executor", {}).get("extra", {}),
            "private": component.get("private", False),
            "polling_interval_seconds": component.get("polling_interval_seconds"),
            # A webhook component is served at /v1/hooks/… by the runtime (js executor).
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
    return new_event(
        source=source,
        type=kind,
        subject=f"{workspace}/{installation.slug}",
        data={
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
        },
    )
