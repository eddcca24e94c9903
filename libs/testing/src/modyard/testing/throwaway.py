"""Private RabbitMQ and PostgreSQL nodes that a fault test may stop and restart at will.

The shared development broker and database serve every engineer and every test session on the
machine, so a test must never stop them. These are the very components ``modyard dev infra up``
starts (same code, same loopback-only listeners), but with their own ports, node name, Erlang
cookie and epmd, under a temporary directory that is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from modyard.common.settings import CommonSettings
from modyard.dev.paths import RunLayout
from modyard.dev.postgres import Postgres
from modyard.dev.processes import StartupError, signal_process, wait_gone
from modyard.dev.rabbitmq import NodeAddress, RabbitMQ
from modyard.testing.services import free_port

START_TIMEOUT = 90.0


@dataclass
class ThrowawayRabbitMQ:
    node: RabbitMQ
    pid: int

    @property
    def amqp_url(self) -> str:
        return self.node.address.amqp_url

    @property
    def management_url(self) -> str:
        return self.node.address.management_url

    def env(self) -> dict[str, str]:
        """Settings that point a service process at this node."""
        return {
            "MODYARD_AMQP_URL": self.amqp_url,
            "MODYARD_AMQP_MANAGEMENT_URL": self.management_url,
        }

    async def _ctl(self, *args: str) -> None:
        result = await asyncio.to_thread(self.node.ctl, *args)
        if result.returncode != 0:
            raise StartupError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")

    async def stop_app(self) -> None:
        """The broker application stops (every connection is closed, nothing listens on AMQP);
        the Erlang node keeps running, as in a RabbitMQ restart or an operator's maintenance."""
        await self._ctl("stop_app")

    async def start_app(self) -> None:
        """Returns once the broker accepts connections again."""
        await self._ctl("start_app")


@dataclass
class ThrowawayPostgres:
    cluster: Postgres
    pid: int

    @property
    def url(self) -> str:
        return self.cluster.local_url

    async def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut and open transactions roll back."""
        self.pid = await asyncio.to_thread(self.cluster.restart, START_TIMEOUT)


def _private_root(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    # As root, PostgreSQL runs as an unprivileged user that must traverse into the directory.
    root.chmod(0o711)
    return root


@asynccontextmanager
async def throwaway_rabbitmq() -> AsyncIterator[ThrowawayRabbitMQ]:
    """A RabbitMQ node of its own (with the management plugin), deleted on exit."""
    root = _private_root("modyard-rabbitmq-")
    address = NodeAddress(
        nodename=f"modyard-{uuid.uuid4().hex[:8]}@localhost",
        amqp_port=free_port(),
        management_port=free_port(),
        dist_port=free_port(),
        epmd_port=free_port(),
        ctl_dist_port=free_port(),
    )
    node = RabbitMQ(RunLayout(root), CommonSettings(_env_file=None), address)
    pid: int | None = None
    try:
        pid = await asyncio.to_thread(node.start, START_TIMEOUT)
        yield ThrowawayRabbitMQ(node, pid)
    finally:
        if pid is not None:
            # Its data is deleted next, so no clean shutdown (which takes seconds): the whole
            # process group (the Erlang VM and its port helpers) is killed at once.
            signal_process(pid, signal.SIGKILL, group=True)
            await asyncio.to_thread(wait_gone, pid, 10)
        await asyncio.to_thread(node.cleanup_after_stop)
        shutil.rmtree(root, ignore_errors=True)


@asynccontextmanager
async def throwaway_postgres() -> AsyncIterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of its own (``initdb`` into a temporary directory), deleted on exit."""
    root = _private_root("modyard-postgres-")
    cluster = Postgres(RunLayout(root), CommonSettings(_env_file=None), port=free_port())
    handle: ThrowawayPostgres | None = None
    try:
        handle = ThrowawayPostgres(cluster, await asyncio.to_thread(cluster.start, START_TIMEOUT))
        yield handle
    finally:
        if handle is not None:
            await asyncio.to_thread(cluster.stop, handle.pid, 30)
        shutil.rmtree(root, ignore_errors=True)
