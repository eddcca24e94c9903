"""The deployer against the real dockerd and the local token-protected registry.

Each test session gets a namespace of its own (container and volume names, the
``modyard.namespace`` label) and an image repository of its own, so parallel sessions never meet;
everything is removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiodocker
import httpx
import pytest

from modyard.common.auth import Role
from modyard.common.network import tcp_reachable
from modyard.common.settings import CommonSettings
from modyard.testing.deployer import (
    RegistryLogin,
    delete_from_registry,
    httpd_command,
    publish_test_image,
    remove_namespace,
)
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import ServiceProcess, auth_headers, service_process

#: What a deployed container can do (tests/test_container_sandbox.py reads its output): who it
#: runs as, where it can write, and which of ``$PROBE_PORTS`` it can connect to on the host (the
#: bridge's gateway and ``$HOST_IPS``). Its own listener on the bridge is the control that proves
#: ``nc`` connects when something listens.
PROBE_SCRIPT = r"""
echo "uid=$(id -u) gid=$(id -g)"
touch /rootfs-probe 2>/dev/null && echo "rootfs=writable" || echo "rootfs=readonly"
for dir in /tmp /data $PROBE_DIRS; do
  touch $dir/probe 2>/dev/null && echo "$dir=writable" || echo "$dir=readonly"
done
echo probe > /tmp/index.html
httpd -p 0.0.0.0:$PORT -h /tmp
self=$(ip -4 -o addr show eth0 | awk '{split($4, a, "/"); print a[1]}')
gateway=$(ip route | awk '/^default/ {print $3}')
echo "self=$self gateway=$gateway"
nc -w 2 $self $PORT </dev/null && echo "control open $self:$PORT" || echo "control closed"
for address in $gateway $HOST_IPS; do
  for port in $PROBE_PORTS; do
    nc -w 2 $address $port </dev/null && echo "open $address:$port" || echo "closed $address:$port"
  done
