"""What every piece of local infrastructure has in common: up, down, status by recorded PID.

A component is either *ours* (started by ``modyard dev infra up``, PID in ``.run/<key>/pid``) or
*external* (something already answers at the configured URL, and we leave it alone). Subclasses
supply how to probe, start and stop; this base class holds the decisions between them.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from modyard.common.settings import CommonSettings
from modyard.dev.paths import RunLayout
from modyard.dev.processes import (
    StartupError,
    is_running,
    read_pid,
    remove_pid,
    wait_until,
)
from modyard.sdk.probes import redact


class State(StrEnum):
    started = "started"
    running = "running"
    external = "external"
    stopped = "stopped"
    starting = "starting"
    unavailable = "unavailable"
    failed = "failed"


@dataclass
class Report:
    """One row of the ``modyard dev infra`` table, plus the settings it contributes."""

    component: str
    url: str
    state: State
    detail: str = ""
    required: bool = True
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.state is State.failed or (self.required and self.state is State.unavailable)


class Component(ABC):
    """Base class of PostgreSQL, RabbitMQ, dockerd and the image registry."""

    #: Shown in the table.
    title: str
    #: Directory name under ``.run/``.
    key: str
    #: Whether ``infra up`` fails without it (dockerd and the image registry are optional).
    required: bool = True
    #: A fragment of the daemon's command line, checked before signalling a recorded PID.
    process_name: str
    #: The environment variable that points modyard at an existing server.
    setting: str

    def __init__(self, run: RunLayout, settings: CommonSettings) -> None:
        self.run = run
        self.settings = settings

    # -- paths ---------------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return self.run.component_dir(self.key)

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    @property
    @abstractmethod
    def log_file(self) -> Path:
        """The file to read when the component misbehaves."""

    # -- what subclasses provide ---------------------------------------------------------------

    @property
    @abstractmethod
    def configured_url(self) -> str:
        """What the settings point at (env, ``.env``; never our own ``.run/infra.env``)."""

    @property
    @abstractmethod
    def local_url(self) -> str:
        """Where the instance we start listens."""

    @abstractmethod
    def configured_reachable(self) -> bool:
        """Whether something answers at the configured URL."""

    @abstractmethod
    def local_ready(self) -> bool:
        """Whether our own instance is up and fully usable."""

    def targets_local(self) -> bool:
        """Whether the configured URL is where our local instance listens."""
        return self.configured_url == self.local_url

    #: Whether our local instance may stand in for an unreachable configured one. True for
    #: dockerd, whose default (/var/run/docker.sock) is simply absent on many machines; our
    #: socket path then goes into .run/infra.env. False where the configured URL carries
    #: credentials and a database the user chose.
    replaces_configured: bool = False

    def cannot_start(self) -> str | None:
        """Why this machine cannot run the component (missing binary, ...), or None."""
        return None

    def port_conflict(self) -> str | None:
        """Which address is taken by some other program, if any, before we start."""
        return None

    @abstractmethod
    def start(self, timeout: float) -> int:
        """Start the daemon, wait until ``local_ready``, record and return its PID."""

    @abstractmethod
    def stop(self, pid: int, timeout: float) -> None:
        """Stop the daemon we started (``pid`` is alive and verified)."""

    def env(self, url: str) -> dict[str, str]:
        """``MODYARD_*`` settings for ``.run/infra.env`` when the component is at ``url``."""
        return {}

    def cleanup_after_stop(self) -> None:
        """Stop helper processes we started alongside the daemon (epmd, containerd)."""
        return None

    # -- shared behaviour ----------------------------------------------------------------------

    def own_pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if is_running(pid, self.process_name) else None

    def report(self, state: State, detail: str = "", url: str | None = None) -> Report:
        shown = url or (self.local_url if state in _OURS else self.configured_url)
        usable = state in _OURS or state is State.external
        return Report(
            component=self.title,
            url=redact(shown),
            state=state,
            detail=detail,
            required=self.required,
            env=self.env(shown) if usable else {},
        )

    def status(self) -> Report:
        local = self.targets_local()
        if not local:
            if self.configured_reachable():
                return self.report(State.external, "reachable, not started by modyard")
            if not self.replaces_configured:
                return self.report(State.stopped, "nothing answers at the configured URL")
        pid = self.own_pid()
        if pid is not None:
            if self.local_ready():
                return self.report(State.running, f"pid {pid}, log {self._rel(self.log_file)}")
            return self.report(
                State.starting, f"pid {pid} is not answering; see {self._rel(self.log_file)}"
            )
        if self.configured_reachable():
            return self.report(State.external, "reachable, not started by modyard")
        reason = self.cannot_start()
        if reason is not None:
            return self.report(State.unavailable, reason)
        return self.report(State.stopped)

    def up(self, timeout: float) -> Report:
        local = self.targets_local()
        if not local:
            if self.configured_reachable():
                return self.report(State.external, "already running, left alone" + self._leftover())
            if not self.replaces_configured:
                return self._failure(
                    f"nothing answers at the configured {redact(self.configured_url)}, and "
                    f"modyard only starts a local instance at {redact(self.local_url)}; start "
                    f"that server or unset {self.setting}"
                )
        pid = self.own_pid()
        if pid is not None:
            # Ours from an earlier `up`; maybe still booting (a concurrent `up`), so give it time.
            try:
                wait_until(
                    self.local_ready,
                    timeout=timeout,
                    what=f"{self.title} (pid {pid})",
                    log_path=self.log_file,
                    died=lambda: not is_running(pid, self.process_name),
                )
            except StartupError as exc:
                return self._failure(str(exc))
            return self.report(State.running, f"already running, pid {pid}")
        if local and self.configured_reachable():
            # Not ours (no live recorded PID), but listening where we would: use it as is.
            return self.report(State.external, "already running, left alone")
        reason = self.cannot_start() or self.port_conflict()
        if reason is not None:
            return self._failure(reason)
        remove_pid(self.pid_file)
        try:
            pid = self.start(timeout)
        except (StartupError, OSError) as exc:
            return self._failure(str(exc))
        return self.report(State.started, f"pid {pid}, log {self._rel(self.log_file)}")

    def down(self, timeout: float) -> Report:
        pid = self.own_pid()
        if pid is None:
            remove_pid(self.pid_file)
            # Helpers (epmd, containerd) may outlive a daemon that crashed.
            self.cleanup_after_stop()
            if self.configured_reachable():
                return self.report(State.external, "not started by modyard, left alone")
            return self.report(State.stopped, "was not running")
        self.stop(pid, timeout)
        if is_running(pid, self.process_name):
            return self.report(State.failed, f"pid {pid} did not stop; see {self.log_file}")
        remove_pid(self.pid_file)
        self.cleanup_after_stop()
        return self.report(State.stopped, f"stopped pid {pid}", url=self.local_url)

    def _leftover(self) -> str:
        pid = self.own_pid()
        if pid is None:
            return ""
        return f" (a local one started earlier still runs as pid {pid}; `infra down` stops it)"

    def _failure(self, reason: str) -> Report:
        state = State.failed if self.required else State.unavailable
        return self.report(state, reason)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.run.root))
        except ValueError:
            return str(path)


_OURS = frozenset({State.started, State.running, State.starting})


def find_binary(name: str, *extra_dirs: str) -> str | None:
    """``name`` on PATH, else in one of ``extra_dirs`` (Debian keeps some daemons off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None
