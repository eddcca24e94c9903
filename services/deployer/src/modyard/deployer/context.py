"""What the deployer's endpoints need besides a database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from modyard.common.secrets import SecretBox
from modyard.common.service_context import ContextSlot
from modyard.deployer.backend import ContainerBackend
from modyard.deployer.reconciler import Reconciler
from modyard.deployer.settings import DeployerSettings


@dataclass
class DeployerContext:
    settings: DeployerSettings
    secrets: SecretBox
    backend: ContainerBackend
    reconciler: Reconciler


SLOT = ContextSlot(DeployerContext)
Context = Annotated[DeployerContext, Depends(SLOT.dependency)]
