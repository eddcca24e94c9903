"""What the installer's logic needs besides a database session."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from modyard.common.secrets import SecretBox
from modyard.common.service_context import ContextSlot
from modyard.installer.accounts.jsrunner_client import JsRunnerClient
from modyard.installer.registry_client import RegistryClient
from modyard.installer.settings import InstallerSettings


@dataclass
class InstallerContext:
    settings: InstallerSettings
    registry: RegistryClient
    secrets: SecretBox
    #: Runs modules' auth.js for accounts.
    jsrunner: JsRunnerClient
    #: Where ``APP_CONFIG_*``/``APP_SECRET_*`` overrides come from (the process environment).
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @classmethod
    def from_settings(cls, settings: InstallerSettings) -> InstallerContext:
        return cls(
            settings=settings,
            registry=RegistryClient(settings),
            secrets=settings.secret_box(),
            jsrunner=JsRunnerClient(settings),
        )


SLOT = ContextSlot(InstallerContext)
Context = Annotated[InstallerContext, Depends(SLOT.dependency)]
