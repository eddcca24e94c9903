"""The Docker implementation of :class:`~modyard.deployer.backend.ContainerBackend` (aiodocker).

Containers are confined (:class:`~modyard.deployer.backend.Sandbox`: no capabilities but those
allowed, no new privileges, read-only root with tmpfs paths, a non-root user, limits) and run on
a bridge network the deployer creates, their port published on 127.0.0.1 only; they carry labels
naming the deployment and generation, mount the deployment's data volume, and have no restart
policy: restarts belong to the reconciler, which applies CrashLoopBackOff and restarts unhealthy
containers (Docker does neither).
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiodocker
import httpx
import structlog
from aiodocker.events import DockerEvents

from modyard.common.tls import client_tls_context
from modyard.deployer.backend import (
    LABEL_DEPLOYMENT_ID,
    LABEL_DEPLOYMENT_NAME,
    LABEL_GENERATION,
    LABEL_NAMESPACE,
    BackendError,
    BackendUnavailable,
    ContainerSpec,
    ContainerState,
    ImageNotFound,
    ProgressCallback,
    RegistryAuthFailed,
    RegistryCredentials,
    RegistryUnreachable,
)
from modyard.deployer.image_ref import parse_image_reference
from modyard.deployer.registry_check import local_image_is_current
from modyard.deployer.settings import DeployerSettings

log = structlog.get_logger(__name__)

#: Where published ports listen on the host: the runtime reaches modules there, nothing else can.
PUBLISH_HOST = "127.0.0.1"
#: Label of a data volume: the ``uid:gid`` its root directory was given to.
LABEL_DATA_OWNER = "modyard.data.owner"

#: Container events that can change what the reconciler must do.
WATCHED_ACTIONS = ("die", "destroy", "start", "oom", "health_status")


def _timestamp(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-01-01"):
        return None
    # Docker gives nanoseconds; fromisoformat takes at most microseconds.
    head, dot, rest = value.rstrip("Z").partition(".")
    fraction = rest[:6] if dot else ""
    return datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00")


def _pull_failure(image: str, host: str, message: str, status: int) -> BackendError:
    lowered = message.lower()
    if "unauthorized" in lowered or "authentication required" in lowered or "denied" in lowered:
        return RegistryAuthFailed(
            f"The registry {host} refused the token: check token_id and token (the token needs "
            "permission to read the registry), then deploy again."
        )
    if status == 404 or "not found" in lowered or "manifest unknown" in lowered:
        return ImageNotFound(
            f"The image {image} does not exist in the registry: check the image path and tag "
            "(host/user/repo:version), then deploy again."
        )
    if "dial tcp" in lowered or "no such host" in lowered or "connection refused" in lowered:
        return RegistryUnreachable(
            f"The registry {host} does not answer ({message[:200]}): check registry_host and "
            "the image's host, then deploy again."
        )
    return BackendError(f"Pulling {image} failed: {message[:300]}")


class DockerBackend:
    def __init__(self, settings: DeployerSettings) -> None:
        self._settings = settings
        self._docker = aiodocker.Docker(url=settings.docker_host)
        self._namespace = settings.namespace
        # Registry checks of cached images (see registry_check); keep-alive makes them cheap.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(5.0), follow_redirects=False, verify=client_tls_context()
        )
        self._network_ready = False

    async def close(self) -> None:
        await self._http.aclose()
        await self._docker.close()

    # -- names ---------------------------------------------------------------------------------

    def container_name(self, spec: ContainerSpec) -> str:
        return f"{self._namespace}-{spec.deployment_name}-g{spec.generation}"

    def volume_name(self, deployment_id: uuid.UUID, deployment_name: str) -> str:
        return f"{self._namespace}-{deployment_name}-{deployment_id.hex[:8]}-data"

    def _labels(self, deployment_id: uuid.UUID, name: str) -> dict[str, str]:
        return {
            LABEL_NAMESPACE: self._namespace,
            LABEL_DEPLOYMENT_ID: str(deployment_id),
            LABEL_DEPLOYMENT_NAME: name,
        }

    # -- images --------------------------------------------------------------------------------

    async def pull(
        self,
        image: str,
        credentials: RegistryCredentials,
        progress: ProgressCallback | None = None,
    ) -> bool:
        if await self._local_copy_is_current(image, credentials):
            return False
        auth = {"username": credentials.username, "password": credentials.password}
        layers: dict[str, tuple[int, int]] = {}
        try:
            async for item in self._docker.images.pull(image, auth=auth, stream=True):
                detail = item.get("progressDetail") or {}
                if progress is None or not (item.get("id") and detail.get("total")):
                    # Only byte counts are worth telling: a cached image has none, and its
                    # deploy should not wait for progress writes.
                    continue
                layers[item["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
                done = sum(current for current, _ in layers.values())
                total = sum(total for _, total in layers.values())
                text = f"{item.get('status', '')} ({done / 1e6:.1f}/{total / 1e6:.1f} MB, "
                text += f"{len(layers)} layers)"
                await progress(text)
        except aiodocker.DockerError as exc:
            raise _pull_failure(image, credentials.host, exc.message, exc.status) from None
        except (OSError, aiodocker.exceptions.DockerContextError) as exc:
            raise BackendUnavailable(f"Docker does not answer: {exc}") from None
        return True

    async def _local_copy_is_current(self, image: str, credentials: RegistryCredentials) -> bool:
        try:
            info = await self._docker.images.inspect(image)
        except aiodocker.DockerError:
            return False  # not here (or Docker trouble): the daemon's pull tells
        current = await local_image_is_current(
            self._http, parse_image_reference(image), credentials, info.get("RepoDigests") or []
        )
        return bool(current)

    async def image_id(self, image: str) -> str | None:
        try:
            info = await self._docker.images.inspect(image)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise BackendUnavailable(f"Docker refused to inspect {image}: {exc.message}") from None
        return str(info["Id"])

    # -- containers ----------------------------------------------------------------------------

    def _state(self, info: dict[str, Any]) -> ContainerState | None:
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_NAMESPACE) != self._namespace or LABEL_DEPLOYMENT_ID not in labels:
            return None
        state = info.get("State") or {}
        health = state.get("Health") or {}
        return ContainerState(
            id=info["Id"],
            name=str(info.get("Name", "")).lstrip("/"),
            deployment_id=uuid.UUID(labels[LABEL_DEPLOYMENT_ID]),
            deployment_name=str(labels.get(LABEL_DEPLOYMENT_NAME, "")),
            generation=int(labels.get(LABEL_GENERATION, "0")),
            running=bool(state.get("Running")) and not bool(state.get("Restarting")),
            image_id=str(info.get("Image", "")),
            exit_code=state.get("ExitCode"),
            health=health.get("Status") or None,
            started_at=_timestamp(state.get("StartedAt")),
            finished_at=_timestamp(state.get("FinishedAt")),
            oom_killed=bool(state.get("OOMKilled")),
            error=str(state.get("Error") or ""),
        )

    async def inspect(self, container_id: str) -> ContainerState | None:
        try:
            container = await self._docker.containers.get(container_id)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise BackendUnavailable(
                f"Docker refused to inspect a container: {exc.message}"
            ) from None
        return self._state(container._container)

    async def containers(self, deployment_id: uuid.UUID | None = None) -> list[ContainerState]:
        labels = [f"{LABEL_NAMESPACE}={self._namespace}"]
        if deployment_id is not None:
            labels.append(f"{LABEL_DEPLOYMENT_ID}={deployment_id}")
        try:
            listed = await self._docker.containers.list(
                all=True, filters=json.dumps({"label": labels})
            )
        except (aiodocker.DockerError, OSError) as exc:
            raise BackendUnavailable(f"Docker does not answer: {exc}") from None
        states = []
        for summary in listed:
            # The list omits health and timestamps; an inspect per container gives them.
            state = await self.inspect(summary.id)
            if state is not None:
                states.append(state)
        return states

    async def _ensure_network(self) -> str:
        """The bridge network deployed containers join, created once (an existing one is used).

        Docker's options isolate containers on the bridge from each other (``enable_icc``) and
        keep host ports off it; both are enforced by Docker's iptables rules, so on a daemon run
        with ``--iptables=false`` only the routing applies (docs/deployer.md, "Confinement")."""
        settings = self._settings
        if settings.host_network:
            return "host"
        name = settings.network_name
        if self._network_ready:
            return name
        try:
            await self._docker.networks.get(name)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise BackendUnavailable(
                    f"Docker refused to inspect {name}: {exc.message}"
                ) from None
            try:
                await self._docker.networks.create(
                    {
                        "Name": name,
                        "Driver": "bridge",
                        "CheckDuplicate": True,
                        "Labels": {LABEL_NAMESPACE: self._namespace},
                        "Options": {"com.docker.network.bridge.enable_icc": "false"},
                    }
                )
            except aiodocker.DockerError as created:
                if created.status != 409:  # made meanwhile by another pass: fine
                    raise BackendError(
                        f"Docker could not create the network {name}: {created.message}"
                    ) from None
        self._network_ready = True
        return name

    async def _ensure_volume(
        self, deployment_id: uuid.UUID, deployment_name: str, image: str, user: str
    ) -> str:
        """The data volume, its root owned by the container's user (Docker makes it root's, so a
        non-root module could not write its own data)."""
        name = self.volume_name(deployment_id, deployment_name)
        try:
            existing = await self._docker.volumes.get(name)  # type: ignore[no-untyped-call]
            info = await existing.show()
            owner = (info.get("Labels") or {}).get(LABEL_DATA_OWNER)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise BackendUnavailable(
                    f"Docker refused to inspect {name}: {exc.message}"
                ) from None
            labels = {**self._labels(deployment_id, deployment_name), LABEL_DATA_OWNER: user}
            await self._docker.volumes.create({"Name": name, "Labels": labels})  # type: ignore[no-untyped-call]
            owner = None
        if owner != user and not user.startswith("0:"):  # root writes anywhere
            await self._give_volume_to(name, image, user)
        return name

    async def _give_volume_to(self, volume: str, image: str, user: str) -> None:
        """``chown uid:gid`` the volume's root, through a container that is never started: the
        archive API extracts a directory entry owned by that user onto the mount point."""
        uid, _, gid = user.partition(":")
        entry = tarfile.TarInfo(self._settings.data_path.strip("/") or "data")
        entry.type, entry.mode, entry.uid, entry.gid = tarfile.DIRTYPE, 0o750, int(uid), int(gid)
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.addfile(entry)
        try:
            helper = await self._docker.containers.create(
                {
                    "Image": image,
                    "Cmd": ["true"],  # never run; an image without a CMD needs one to be created
                    "Labels": {LABEL_NAMESPACE: self._namespace},
                    "HostConfig": {
                        "NetworkMode": "none",
                        "Mounts": [
                            {"Type": "volume", "Source": volume, "Target": self._settings.data_path}
                        ],
                    },
                }
            )
            try:
                await helper.put_archive("/", archive.getvalue())  # type: ignore[no-untyped-call]
            finally:
                await helper.delete(force=True)
        except aiodocker.DockerError as exc:
            raise BackendError(
                f"Docker could not give the data volume {volume} to user {user}: {exc.message}"
            ) from None

    def _host_config(self, spec: ContainerSpec, network: str, volume: str) -> dict[str, Any]:
        settings, sandbox = self._settings, spec.sandbox
        uid, _, gid = sandbox.user.partition(":")
        exec_ = "exec" if settings.tmpfs_exec else "noexec"
        host_config: dict[str, Any] = {
            "NetworkMode": network,
            "CapDrop": ["ALL"],
            "CapAdd": [f"CAP_{name}" for name in sandbox.capabilities] or None,
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": True,
            # Owned by the container's user: Docker copies the image directory's owner and mode
            # (root's 0755 for most paths), which the user could not write to.
            "Tmpfs": {
                path: f"rw,{exec_},nosuid,nodev,size={sandbox.tmpfs_size_mb}m,uid={uid},gid={gid}"
                for path in sandbox.writable_paths
            },
            "Privileged": False,
            "Memory": sandbox.memory_bytes,
            # No swap beyond the memory limit (Docker's default would double it).
            "MemorySwap": sandbox.memory_bytes,
            "NanoCpus": sandbox.nano_cpus,
            "PidsLimit": sandbox.pids_limit,
            "RestartPolicy": {"Name": "no"},
            "Mounts": [{"Type": "volume", "Source": volume, "Target": settings.data_path}],
            "LogConfig": {
                "Type": "json-file",
                "Config": {"max-size": settings.log_max_size, "max-file": "3"},
            },
        }
        if spec.port is not None and network != "host":
            # Same port on the host as in the container, so the endpoint the runtime reads
            # (http://127.0.0.1:<port>) is unchanged; on 127.0.0.1 only.
            host_config["PortBindings"] = {
                f"{spec.port}/tcp": [{"HostIp": PUBLISH_HOST, "HostPort": str(spec.port)}]
            }
        return host_config

    async def create(self, spec: ContainerSpec) -> ContainerState:
        name = self.container_name(spec)
        env = dict(spec.env)
        if spec.port is not None:
            env.setdefault("PORT", str(spec.port))
        network = await self._ensure_network()
        user = spec.sandbox.user
        volume = await self._ensure_volume(
            spec.deployment_id, spec.deployment_name, spec.image, user
        )
        config: dict[str, Any] = {
            "Image": spec.image,
            "User": user,
            "Env": [f"{key}={value}" for key, value in env.items()],
            "Labels": {
                **self._labels(spec.deployment_id, spec.deployment_name),
                LABEL_GENERATION: str(spec.generation),
            },
            "HostConfig": self._host_config(spec, network, volume),
        }
        if spec.port is not None:
            config["ExposedPorts"] = {f"{spec.port}/tcp": {}}
        try:
            container = await self._docker.containers.create(config, name=name)
        except aiodocker.DockerError as exc:
            if exc.status == 404 and "network" in exc.message:
                self._network_ready = False  # removed behind our back: made again next pass
            if exc.status != 409:
                raise BackendError(
                    f"Docker could not create the container: {exc.message}"
                ) from None
            # The name is taken: by this very generation (made before a crash), reused; by
            # anything else, refused (never removed: it may be another deployer's).
            existing = await self.inspect(name)
            if existing is None:
                raise BackendError(
                    f"Docker could not create the container: {exc.message}"
                ) from None
            if (
                existing.deployment_id == spec.deployment_id
                and existing.generation == spec.generation
            ):
                return existing
            raise BackendError(
                f"A container named {name} exists and is not this deployment's: another deployer "
                "shares this host and namespace (set MODYARD_DEPLOYER_NAMESPACE to tell them "
                f"apart), or remove that container (docker rm -f {name})."
            ) from None
        state = await self.inspect(container.id)
        if state is None:
            raise BackendError("The container disappeared right after it was created.")
        return state

    async def start(self, container_id: str) -> None:
        try:
            await self._docker.containers.container(container_id).start()
        except aiodocker.DockerError as exc:
            if exc.status == 304:  # already started
                return
            raise BackendError(f"Docker could not start the container: {exc.message}") from None

    async def stop(self, container_id: str) -> None:
        try:
            await self._docker.containers.container(container_id).stop(
                t=self._settings.stop_timeout_seconds
            )
        except aiodocker.DockerError as exc:
            if exc.status in (304, 404):  # already stopped, or gone
                return
            raise BackendError(f"Docker could not stop the container: {exc.message}") from None

    async def remove(self, container_id: str) -> None:
        try:
            await self._docker.containers.container(container_id).delete(force=True, v=True)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return
            if exc.status == 409 and "already in progress" in exc.message:
                return
            raise BackendError(f"Docker could not remove the container: {exc.message}") from None

    async def remove_data(self, deployment_id: uuid.UUID, deployment_name: str) -> None:
        name = self.volume_name(deployment_id, deployment_name)
        try:
            await self._docker.volumes.get(name)  # type: ignore[no-untyped-call]
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return
            raise
        try:
            volume = aiodocker.volumes.DockerVolume(self._docker, name)  # type: ignore[no-untyped-call]
            await volume.delete()  # type: ignore[no-untyped-call]
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise BackendError(
                    f"Docker could not remove the volume {name}: {exc.message}"
                ) from None

    # -- logs and events -----------------------------------------------------------------------

    async def logs(
        self,
        container_id: str,
        *,
        tail: int | None,
        since: datetime | None,
        follow: bool,
        timestamps: bool,
    ) -> AsyncIterator[bytes]:
        container = self._docker.containers.container(container_id)
        params: dict[str, Any] = {"timestamps": timestamps, "tail": "all" if tail is None else tail}
        if since is not None:
            params["since"] = int(since.timestamp())
        try:
            if follow:
                async for chunk in container.log(stdout=True, stderr=True, follow=True, **params):
                    yield chunk.encode("utf-8", errors="replace")
            else:
                for chunk in await container.log(stdout=True, stderr=True, **params):
                    yield chunk.encode("utf-8", errors="replace")
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return
            raise BackendError(f"Docker could not read the logs: {exc.message}") from None

    async def changes(self) -> AsyncIterator[uuid.UUID]:
        """Deployment ids from Docker's event stream, resubscribing when the stream ends."""
        filters = json.dumps(
            {
                "type": ["container"],
                "label": [f"{LABEL_NAMESPACE}={self._namespace}"],
                "event": list(WATCHED_ACTIONS),
            }
        )
        while True:
            events = DockerEvents(self._docker)  # type: ignore[no-untyped-call]
            subscriber = events.subscribe(filters=filters)  # type: ignore[no-untyped-call]
            try:
                while True:
                    event = await subscriber.get()
                    if event is None:
                        break
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    identifier = attributes.get(LABEL_DEPLOYMENT_ID)
                    if identifier:
                        yield uuid.UUID(identifier)
            finally:
                await events.stop()  # type: ignore[no-untyped-call]
            log.warning("docker_event_stream_ended")
            await asyncio.sleep(1.0)