done
echo "probe done"
exec sleep 3600
"""


@dataclass
class Images:
    """References of the images pushed for this session (all in one repository)."""

    login: RegistryLogin
    path: str
    pushed: list[str] = field(default_factory=list)

    @property
    def repository(self) -> str:
        return f"{self.login.host}/{self.path}"

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


@pytest.fixture(scope="session")
async def docker_host(infra_settings: CommonSettings) -> str:
    """The Docker daemon `make infra` starts: like the database and the broker, a missing one is a
    failure, never a silently skipped suite."""
    try:
        async with aiodocker.Docker(url=infra_settings.docker_host) as docker:
            await docker.version()
    except (aiodocker.DockerError, OSError, ValueError) as exc:
        pytest.fail(
            f"no Docker daemon at {infra_settings.docker_host} ({exc}); start it with `make infra`",
            pytrace=False,
        )
    return infra_settings.docker_host


@pytest.fixture(scope="session")
async def images(infra_settings: CommonSettings, docker_host: str) -> AsyncIterator[Images]:
    login = RegistryLogin.from_settings(infra_settings)
    host, _, port = login.host.partition(":")
    if not tcp_reachable(host, int(port or 80)):
        pytest.fail(f"no image registry at {login.host}; `make infra` starts one", pytrace=False)
    found = Images(login=login, path=f"modyard-test-{uuid.uuid4().hex[:8]}/module")
    # $PORT is set by the deployer from the deployment's port.
    serve = httpd_command("$PORT", body="$GREETING $VERSION")
    specs: dict[str, dict[str, Any]] = {
        "v1": {"command": serve, "env": {"VERSION": "v1"}},
        "v2": {"command": serve, "env": {"VERSION": "v2"}},
        "crash": {"command": ["sh", "-c", "echo 'cannot start: no config'; exit 3"]},
        "unhealthy": {
            "command": ["sh", "-c", "echo up; exec sleep 3600"],
            "healthcheck": ["test", "-f", "/www/healthy"],  # never created
        },
        "ticker": {
            "command": ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
        },
        "probe": {"command": ["sh", "-c", PROBE_SCRIPT]},
    }
    await asyncio.gather(
        *(
            publish_test_image(docker_host, login, found.path, tag, **spec)
            for tag, spec in specs.items()
        )
    )
    found.pushed.extend(specs)
    try:
        yield found
    finally:
        async with aiodocker.Docker(url=docker_host) as docker:
            for tag in found.pushed:
                with contextlib.suppress(aiodocker.DockerError):
                    await docker.images.delete(found.ref(tag), force=True)
        for tag in found.pushed:
            await delete_from_registry(infra_settings.image_registry_url, login, found.path, tag)


class Deployer:
    """The deployer as a real process, restartable, with an operator client."""

    def __init__(self, env: dict[str, str], docker_host: str, namespace: str) -> None:
        self.env = env
        self.docker_host = docker_host
        self.namespace = namespace
        self.headers = auth_headers(CommonSettings(), Role.operator)
        self.process: ServiceProcess | None = None
        self._context: Any = None

    @property
    def url(self) -> str:
        assert self.process is not None
        return self.process.url

    async def start(self) -> None:
        self._context = service_process("deployer", self.env)
        self.process = await self._context.__aenter__()

    async def stop(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._context = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.headers)
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.request(method, path, **kwargs)

    async def get(self, ref: str) -> dict[str, Any]:
        response = await self.call("GET", f"/v1/deployments/{ref}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for(
        self,
        ref: str,
        check: Callable[[dict[str, Any]], bool],
        timeout: float = 60,
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        async def probe() -> bool:
            nonlocal last
            last = await self.get(ref)
            return check(last)

        try:
            await eventually(probe, timeout)
        except AssertionError:
            raise AssertionError(f"deployment {ref} never matched; last seen: {last}") from None
        return last

    async def wait_status(self, ref: str, status: str, timeout: float = 60) -> dict[str, Any]:
        return await self.wait_for(ref, lambda body: body["status"] == status, timeout)

    async def containers(self, name: str) -> list[dict[str, Any]]:
        """This session's containers of deployment ``name``, inspected."""
        labels = [f"modyard.namespace={self.namespace}", f"modyard.deployment.name={name}"]
        async with aiodocker.Docker(url=self.docker_host) as docker:
            listed = await docker.containers.list(all=True, filters=json.dumps({"label": labels}))
            found = []
            for summary in listed:
                with contextlib.suppress(aiodocker.DockerError):  # removed since listed
                    found.append((await docker.containers.get(summary.id))._container)
            return found

    async def volumes(self, name: str) -> list[str]:

        labels = [f"modyard.namespace={self.namespace}", f"modyard.deployment.name={name}"]
        async with aiodocker.Docker(url=self.docker_host) as docker:
            listed = await docker.volumes.list(filters={"label": labels})
            return [volume["Name"] for volume in listed.get("Volumes") or []]


# Per module, not per session: a deployer left running would keep consuming the shared vhost's
# ``deployer.events`` queue and take messages meant for later tests' processes.
@pytest.fixture(scope="module")
def deployer_settings() -> dict[str, str]:
    """``MODYARD_DEPLOYER_*`` a test module adds to (or changes in) its deployer's environment."""
    return {}


@pytest.fixture(scope="module")
async def deployer(
    infra: IsolatedInfra, images: Images, docker_host: str, deployer_settings: dict[str, str]
) -> AsyncIterator[Deployer]:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    env = {
        **infra.env(),
        "MODYARD_DEPLOYER_NAMESPACE": namespace,
        "MODYARD_DEPLOYER_STABLE_SECONDS": "1",
        "MODYARD_DEPLOYER_HEALTH_TIMEOUT_SECONDS": "20",
        "MODYARD_DEPLOYER_BACKOFF_BASE_SECONDS": "1",
        "MODYARD_DEPLOYER_BACKOFF_CAP_SECONDS": "4",
        "MODYARD_DEPLOYER_RESYNC_INTERVAL_SECONDS": "5",
        "MODYARD_DEPLOYER_STATE_GAUGES_INTERVAL_SECONDS": "0.2",
        "MODYARD_DEPLOYER_STOP_TIMEOUT_SECONDS": "1",
        "MODYARD_DEPLOYER_MEMORY_LIMIT_MB": "64",
        **deployer_settings,
    }
    handle = Deployer(env, docker_host, namespace)
    await handle.start()
    try:
        yield handle
    finally:
        await handle.stop()
        await remove_namespace(docker_host, namespace)
