"""Events every runtime process hears, on one queue of its own (``runtime.news.<id>``).

The service's ``runtime.events`` queue gives each event to one replica: right for work done once,
wrong for what each process keeps in memory. Here every process hears the changes its cached
copies were made of (a flow, a workspace's automations or allow-list, an installation's config,
a deployment's endpoint)
and drops them, and the automations' emitted events that may wake one of its ``wait``s. The
runtime's own change events go through the outbox, so they are heard once the change committed.

After a lost broker connection every copy goes (``on_reconnect``): news may have been missed
meanwhile, and the copies' TTLs would otherwise be the only bound.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import structlog

from modyard.common.bus.connection import TopologyHook
from modyard.common.bus.envelope import CloudEvent
from modyard.common.bus.process_queue import process_queue
from modyard.contracts.events import parse
from modyard.contracts.events.deployer import DEPLOYMENT_STATUS_CHANGED, DeploymentStatusChanged
from modyard.contracts.events.installer import (
    INSTALLATION_CONFIGURED,
    INSTALLATION_CREATED,
    INSTALLATION_REMOVED,
    INSTALLATION_UPGRADED,
    InstallationEvent,
)
from modyard.contracts.events.runtime import (
    EGRESS_CHANGED,
    FLOW_CHANGED,
    EgressChanged,
    FlowChanged,
)
from modyard.runtime.deployer_client import DeployerClient
from modyard.runtime.egress.gate import RuntimeEgress
from modyard.runtime.engine.flow_cache import FlowCache
from modyard.runtime.installer_client import InstallerClient

log = structlog.get_logger(__name__)

QUEUE_PREFIX = "runtime.news"


class ReplicaNews:
    """Handlers by event type (exact types: a wildcard would also bind the busy
    ``flow.emitted``), registered before the bus connects; :meth:`topology` declares the queue."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[[CloudEvent], None]]] = {}
        self._reconnects: list[Callable[[], None]] = []

    def on(self, event_type: str, handler: Callable[[CloudEvent], None]) -> None:
        self._handlers.setdefault(event_type, []).append(handler)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnects.append(callback)

    def topology(self) -> TopologyHook:
        return process_queue(
            QUEUE_PREFIX, sorted(self._handlers), self.hear, on_reconnect=self.reconnected
        )

    def hear(self, event: CloudEvent) -> None:
        for handler in self._handlers.get(event.type, ()):
            try:
                handler(event)
            except Exception:  # one handler's bug must not keep the others' copies
                log.exception("replica_news_handler_failed", type=event.type, event_id=event.id)

    def reconnected(self) -> None:
        for callback in self._reconnects:
            callback()


def drop_copies_on_news(
    news: ReplicaNews,
    flows: FlowCache,
    egress: RuntimeEgress,
    installer: InstallerClient,
    deployer: DeployerClient,
) -> None:
    """The engine's copies: a flow, a workspace's allow-list, an installation's effective config,
    a deployment's endpoint (the automations add the workspaces' programs, automations/wiring.py)."""

    def flow_changed(event: CloudEvent) -> None:
        data = parse(FlowChanged, event.data)
        if data is not None:
            flows.forget(uuid.UUID(data.flow_id))

    def egress_changed(event: CloudEvent) -> None:
        data = parse(EgressChanged, event.data)
        if data is not None:
            egress.forget(data.workspace)

    def installation_changed(event: CloudEvent) -> None:
        # Every kind: a created one may follow a removed one's 404, an upgrade brings defaults.
        data = parse(InstallationEvent, event.data)
        if data is not None:
            installer.forget_config(data.workspace, data.slug)

    def deployment_changed(event: CloudEvent) -> None:
        # Any status change: a redeploy moves the container (another port), a stop ends it.
        # Modules name their deployment by name; the id is dropped too, in case one is by id.
        data = parse(DeploymentStatusChanged, event.data)
        if data is not None:
            deployer.forget(data.name)
            deployer.forget(data.id)

    news.on(FLOW_CHANGED, flow_changed)
    news.on(DEPLOYMENT_STATUS_CHANGED, deployment_changed)
    news.on(EGRESS_CHANGED, egress_changed)
    for kind in (
        INSTALLATION_CREATED,
        INSTALLATION_CONFIGURED,
        INSTALLATION_UPGRADED,
        INSTALLATION_REMOVED,
    ):
        news.on(kind, installation_changed)
    news.on_reconnect(flows.forget_all)
    news.on_reconnect(egress.forget_all)
    news.on_reconnect(installer.forget_configs)
    news.on_reconnect(deployer.forget_all)
