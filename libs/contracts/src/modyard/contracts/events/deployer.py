"""The deployer's events: a deployment's status changed."""

from __future__ import annotations

from typing import Final

from modyard.contracts.events import EventData

DEPLOYMENT_STATUS_CHANGED: Final = "modyard.deployer.deployment.status_changed"


class DeploymentStatusChanged(EventData):
    id: str
    name: str
    #: ``repository[:tag][@digest]``
    image: str
    tag: str | None
    status: str
    previous_status: str | None
    desired: str
    reason: str | None
    restarts: int
    generation: int
    port: int | None
