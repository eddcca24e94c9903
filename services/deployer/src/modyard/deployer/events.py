"""Events the deployer emits."""

from __future__ import annotations

from modyard.common.bus.envelope import CloudEvent, event_type, new_event
from modyard.deployer.models import Deployment

STATUS_CHANGED = event_type("deployer", "deployment", "status_changed")


def status_changed(source: str, deployment: Deployment, previous: str | None) -> CloudEvent:
    return new_event(
        source=source,
        type=STATUS_CHANGED,
        subject=deployment.name,
        data={
            "id": str(deployment.id),
            "name": deployment.name,
            "image": image_of(deployment),
            "tag": deployment.tag,
            "status": deployment.status,
            "previous_status": previous,
            "desired": deployment.desired,
            "reason": deployment.reason,
            "restarts": deployment.restart_count,
            "generation": deployment.generation,
            "port": deployment.port,
        },
    )


def image_of(deployment: Deployment) -> str:
    text = deployment.repository
    if deployment.tag:
        text += f":{deployment.tag}"
    if deployment.digest:
        text += f"@{deployment.digest}"
    return text
