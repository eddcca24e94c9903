"""Starting, finding and stopping background processes by recorded PID.

``modyard dev infra`` must stop exactly what it started, so every daemon's PID goes into a pid file
and is checked against ``/proc/<pid>/cmdline`` before it is signalled: after a reboot the same PID
may belong to something else entirely.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class StartupError(RuntimeError):
    """A component did not come up; the message names the log file to read."""


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").split()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not text or not text[0].isdigit():
        return None
    return int(text[0])


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n", encoding="utf-8")


def remove_pid(path: Path) -> None:
    path.unlink(missing_ok=True)


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None without such a process (or /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    after = stat.rsplit(")", 1)[-1].split()
    return after[0] if after else None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_running(pid: int | None, expect: str | None = None) -> bool:
    """Whether ``pid`` is a live (non-zombie) process whose command line mentions ``expect``.

    ``expect`` is matched against the base name of every argument, so ``postgres`` matches
    ``/usr/lib/postgresql/15/bin/postgres -D ...`` and ``rabbitmq-server`` matches
    ``/bin/sh /usr/lib/rabbitmq/bin/rabbitmq-server``.
    """
    if pid is None or pid <= 0:
        return False
    if Path("/proc/self").exists():
        state = _proc_state(pid)
        # Z: exited but not yet reaped (our own children until we poll them); X: dead.
        if state is None or state in {"Z", "X"}:
            return False
        if expect is None:
            return True
        return any(expect in Path(arg).name for arg in _cmdline(pid))
    try:  # No /proc (not Linux): existence is the best we can check.
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn_daemon(
    args: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` detached from our terminal, appending stdout and stderr to ``log_path``.

    A new session keeps Ctrl-C in the shell that ran ``modyard dev infra up`` (or ``make``) from
    reaching the daemon, and lets ``stop`` signal the whole process group.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - argument list, no shell
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log_path: Path,
    interval: float = 0.25,
    died: Callable[[], bool] | None = None,
) -> None:
    """Poll ``ready`` until it returns True; raise StartupError on timeout or when ``died``."""
    deadline = time.monotonic() + timeout
    while True:
        # Death first: a daemon that died at once (port in use, say) must not pass for ready
        # because some other program answers on its port.
        if died is not None and died():
            raise StartupError(
                f"{what} exited during startup; see {log_path}\n{tail(log_path)}".rstrip()
            )
        if ready():
            return
        if time.monotonic() >= deadline:
            raise StartupError(
                f"{what} was not ready after {timeout:.0f}s; see {log_path}\n{tail(log_path)}"
            )
        time.sleep(interval)


def signal_process(pid: int, sig: signal.Signals, *, group: bool = False) -> None:
    """Send ``sig`` to ``pid`` (or to its process group when it leads one); ignore vanished pids."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def terminate(pid: int, *, expect: str | None, timeout: float, group: bool = True) -> bool:
    """SIGTERM ``pid`` (and its group), SIGKILL it after ``timeout``; True once it is gone."""
    if not is_running(pid, expect):
        return True
    signal_process(pid, signal.SIGTERM, group=group)
    if wait_gone(pid, timeout):
        return True
    signal_process(pid, signal.SIGKILL, group=group)
    return wait_gone(pid, 5.0)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_running(pid):
            return True
        time.sleep(0.1)
    _reap(pid)
    return not is_running(pid)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file, indented, for error messages."""
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    if not content:
        return ""
    return "\n".join(f"    {line}" for line in content[-lines:])


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short command to completion, capturing its output (never raises on failure)."""
    return subprocess.run(  # noqa: S603 - argument list, no shell
        list(args),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        check=False,
    )
