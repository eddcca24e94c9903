"""Deployed containers are confined (issue 17, hole 7), on the real dockerd.

A container module is untrusted code: it runs without capabilities, without new privileges, on a
read-only root file system, as a non-root user, within limits, on the deployer's own bridge
network (not the host's), reachable only through its port published on 127.0.0.1, and only from
the registries an operator allowed. What a deployment may declare beyond that (capabilities,
root, writable paths, larger limits) is bounded by operator settings, and refused with a 422
problem, storing nothing, when it is not allowed.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import make_url

from modyard.common.settings import CommonSettings
from modyard.testing.polling import eventually
from modyard.testing.services import free_port

from .conftest import Deployer, Images
from .test_deployments import body, create, deploy, fetch

pytestmark = pytest.mark.infra

TMP = "/tmp"  # noqa: S108 - the container's own tmpfs


@pytest.fixture(scope="module")
def deployer_settings() -> dict[str, str]:
    return {
        "MODYARD_DEPLOYER_ALLOWED_CAPABILITIES": "NET_BIND_SERVICE,CHOWN",
        "MODYARD_DEPLOYER_MAX_MEMORY_LIMIT_MB": "256",
        "MODYARD_DEPLOYER_MAX_PIDS_LIMIT": "1024",
    }


def platform_ports(deployer: Deployer) -> list[int]:
    """The ports of PostgreSQL, the broker (AMQP, management, Erlang), the registry and a service."""
    settings = CommonSettings()
    ports = [
        make_url(settings.database_url).port or 5432,
        urlsplit(settings.amqp_url).port or 5672,
        urlsplit(settings.amqp_management_url).port or 15672,
        urlsplit(settings.image_registry_url).port or 5000,
        urlsplit(deployer.url).port or 0,
        4369,  # epmd
        25672,  # Erlang distribution
    ]
    return sorted(set(ports))


def host_addresses() -> list[str]:
    """The host's own non-loopback IPv4 addresses (where a service bound to 0.0.0.0 would be)."""
    listed = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", listed)


async def probe_output(deployer: Deployer, name: str) -> str:
    output = ""

    async def finished() -> bool:
        nonlocal output
        output = (await deployer.call("GET", f"/v1/deployments/{name}/logs")).text
        return "probe done" in output

    await eventually(finished, timeout=60)
    return output


