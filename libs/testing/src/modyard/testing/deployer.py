"""Test images without Docker Hub: built ``FROM scratch`` around Debian's static busybox and pushed
to the local token-protected registry.

Used by the deployer's tests, its benchmark and any later test that needs a container module.
The build context is made in memory: ``/bin/busybox`` plus one symlink per applet, so a command
such as ``httpd -f -p 0.0.0.0:8080`` or ``sh -c '...'`` works without a ``RUN`` step (nothing is
executed at build time).
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiodocker
import httpx

from modyard.common.settings import CommonSettings

BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class RegistryLogin:
    """Where test images go: ``host`` as in the image reference, and its htpasswd credentials."""

    host: str
    username: str
    password: str

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> RegistryLogin:
        """The registry ``make infra`` runs (``MODYARD_IMAGE_REGISTRY_*``)."""
        return cls(
            host=urlsplit(settings.image_registry_url).netloc,
            username=settings.image_registry_username,
            password=settings.image_registry_password.get_secret_value(),
        )


def busybox_applets() -> list[str]:
    listed = subprocess.run(  # noqa: S603 - fixed binary, no shell
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    )
    return [name for name in listed.stdout.split() if name and name != "busybox"]


def _dockerfile(
    command: Sequence[str],
    env: Mapping[str, str],
    healthcheck: Sequence[str] | None,
    health_interval: str,
) -> str:
    lines = ["FROM scratch", "COPY rootfs/ /", "ENV PATH=/bin"]
    lines += [f"ENV {key}={json.dumps(value)}" for key, value in env.items()]
    if healthcheck is not None:
        lines.append(
            f"HEALTHCHECK --interval={health_interval} --timeout=2s --retries=2 "
            f"CMD {json.dumps(list(healthcheck))}"
        )
    lines.append(f"CMD {json.dumps(list(command))}")
    return "\n".join(lines) + "\n"


def build_context(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    healthcheck: Sequence[str] | None = None,
    health_interval: str = "1s",
) -> bytes:
    """A tar build context: a Dockerfile and ``rootfs/`` (busybox, its applets, /tmp, /www)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        dockerfile = _dockerfile(command, env or {}, healthcheck, health_interval).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for directory in ("rootfs", "rootfs/bin", "rootfs/tmp", "rootfs/www"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if "tmp" in directory else 0o755
            tar.addfile(entry)
        tar.add(str(BUSYBOX), arcname="rootfs/bin/busybox")
        for applet in busybox_applets():
            link = tarfile.TarInfo(f"rootfs/bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buffer.getvalue()


async def build_image(
    docker: aiodocker.Docker,
    reference: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    healthcheck: Sequence[str] | None = None,
) -> None:
    """Build ``reference`` (``host/path:tag``) locally."""
    context = build_context(command, env=env, healthcheck=healthcheck)
    await docker.images.build(
        fileobj=io.BytesIO(context), encoding="identity", tag=reference, rm=True
    )


async def push_image(docker: aiodocker.Docker, reference: str, login: RegistryLogin) -> None:
    repository, _, tag = reference.rpartition(":")
    await docker.images.push(
        repository,
        tag=tag,
        auth={"username": login.username, "password": login.password},
    )


async def publish_test_image(
    docker_host: str,
    login: RegistryLogin,
    path: str,
    tag: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    healthcheck: Sequence[str] | None = None,
    keep_local: bool = False,
) -> str:
    """Build a busybox image, push it to the registry and return its reference.

    The local copy is removed unless ``keep_local``, so that a deployment really pulls it.
    """
    reference = f"{login.host}/{path}:{tag}"
    async with aiodocker.Docker(url=docker_host) as docker:
        await build_image(docker, reference, command, env=env, healthcheck=healthcheck)
        await push_image(docker, reference, login)
        if not keep_local:
            await docker.images.delete(reference, force=True)
    return reference


def httpd_command(port: int | str = "$PORT", body: str = "$GREETING") -> list[str]:
    """Serve ``body`` (a shell word, e.g. ``$GREETING``) as ``/index.html`` on port ``port``.

    The deployer gives a deployment's port to its container as ``$PORT`` and publishes it on the
    host's 127.0.0.1; in the container it listens on every address of its own network namespace
    (the bridge). The page is written to ``/tmp``, the writable tmpfs of a read-only root.
    """
    return [
        "sh",
        "-c",
        f'echo "{body}" > /tmp/index.html && echo "serving {body} on {port}" '
        f"&& exec httpd -f -v -p 0.0.0.0:{port} -h /tmp",
    ]


async def delete_from_registry(
    registry_url: str, login: RegistryLogin, path: str, tag: str
) -> None:
    """Remove a test image's manifest from the registry (its blobs go at the next GC)."""
    accept = ", ".join(
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
        )
    )
    async with httpx.AsyncClient(
        base_url=registry_url, auth=(login.username, login.password), timeout=10
    ) as client:
        head = await client.head(f"/v2/{path}/manifests/{tag}", headers={"Accept": accept})
        digest = head.headers.get("Docker-Content-Digest")
        if head.status_code == 200 and digest:
            await client.delete(f"/v2/{path}/manifests/{digest}")


async def remove_namespace(docker_host: str, namespace: str) -> None:
    """Remove every container, volume and network labelled with ``namespace`` (test clean-up;
    each bridge network holds one of the daemon's few address pools until removed)."""
    label = json.dumps({"label": [f"modyard.namespace={namespace}"]})
    async with aiodocker.Docker(url=docker_host) as docker:
        for container in await docker.containers.list(all=True, filters=label):
            try:
                await container.delete(force=True, v=True)
            except aiodocker.DockerError as exc:
                # Gone, or being removed already (by a deployer's DELETE still in progress).
                if exc.status not in (404, 409):
                    raise
        listed = await docker.volumes.list(  # type: ignore[no-untyped-call]
            filters={"label": [f"modyard.namespace={namespace}"]}
        )
        for volume in listed.get("Volumes") or []:
            await aiodocker.volumes.DockerVolume(docker, volume["Name"]).delete()  # type: ignore[no-untyped-call]
        for network in await docker.networks.list(
            filters={"label": [f"modyard.namespace={namespace}"]}
        ):
            try:
                await (await docker.networks.get(network["Id"])).delete()
            except aiodocker.DockerError as exc:
                # Gone, or still in use by a container another deployer of the namespace made
                # meanwhile: left for the next clean-up rather than failing this one.
                if exc.status not in (403, 404, 409):
                    raise
