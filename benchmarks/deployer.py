"""Deployer overhead: deploy → ``running`` of a cached image, against a plain ``docker run -d`` of
the same image in the same run, 20 times each (interleaved, so drift hits both alike).

The deployer is a real process with ``STABLE_SECONDS=0``: its stability window is a policy (how
long a container must stay up before it counts as running), not overhead, and ``docker run -d``
has none. Its timing still includes everything else: the API call and commit, the reconciler's
wake-up, listing the deployment's containers, the pull with the token (a cached image still asks
the registry for the manifest, so a revoked token is noticed), the volume, create, start, and the
observation that the container runs, and the status event's way through the outbox and the bus
(the benchmark listens for ``status_changed`` like another service, rather than polling).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aio_pika.abc
import aiodocker
import httpx

from modyard.common.auth import Role
from modyard.common.bus.topology import EVENTS_EXCHANGE
from modyard.common.network import tcp_reachable
from modyard.common.settings import CommonSettings
from modyard.contracts.events.deployer import DEPLOYMENT_STATUS_CHANGED
from modyard.testing.deployer import (
    RegistryLogin,
    delete_from_registry,
    publish_test_image,
    remove_namespace,
)
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, service_process

ROUNDS = 20
TARGET_RATIO = 1.3


async def _docker(docker_host: str, *args: str) -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise RuntimeError("the docker CLI is not installed")
    process = await asyncio.create_subprocess_exec(
        docker,
        "-H",
        docker_host,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {stderr.decode().strip()}")
    return stdout.decode().strip()


async def _docker_run(docker_host: str, image: str, name: str, namespace: str) -> float:
    started = time.perf_counter()
    await _docker(
        docker_host,
        "run",
        "-d",
        "--network",
        "host",
        "--label",
        f"modyard.namespace={namespace}",  # so that the clean-up finds it whatever happens
        "--name",
        name,
        image,
    )
    elapsed = time.perf_counter() - started
    await _docker(docker_host, "rm", "-f", name)
    return elapsed


class StatusEvents:
    """``modyard.deployer.deployment.status_changed`` from the bus, as another service sees them.

    Waiting on events instead of polling the API keeps the measurement from loading the deployer
    it measures (a poll every few ms costs the deployer's event loop more than the work itself).
    """

    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self, amqp_url: str) -> None:
        self._connection = await aio_pika.connect_robust(amqp_url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, passive=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=DEPLOYMENT_STATUS_CHANGED)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        data = json.loads(message.body)["data"]
        waiter = self._waiters.get(data["name"])
        if waiter is not None and not waiter.done() and data["status"] in ("running", "warn"):
            waiter.set_result(data)

    def settled(self, name: str) -> asyncio.Future[dict[str, Any]]:
        """Resolves with the deployment's first ``running`` or ``warn`` event from now on."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[name] = future
        return future

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


async def _deploy(client: httpx.AsyncClient, events: StatusEvents, body: dict[str, Any]) -> float:
    created = await client.post("/v1/deployments", json=body)
    created.raise_for_status()
    name = body["name"]
    settled = events.settled(name)
    started = time.perf_counter()
    (await client.post(f"/v1/deployments/{name}/deploy")).raise_for_status()
    outcome = await asyncio.wait_for(settled, timeout=60)
    if outcome["status"] != "running":
        raise RuntimeError(f"benchmark deployment failed: {outcome['reason']}")
    elapsed = time.perf_counter() - started
    (await client.delete(f"/v1/deployments/{name}")).raise_for_status()
    for _ in range(1200):  # outside the timing: the next round starts from a clean host
        if (await client.get(f"/v1/deployments/{name}")).status_code == 404:
            break
        await asyncio.sleep(0.05)
    return elapsed


async def _unavailable(settings: CommonSettings) -> str | None:
    """Why the benchmark cannot run here (dockerd and the registry are optional), or None."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        async with aiodocker.Docker(url=settings.docker_host) as docker:
            await docker.version()
    except (aiodocker.DockerError, OSError, ValueError) as exc:
        return f"no Docker daemon at {settings.docker_host} ({exc})"
    registry = urlsplit(settings.image_registry_url)
    if not tcp_reachable(registry.hostname or "127.0.0.1", registry.port or 80):
        return f"no image registry at {settings.image_registry_url}"
    return None


async def deployer_load(infra: IsolatedInfra) -> dict[str, Any]:
    settings = CommonSettings()
    reason = await _unavailable(settings)
    if reason is not None:
        return {"benchmark": "deployer", "skipped": reason}
    login = RegistryLogin.from_settings(settings)
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    path, tag = f"modyard-bench-{namespace}/idle", "v1"
    image = await publish_test_image(
        settings.docker_host,
        login,
        path,
        tag,
        ["sh", "-c", "echo ready; exec sleep 3600"],
        keep_local=True,
    )
    env = {
        **infra.env(),
        "MODYARD_DEPLOYER_DB_SCHEMA": "deployer_bench",
        "MODYARD_DEPLOYER_NAMESPACE": namespace,
        "MODYARD_DEPLOYER_STABLE_SECONDS": "0",
        "MODYARD_DEPLOYER_STOP_TIMEOUT_SECONDS": "0",
    }
    body = {
        "image": image,
        "registry_host": login.host,
        "token_id": login.username,
        "token": login.password,
    }
    docker_runs: list[float] = []
    deploys: list[float] = []
    events = StatusEvents()
    try:
        async with (
            service_process("deployer", env) as deployer,
            httpx.AsyncClient(
                base_url=deployer.url,
                headers=auth_headers(settings, Role.operator),
                timeout=60,
            ) as client,
        ):
            await events.start(infra.amqp_url)
            # One of each first: connection pools, the daemon's caches, the reconciler's tasks.
            await _docker_run(settings.docker_host, image, f"{namespace}-warm", namespace)
            await _deploy(client, events, {**body, "name": "warm-up"})
            for round_ in range(ROUNDS):
                docker_runs.append(
                    await _docker_run(
                        settings.docker_host, image, f"{namespace}-run-{round_}", namespace
                    )
                )
                deploys.append(await _deploy(client, events, {**body, "name": f"bench-{round_}"}))
    finally:
        await events.close()
        await remove_namespace(settings.docker_host, namespace)
        try:
            await _docker(settings.docker_host, "rmi", "-f", image)
        finally:
            await delete_from_registry(settings.image_registry_url, login, path, tag)
    docker_p50 = statistics.median(docker_runs)
    deploy_p50 = statistics.median(deploys)
    ratio = deploy_p50 / docker_p50
    return {
        "benchmark": "deployer",
        "rounds": ROUNDS,
        "deploy_to_running_p50_ms": round(deploy_p50 * 1000, 1),
        "docker_run_d_p50_ms": round(docker_p50 * 1000, 1),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "deploy_to_running_p90_ms": round(statistics.quantiles(deploys, n=10)[-1] * 1000, 1),
        "docker_run_d_p90_ms": round(statistics.quantiles(docker_runs, n=10)[-1] * 1000, 1),
    }