async def test_a_deployed_container_is_confined(deployer: Deployer, images: Images) -> None:
    port = free_port()
    ports = platform_ports(deployer)
    env = {"PROBE_PORTS": " ".join(map(str, ports)), "HOST_IPS": " ".join(host_addresses())}
    await create(deployer, body(images, "confined", tag="probe", port=port, env=env))
    await deploy(deployer, "confined")
    running = await deployer.wait_status("confined", "running")
    # The runtime reaches it as before: on the host's loopback, at the deployment's port.
    assert running["endpoint"] == f"http://127.0.0.1:{port}"
    assert await fetch(running["endpoint"]) == "probe"

    [container] = await deployer.containers("confined")
    host = container["HostConfig"]
    assert host["NetworkMode"] == f"{deployer.namespace}-modules"
    assert list(container["NetworkSettings"]["Networks"]) == [f"{deployer.namespace}-modules"]
    assert host["PortBindings"] == {f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert list(host["Tmpfs"]) == [TMP]
    assert "noexec" in host["Tmpfs"][TMP].split(",")
    assert host["Privileged"] is False
    assert container["Config"]["User"] == "65534:65534"
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 1_000_000_000
    assert host["PidsLimit"] == 512

    output = await probe_output(deployer, "confined")
    assert "uid=65534 gid=65534" in output
    assert "rootfs=readonly" in output
    assert f"{TMP}=writable" in output
    # The data volume belongs to the container's user, so that it can keep its data.
    assert "/data=writable" in output
    # Connecting works where something listens (its own port on the bridge)...
    assert re.search(r"control open \d+\.\d+\.\d+\.\d+:\d+", output), output
    # ...and nothing of the platform is reachable: not on the bridge's gateway, not on the host's
    # other addresses.
    gateway = re.search(r"gateway=(\S+)", output)
    assert gateway is not None, output
    assert gateway.group(1).startswith(("172.", "192.168.", "10.")), output
    for port_number in ports:
        assert f"closed {gateway.group(1)}:{port_number}" in output, output
    assert not re.search(r"^open ", output, re.MULTILINE), output
    assert (await deployer.call("DELETE", "/v1/deployments/confined")).status_code == 202


async def test_images_from_registries_an_operator_did_not_allow_are_refused(
    deployer: Deployer, images: Images
) -> None:
    foreign = {"image": "registry.example.com/team/module:1.0.0"}
    response = await deployer.call(
        "POST",
        "/v1/deployments",
        json={**body(images, "foreign"), **foreign, "registry_host": "registry.example.com"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [error["pointer"] for error in problem["errors"]] == ["/body/image"]
    assert "MODYARD_DEPLOYER_ALLOWED_REGISTRIES" in problem["detail"]
    assert images.login.host in problem["detail"]  # says what is allowed
    listed = await deployer.call("GET", "/v1/deployments", params={"name": "foreign"})
    assert listed.json() == {"items": [], "next_cursor": None}
    assert await deployer.containers("foreign") == []


async def test_declarations_beyond_the_operator_caps_are_refused_and_nothing_is_stored(
    deployer: Deployer, images: Images
) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"capabilities": ["SYS_ADMIN"]}, "/body/capabilities/0", "ALLOWED_CAPABILITIES"),
        ({"capabilities": ["NOT_A_CAP"]}, "/body/capabilities/0", "not a Linux capability"),
        ({"user": "0"}, "/body/user", "ALLOW_ROOT"),
        ({"user": "1000:0"}, "/body/user", "ALLOW_ROOT"),
        ({"user": "app"}, "/body/user", "numeric"),
        ({"memory_limit_mb": 512}, "/body/memory_limit_mb", "MAX_MEMORY_LIMIT_MB"),
        ({"cpu_limit": 64}, "/body/cpu_limit", "MAX_CPU_LIMIT"),
        ({"pids_limit": 5000}, "/body/pids_limit", "MAX_PIDS_LIMIT"),
        ({"writable_paths": ["/"]}, "/body/writable_paths/0", "absolute"),
        ({"writable_paths": ["/data"]}, "/body/writable_paths/0", "data volume"),
        ({"writable_paths": ["/a/../etc"]}, "/body/writable_paths/0", "absolute"),
    ]
    for change, pointer, words in cases:
        response = await deployer.call(
            "POST", "/v1/deployments", json={**body(images, "overreach"), **change}
        )
        assert response.status_code == 422, (change, response.text)
        problem = response.json()
        assert [error["pointer"] for error in problem["errors"]] == [pointer], problem
        assert words in problem["detail"], problem
    listed = await deployer.call("GET", "/v1/deployments", params={"name": "overreach"})
    assert listed.json() == {"items": [], "next_cursor": None}

    # The same caps hold when a deployment is changed: refused, and the deployment unchanged.
    created = await create(deployer, body(images, "declared", tag="probe", port=free_port()))
    refused = await deployer.call(
        "PATCH", "/v1/deployments/declared", json={"capabilities": ["SYS_ADMIN"], "user": "0"}
    )
    assert refused.status_code == 422, refused.text
    after = await deployer.get("declared")
    assert after["capabilities"] == []
    assert after["user"] is None
    assert after["generation"] == created["generation"]


async def test_what_a_deployment_declares_within_the_caps_is_applied(
    deployer: Deployer, images: Images
) -> None:
    declared = {
        "capabilities": ["net_bind_service", "CAP_CHOWN"],
        "user": "1000",
        "writable_paths": ["/var/cache/app", TMP],
        "memory_limit_mb": 128,
        "cpu_limit": 0.5,
        "pids_limit": 64,
        "env": {"PROBE_PORTS": "", "HOST_IPS": "", "PROBE_DIRS": "/var/cache/app"},
    }
    created = await create(
        deployer, body(images, "declared-ok", tag="probe", port=free_port(), **declared)
    )
    assert created["capabilities"] == ["CHOWN", "NET_BIND_SERVICE"]
    assert created["user"] == "1000:1000"
    assert created["writable_paths"] == [TMP, "/var/cache/app"]
    await deploy(deployer, "declared-ok")
    await deployer.wait_status("declared-ok", "running")
    [container] = await deployer.containers("declared-ok")
    host = container["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
    assert sorted(host["Tmpfs"]) == [TMP, "/var/cache/app"]
    assert container["Config"]["User"] == "1000:1000"
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (128 << 20, 500_000_000, 64)
    output = await probe_output(deployer, "declared-ok")
    assert "uid=1000 gid=1000" in output
    # A declared path is writable by the declared user (Docker would give it root's 0755).
    assert "/var/cache/app=writable" in output
    assert "/data=writable" in output
    assert "rootfs=readonly" in output
    assert (await deployer.call("DELETE", "/v1/deployments/declared-ok")).status_code == 202
