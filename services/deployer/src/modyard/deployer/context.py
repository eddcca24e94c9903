"""What the deployer's endpoints need besides a database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from modyard.common.secrets import SecretBox
from modyard.deployer.backend import ContainerBackend
from modyard.deployer.reconciler import Reconciler
from modyard.deployer.settings import DeployerSettings


@dataclass
class DeployerContext:
    settings: DeployerSettings
    secrets: SecretBox
    backend: ContainerBackend
    reconciler: Reconciler


def get_context(request: Request) -> DeployerContext:
    context = request.app.state.deployer
    assert isinstance(context, DeployerContext)
    return context


Context = Annotated[DeployerContext, Depends(get_context)]
