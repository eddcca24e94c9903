"""What the runtime's logic needs besides a database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from modyard.common.bus.connection import Bus
from modyard.common.bus.management import BrokerManagement
from modyard.common.service_context import ContextSlot
from modyard.runtime.apps.registry_client import RegistryClient
from modyard.runtime.automations.service import AutomationService
from modyard.runtime.egress.gate import RuntimeEgress
from modyard.runtime.engine.flow_cache import FlowCache
from modyard.runtime.executors import ModuleExecutors
from modyard.runtime.installer_client import InstallerClient
from modyard.runtime.replica_news import ReplicaNews
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.webhooks.delivery import WebhookDeliverer


@dataclass
class RuntimeContext:
    settings: RuntimeSettings
    installer: InstallerClient
    bus: Bus
    flows: FlowCache
    #: js webhook components and start/stop are called from requests (flows/js_lifecycle.py).
    executors: ModuleExecutors | None = None
    #: System webhook deliveries (their own loop; kept here so nothing else holds it loosely).
    webhooks: WebhookDeliverer | None = None
    #: The broker's management API (worker credentials).
    management: BrokerManagement | None = None
    #: Set when the automations wiring starts (automations/wiring.py), with the registry client
    #: the apps' publishing shares.
    automations: AutomationService | None = None
    registry: RegistryClient | None = None
    #: This app's egress gate (gate.current() is the process's last installed one: with two apps
    #: in one process, as in the replica tests, this is each one's own).
    egress: RuntimeEgress | None = None
    #: This app's news (replica_news.py): a change it serves is heard here right after the commit.
    news: ReplicaNews | None = None


SLOT = ContextSlot(RuntimeContext)
Context = Annotated[RuntimeContext, Depends(SLOT.dependency)]
