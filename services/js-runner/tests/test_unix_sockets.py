"""A component cannot reach a Unix socket outside its sandbox.

Node 20's permission model does not check ``net.connect(path)``, and a socket path works from
any network namespace: without the mount namespace (sandbox.py) a child could talk to every
socket its user may open — the Docker daemon, PostgreSQL's local socket, the dev infra's
sockets under ``.run``. Each attempt here is made against a server the runner's user reaches
(the test connects to it first), while a bystander module keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jsrunner_env import Harness

from modyard.jsrunner.isolation import probe
from modyard.jsrunner.settings import JsRunnerSettings

CONNECT = """
const net = require('net');
module.exports = { receive(context) {
    return new Promise((resolve, reject) => {
        const socket = net.connect(context.messages.in.content.path);
        socket.on('connect', () => { socket.end(); resolve('connected'); });
        socket.on('error', reject);
    });
} };
"""

BYSTANDER = """
module.exports = { async receive(context) {
    await context.sendJson({ alive: context.messages.in.content }, 'out');
} };
"""

#: The dev infra's own sockets (`make infra`): the Docker daemon and PostgreSQL's local socket,
#: under the checkout's `.run` (the tests run from the checkout). The runner's user is root here.
INFRA_SOCKETS = (Path(".run/docker/docker.sock"), Path(".run/postgres/socket/.s.PGSQL.5432"))


class _Server:
    """A Unix socket server the runner's user can reach; counts who connected."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"hello\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> _Server:
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@contextlib.asynccontextmanager
async def _server_in(parent: Path) -> AsyncIterator[_Server]:
    directory = Path(tempfile.mkdtemp(prefix="s-", dir=parent))
    try:
        async with _Server(str(directory / "s.sock")) as server:
            # Reachable from outside the sandbox: the runner's own user connects.
            reader, writer = await asyncio.open_unix_connection(server.path)
            assert await reader.readline() == b"hello\n"
            writer.close()
            await writer.wait_closed()
            assert server.connections == 1
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _error(reply: dict[str, Any]) -> dict[str, Any]:
    assert "error" in reply, reply
    return dict(reply["error"])


async def _bystander_ok(harness: Harness, bystander: str, n: int) -> None:
    assert await harness.call(bystander, "Ok", n) == {"outputs": {"out": [{"alive": n}]}}


def _project_run_dir() -> Path:
    # Where the dev infra keeps its sockets (docker.sock, …): the checkout's `.run`, which the
    # runner's hidden_dirs name relative to its working directory (the checkout, in the tests).
    run = Path(".run").resolve()
    run.mkdir(exist_ok=True)
    return run


@pytest.mark.parametrize("where", ["tmp", "project_run"])
async def test_a_unix_socket_the_runner_reaches_is_not_reachable_from_a_component(
    harness: Harness, where: str
) -> None:
    parent = Path(tempfile.gettempdir()) if where == "tmp" else _project_run_dir()
    bystander = harness.module({"Ok": BYSTANDER})
    module = harness.module({"Connect": CONNECT})
    await _bystander_ok(harness, bystander, 1)
    async with _server_in(parent) as server:
        reply, _ = await asyncio.gather(
            harness.call(module, "Connect", {"path": server.path}),
            _bystander_ok(harness, bystander, 2),
        )
        error = _error(reply)
        # The path does not exist in the child's mount namespace.
        assert "ENOENT" in error["message"], error
        assert server.connections == 1  # only the test's own connection
    await _bystander_ok(harness, bystander, 3)


async def test_the_infras_daemon_sockets_are_not_reachable(harness: Harness) -> None:
    live = [path.resolve() for path in INFRA_SOCKETS if path.is_socket()]
    # PostgreSQL's socket is there whenever the tests run (`make test` starts the infra first).
    assert live, f"none of {INFRA_SOCKETS} exists: is `make infra` running?"
    module = harness.module({"Connect": CONNECT})
    for path in live:
        # The test itself reaches the daemon at that path ...
        probe_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe_socket.connect(str(path))
        finally:
            probe_socket.close()
        # ... and the component, in the runner's mount namespace, finds nothing there.
        error = _error(await harness.call(module, "Connect", {"path": str(path)}))
        assert "ENOENT" in error["message"], (path, error)


async def test_an_abstract_socket_of_the_host_is_not_reachable(harness: Harness) -> None:
    # Abstract sockets belong to a network namespace: the child's own has none of the host's.
    name = f"modyard-test-{secrets.token_hex(6)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"\0{name}")
    listener.listen()
    try:
        module = harness.module(
            {"Connect": CONNECT.replace("context.messages.in.content.path", f"'\\0{name}'")}
        )
        error = _error(await harness.call(module, "Connect", {}))
        assert "ECONNREFUSED" in error["message"], error
    finally:
        listener.close()


async def test_the_mount_namespace_is_a_probed_layer() -> None:
    assert (await probe(JsRunnerSettings())).mounts
    missing = await probe(JsRunnerSettings(mount_binary="/bin/false"))
    assert not missing.mounts
    assert any("mount namespace" in layer for layer in missing.missing)
