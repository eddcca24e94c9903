"""``modyard dev run``: the services as child processes with prefixed, coloured logs.

Each child gets its own session, so Ctrl-C reaches only this supervisor, which then stops the
children in order: SIGTERM (uvicorn shuts down gracefully), SIGKILL after the stop timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modyard.dev.processes import signal_process
from modyard.dev.services import Service, script_path

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan")


@dataclass(frozen=True)
class RunOptions:
    ready_timeout: float = 180.0
    stop_timeout: float = 10.0
    poll_interval: float = 0.5
    json_logs: bool = False
    #: Set for every child unless the environment sets it (e.g. the runner's own broker user).
    extra_env: dict[str, str] = field(default_factory=dict)


def prefixes(names: Sequence[str]) -> dict[str, Text]:
    """A fixed-width, coloured ``name │`` prefix per service, one colour each."""
    width = max((len(name) for name in names), default=0)
    return {
        name: Text(f"{name:<{width}} │ ", style=f"bold {COLOURS[index % len(COLOURS)]}")
        for index, name in enumerate(names)
    }


def readiness(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """Whether ``GET <url>/readyz`` is 200, and why not (the problem detail) when it is not."""
    try:
        response = httpx.get(url.rstrip("/") + "/readyz", timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"no answer ({type(exc).__name__})"
    if response.status_code == 200:
        return True, "ready"
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        detail = response.text[:200]
    return False, f"HTTP {response.status_code} {detail}".strip()


def default_on_ready(console: Console) -> None:
    """Show ``modyard status`` once everything is ready; a failure there is only a warning."""
    try:
        command = [script_path("modyard"), "status"]
    except RuntimeError:
        command = [sys.executable, "-m", "modyard.sdk.cli", "status"]
    # Same table width as ours (Rich assumes 80 columns when stdout is not a terminal).
    env = {**os.environ}
    env.setdefault("COLUMNS", str(console.width))
    try:
        result = subprocess.run(command, env=env, check=False, timeout=60)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        console.print(f"[yellow]warning:[/] `modyard status` did not run: {exc}")
        return
    if result.returncode != 0:
        console.print(f"[yellow]warning:[/] `modyard status` exited with {result.returncode}")


@dataclass
class Supervisor:
    services: Sequence[Service]
    urls: Mapping[str, str]
    console: Console
    options: RunOptions = field(default_factory=RunOptions)
    cwd: Path | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _pumps: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _print_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: bool = False

    def run(self, on_ready: Callable[[], None] | None = None) -> int:
        previous = self._install_signal_handlers()
        try:
            return self._run(on_ready)
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self, on_ready: Callable[[], None] | None) -> int:
        self.start_all()
        ready = self.wait_ready()
        if ready is not True:
            return 0 if self._stop.is_set() else 1
        self.print_urls()
        if on_ready is not None and not self._stop.is_set():
            on_ready()
        self.console.print("[dim]Streaming logs; press Ctrl-C to stop all services.[/]")
        while not self._stop.wait(self.options.poll_interval):
            if self.report_exits():
                return 1
        return 0

    # -- signals ---------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, signal.Handlers | Callable[..., object] | int]:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            if not self._stop.is_set():
                self.say(f"[bold]{signal.Signals(signum).name} received, stopping services…[/]")
            self._stop.set()

        previous: dict[int, signal.Handlers | Callable[..., object] | int] = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            handler = signal.getsignal(sig)
            previous[sig] = handler if handler is not None else signal.SIG_DFL
            signal.signal(sig, request_stop)
        return previous

    # -- children --------------------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # Local development calls local servers; production never allows loopback. The
        # platform's own ports stay refused whatever this says.
        env.setdefault("MODYARD_EGRESS_ALLOW_LOOPBACK", "true")
        if not self.options.json_logs:
            # Human-readable logs in the terminal unless the user chose otherwise.
            env.setdefault("MODYARD_LOG_JSON", "false")
        for key, value in self.options.extra_env.items():
            env.setdefault(key, value)
        return env

    def start_all(self) -> None:
        labels = prefixes([service.name for service in self.services])
        env = self.child_env()
        for service in self.services:
            command = [script_path(service.script), "serve"]
            process = subprocess.Popen(  # noqa: S603 - argument list, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
            self.children[service.name] = process
            assert process.stdout is not None
            pump = threading.Thread(
                target=self._pump,
                args=(labels[service.name], process.stdout),
                name=f"logs-{service.name}",
                daemon=True,
            )
            pump.start()
            self._pumps.append(pump)
            self.say(f"started {service.name} (pid {process.pid}): {' '.join(command)}")

    def _pump(self, label: Text, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with self._print_lock:
                self.console.print(
                    Text.assemble(label, line), soft_wrap=True, highlight=False, markup=False
                )
        stream.close()

    def say(self, message: str) -> None:
        with self._print_lock:
            self.console.print(f"[bold]modyard dev run:[/] {message}", soft_wrap=True)

    def report_exits(self) -> bool:
        """Print children that exited on their own; True when there is any."""
        dead = {name: process.poll() for name, process in self.children.items()}
        exited = {name: code for name, code in dead.items() if code is not None}
        for name, code in exited.items():
            self.say(f"[bold red]{name} exited unexpectedly with code {code}[/]; stopping the rest")
        return bool(exited)

    def wait_ready(self) -> bool | None:
        """True when every service answers /readyz with 200; None when asked to stop."""
        started = time.monotonic()
        deadline = started + self.options.ready_timeout
        pending = {service.name for service in self.services}
        reasons: dict[str, str] = {}
        while pending:
            if self._stop.is_set():
                return None
            if self.report_exits():
                return False
            for name in sorted(pending):
                ok, reasons[name] = readiness(self.urls[name])
                if ok:
                    pending.discard(name)
                    elapsed = time.monotonic() - started
                    self.say(f"[green]{name} is ready[/] at {self.urls[name]} ({elapsed:.1f}s)")
            if not pending:
                break
            if time.monotonic() >= deadline:
                for name in sorted(pending):
                    self.say(f"[bold red]{name} not ready[/] at {self.urls[name]}: {reasons[name]}")
                self.say(
                    f"[bold red]gave up after {self.options.ready_timeout:.0f}s[/] "
                    "(--ready-timeout); their logs are above"
                )
                return False
            self._stop.wait(self.options.poll_interval)
        return True

    def print_urls(self) -> None:
        table = Table(title="modyard services are ready", title_justify="left")
        table.add_column("service", style="bold")
        table.add_column("URL")
        table.add_column("API docs")
        for service in self.services:
            url = self.urls[service.name].rstrip("/")
            table.add_row(service.name, url, f"{url}/docs")
        with self._print_lock:
            self.console.print(table)

    def stop_all(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        alive = {name: p for name, p in self.children.items() if p.poll() is None}
        for process in alive.values():
            signal_process(process.pid, signal.SIGTERM, group=True)
        deadline = time.monotonic() + self.options.stop_timeout
        for name, process in alive.items():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.say(f"[yellow]{name} ignored SIGTERM, killing it[/]")
                signal_process(process.pid, signal.SIGKILL, group=True)
                process.wait(timeout=5)
        for pump in self._pumps:
            pump.join(timeout=2)
        if alive:
            self.say("all services stopped")
