"""Events the deployer emits (modyard.contracts.events.deployer)."""

from __future__ import annotations

from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.contracts.events import payload
from modyard.contracts.events.deployer import DEPLOYMENT_STATUS_CHANGED, DeploymentStatusChanged
from modyard.deployer.models import Deployment


def status_changed(source: str, deployment: Deployment, previous: str | None) -> CloudEvent:
    return new_event(
        source=source,
        type=DEPLOYMENT_STATUS_CHANGED,
        subject=deployment.name,
        data=payload(
            DeploymentStatusChanged(
                id=str(deployment.id),
                name=deployment.name,
                image=image_of(deployment),
                tag=deployment.tag,
                status=deployment.status,
                previous_status=previous,
                desired=deployment.desired,
                reason=deployment.reason,
                restarts=deployment.restart_count,
                generation=deployment.generation,
                port=deployment.port,
            )
        ),
    )


def image_of(deployment: Deployment) -> str:
    text = deployment.repository
    if deployment.tag:
        text += f":{deployment.tag}"
    if deployment.digest:
        text += f"@{deployment.digest}"
    return text
