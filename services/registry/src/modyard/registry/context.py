"""What the registry's endpoints need besides a database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from modyard.common.service_context import ContextSlot
from modyard.registry.settings import RegistrySettings


@dataclass(frozen=True)
class RegistryContext:
    settings: RegistrySettings


SLOT = ContextSlot(RegistryContext)
Context = Annotated[RegistryContext, Depends(SLOT.dependency)]
