"""Running services in tests: in-process (fast, for one service's behaviour) or as real
processes (for what crosses process boundaries)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from modyard.common.auth import Role, mint_token
from modyard.common.settings import CommonSettings

#: The five services with a database and a queue, and their import packages.
SERVICE_PACKAGES = {
    "registry": "registry",
    "installer": "installer",
    "runtime": "runtime",
    "appcell-gateway": "appcell_gateway",
    "deployer": "deployer",
}
#: Every process ``service_process`` can start: the five, the backoffice (no data of its own)
#: and the JavaScript runner (started only where a test asks for it: it runs ``js`` components).
PROCESS_PACKAGES = {**SERVICE_PACKAGES, "backoffice": "backoffice", "js-runner": "jsrunner"}
#: A service's settings prefix where it is not its import package's name.
ENV_NAMES = {"js-runner": "JS_RUNNER"}
#: The processes tests start keep their compiled modules here, as an image ships them: a development
#: environment with ``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` otherwise compiles ~1,100
#: modules at every start (about 0.9 s of CPU each time on the two-core machine). CPython checks
#: each entry against its source's mtime and writes it atomically, so concurrent starts are safe.
BYTECODE_CACHE = Path(tempfile.gettempdir()) / "modyard-bytecode"
BYTECODE_ENV = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def auth_headers(
    settings: CommonSettings,
    *roles: Role,
    workspaces: tuple[str, ...] = (),
    subject: str = "test",
) -> dict[str, str]:
    token = mint_token(
        settings, subject=subject, roles=roles or (Role.operator,), workspaces=workspaces
    )
    return {"Authorization": f"Bearer {token}"}


async def wait_until_ready(client: httpx.AsyncClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = await client.get("/readyz")
            if response.status_code == 200:
                return
            last = response.text
        except httpx.TransportError as exc:
            last = repr(exc)
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{client.base_url} not ready after {timeout}s: {last}")


@asynccontextmanager
async def in_process(app: FastAPI, *, ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client that calls it without a socket."""
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            if ready:
                await wait_until_ready(client)
            yield client


@asynccontextmanager
async def served(
    app: Any,
    *,
    port: int | None = None,
    lifespan: Literal["auto", "on", "off"] = "on",
    **config: Any,
) -> AsyncIterator[int]:
    """``app`` behind a real uvicorn on a loopback port, in this event loop; yields the port.

    ``lifespan="off"`` when the app's lifespan already runs (an ``in_process`` app); other
    uvicorn options (``http=…``) pass through.
    """
    import uvicorn  # only the tests that serve a socket need it

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port or free_port(),
            lifespan=lifespan,
            log_config=None,
            **config,
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        yield server.config.port
    finally:
        server.should_exit = True
        await serving


class ServiceProcess:
    def __init__(
        self, service: str, port: int, process: asyncio.subprocess.Process, log: Path
    ) -> None:
        self.service = service
        self.port = port
        self.process = process
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


async def wait_processes_ready(processes: Iterable[ServiceProcess], timeout: float = 60) -> None:
    async def one(handle: ServiceProcess) -> None:
        async with httpx.AsyncClient(base_url=handle.url) as client:
            try:
                await wait_until_ready(client, timeout=timeout)
            except TimeoutError as exc:
                raise TimeoutError(
                    f"{exc}\n--- {handle.service} log ---\n{handle.logs()[-5000:]}"
                ) from exc

    await asyncio.gather(*(one(handle) for handle in processes))


def url_variable(service: str) -> str:
    """The setting that tells the CLI and the other services where ``service`` listens."""
    if service == "appcell-gateway":
        return "MODYARD_GATEWAY_URL"
    return f"MODYARD_{service.upper().replace('-', '_')}_URL"


def cluster_env(processes: Mapping[str, ServiceProcess]) -> dict[str, str]:
    """``MODYARD_<SERVICE>_URL`` variables that point the CLI and clients at these processes."""
    return {url_variable(service): process.url for service, process in processes.items()}


@asynccontextmanager
async def service_process(
    service: str, env: Mapping[str, str], *, ready: bool = True, port: int | None = None
) -> AsyncIterator[ServiceProcess]:
    """``modyard-<service> serve`` as a real process on ``port`` (a free loopback port if None;
    choose ports beforehand to tell services where the others are before any starts)."""
    package = PROCESS_PACKAGES[service]
    port = port or free_port()
    prefix = f"MODYARD_{ENV_NAMES.get(service, package.upper())}_"
    log_file = Path(tempfile.mkstemp(prefix=f"modyard-{service}-", suffix=".log")[1])
    process_env = {
        **os.environ,
        **BYTECODE_ENV,
        **env,
        f"{prefix}PORT": str(port),
        f"{prefix}HOST": "127.0.0.1",
    }
    with log_file.open("wb") as sink:  # noqa: ASYNC230 - test helper, tiny file
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"modyard.{package}",
            "serve",
            env=process_env,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    handle = ServiceProcess(service, port, process, log_file)
    try:
        async with httpx.AsyncClient(base_url=handle.url) as client:
            if ready:
                try:
                    await wait_until_ready(client, timeout=60)
                except TimeoutError as exc:
                    raise TimeoutError(
                        f"{exc}\n--- {service} log ---\n{handle.logs()[-5000:]}"
                    ) from exc
        yield handle
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
        log_file.unlink(missing_ok=True)  # noqa: ASYNC240


async def run_modyard(env: Mapping[str, str], *args: str, expect: int = 0) -> tuple[Any, str]:
    """``modyard <args>`` as a process, with ``env`` added to the environment; its exit code must
    be ``expect``. Returns its output (parsed when it is JSON, else stripped text) and its stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modyard.sdk.cli",
        *args,
        env={**os.environ, **BYTECODE_ENV, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == expect, stderr.decode() + stdout.decode()
    text = stdout.decode().strip()
    return (json.loads(text) if text.startswith(("{", "[")) else text), stderr.decode()
