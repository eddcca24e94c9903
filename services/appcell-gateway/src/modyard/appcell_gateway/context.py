"""What the gateway's endpoints and consumers share, built by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from modyard.appcell_gateway.broker_admin import BrokerAdmin
from modyard.appcell_gateway.cells.store import CellCache, CellDeps
from modyard.appcell_gateway.dispatch import Dispatcher
from modyard.appcell_gateway.pipeline import Pipeline
from modyard.appcell_gateway.request_log.service import RequestLog
from modyard.appcell_gateway.settings import GatewaySettings
from modyard.appcell_gateway.upstream import InstallerClient, RegistryClient
from modyard.common.db.database import Database
from modyard.common.secrets import SecretBox
from modyard.common.service_context import ContextSlot
from modyard.common.tokens import VerifiedTokens


@dataclass
class GatewayContext:
    settings: GatewaySettings
    database: Database
    registry: RegistryClient
    installer: InstallerClient
    broker: BrokerAdmin
    secrets: SecretBox
    cells: CellCache
    dispatcher: Dispatcher
    requests: RequestLog
    pipeline: Pipeline
    tokens: VerifiedTokens

    @property
    def cell_deps(self) -> CellDeps:
        return CellDeps(
            registry=self.registry,
            broker=self.broker,
            secrets=self.secrets,
            source=self.settings.source,
        )


SLOT = ContextSlot(GatewayContext)
