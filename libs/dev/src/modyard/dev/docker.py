"""An optional dockerd under ``.run/docker``, reachable only through its unix socket.

Sandboxes and CI machines often cannot create bridges or iptables rules, so dockerd runs with
``--bridge=none --iptables=false``: containers get no network of their own and must use
``--network host``. Its managed containerd keeps its state under ``.run/docker`` too (dockerd puts it
below ``--data-root`` and ``--exec-root``). When dockerd cannot start, ``infra up`` reports it as
unavailable and carries on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from modyard.dev.component import Component, find_binary
from modyard.dev.processes import (
    StartupError,
    is_running,
    read_pid,
    remove_pid,
    spawn_daemon,
    terminate,
    wait_until,
    write_pid,
)
from modyard.sdk.probes import docker_ping

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
LOCAL_REGISTRIES = ("127.0.0.1:5000", "localhost:5000")


def dockerd_args(
    dockerd: str, *, base: Path, socket: Path, insecure_registries: list[str]
) -> list[str]:
    args = [
        dockerd,
        # Our own (empty) daemon.json, so /etc/docker/daemon.json cannot add listeners.
        "--config-file",
        str(base / "daemon.json"),
        "--bridge=none",
        "--iptables=false",
        "--data-root",
        str(base / "data"),
        "--exec-root",
        str(base / "exec"),
        "--pidfile",
        str(base / "docker.pid"),
        "--host",
        f"unix://{socket}",
    ]
    for registry in insecure_registries:
        args += ["--insecure-registry", registry]
    return args


def insecure_registries(image_registry_url: str) -> list[str]:
    """Plain-HTTP registries dockerd may push to: ours plus the configured one if it is http."""
    registries = list(LOCAL_REGISTRIES)
    parts = urlsplit(image_registry_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    if parts.scheme == "http" and host and host not in registries:
        registries.append(host)
    return registries


class Docker(Component):
    title = "dockerd"
    key = "docker"
    required = False
    process_name = "dockerd"
    setting = "MODYARD_DOCKER_HOST"
    replaces_configured = True

    @property
    def socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def log_file(self) -> Path:
        return self.dir / "dockerd.log"

    @property
    def configured_url(self) -> str:
        return self.settings.docker_host

    @property
    def local_url(self) -> str:
        return f"unix://{self.socket}"

    def configured_reachable(self) -> bool:
        return docker_ping(self.configured_url)

    def local_ready(self) -> bool:
        return docker_ping(self.local_url)

    def cannot_start(self) -> str | None:
        if find_binary("dockerd", "/usr/sbin", "/usr/bin") is None:
            return "dockerd not installed (scripts/bootstrap.sh installs docker.io)"
        if os.geteuid() != 0:
            return "dockerd needs root; start docker yourself and set MODYARD_DOCKER_HOST"
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            return f"socket path {self.socket} is too long for a unix socket"
        return None

    def env(self, url: str) -> dict[str, str]:
        return {"MODYARD_DOCKER_HOST": url}

    def start(self, timeout: float) -> int:
        dockerd = find_binary("dockerd", "/usr/sbin", "/usr/bin")
        assert dockerd is not None  # checked by cannot_start()
        for sub in ("data", "exec"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "daemon.json").write_text(json.dumps({}) + "\n", encoding="utf-8")
        process = spawn_daemon(
            dockerd_args(
                dockerd,
                base=self.dir,
                socket=self.socket,
                insecure_registries=insecure_registries(self.settings.image_registry_url),
            ),
            log_path=self.log_file,
            cwd=self.dir,
        )
        write_pid(self.pid_file, process.pid)
        try:
            wait_until(
                self.local_ready,
                timeout=min(timeout, 60),
                what="dockerd",
                log_path=self.log_file,
                died=lambda: process.poll() is not None,
            )
        except StartupError:
            terminate(process.pid, expect=None, timeout=15)
            remove_pid(self.pid_file)
            self.cleanup_after_stop()
            raise
        return process.pid

    def stop(self, pid: int, timeout: float) -> None:
        # dockerd stops its containers and its containerd itself when sent SIGTERM; signalling
        # the whole group at once would race it.
        terminate(pid, expect=self.process_name, timeout=max(timeout, 30), group=False)

    @property
    def containerd_pid_file(self) -> Path:
        return self.dir / "exec" / "containerd" / "containerd.pid"

    def cleanup_after_stop(self) -> None:
        # A containerd orphaned by a dockerd that crashed or was killed.
        pid = read_pid(self.containerd_pid_file)
        if pid is not None and is_running(pid, "containerd"):
            terminate(pid, expect="containerd", timeout=10, group=False)
        remove_pid(self.containerd_pid_file)
