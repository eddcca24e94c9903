"""One sandboxed Node.js process serving the calls of one module version.

The child is started as ``unshare --user --map-root-user --net -- node --experimental-permission
--allow-fs-read=<module>,<bootstrap>,<base layer> … bootstrap.js``, in a session (process group)
of its own, with an empty environment. It talks length-prefixed JSON frames over its stdin and
stdout (``node/bootstrap.js``); its stderr goes to the runner's log.

What stops what (docs/js-runner.md, "Isolation"):

- the network namespace has no interface up: a direct connection (to the database, the broker,
  anything) fails with ENETUNREACH; ``context.httpRequest`` is a frame the supervisor performs
  under the egress policy;
- the permission model limits reads to the module, the bootstrap and the base layer, and
  refuses writes, child processes, workers, WASI (and ``--no-addons`` native addons) unless an
  operator allows them for the module;
- ``--max-old-space-size`` caps the V8 heap; the RSS watchdog kills a child whose resident
  memory (off-heap buffers included) passes the limit;
- a call past its deadline kills the child's whole process group; its other calls fail as
  retryable, and the next call starts a new child.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shlex
import signal
import struct
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from modyard.common.egress.aiohttp_client import EgressClients
from modyard.common.egress.policy import Allowance
from modyard.jsrunner.egress_proxy import EgressProxy
from modyard.jsrunner.isolation import MOUNT_NAMESPACE, NAMESPACES, Isolation
from modyard.jsrunner.logbook import LOGBOOK
from modyard.jsrunner.settings import ALLOWABLE, JsRunnerSettings

log = structlog.get_logger(__name__)

_HEADER = struct.Struct(">I")

#: Performs a ``context.httpRequest`` frame for a module, with the calling workspace's egress
#: allowance (None: the deployment's policy only); answers the ``http-result`` fields.
HttpHandler = Callable[[dict[str, Any], str, Allowance | None], Awaitable[dict[str, Any]]]
#: Answers an ``rpc`` frame (a persistent context member: state, lock, store, files, timers) for
#: the call it names: (method, args, that call's scope) → the ``rpc-result`` fields.
RpcHandler = Callable[[str, Any, Any], Awaitable[dict[str, Any]]]


class SandboxFailure(Exception):
    """The child could not answer a call (it crashed, was killed, or never started): retryable,
    since a new child takes the next call."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class SandboxSpec:
    """Everything that makes one module version's child: where it reads, what it may do."""

    key: str
    module: str
    module_dir: Path
    #: Directories ``require`` searches after the module's own ``node_modules`` (base layer).
    require_paths: tuple[Path, ...]
    #: Permissions an operator allowed this module (``ALLOWABLE`` keys).
    allowances: tuple[str, ...] = ()
    #: The child's entry script under ``node/`` and arguments after the usual ones (Slingr
    #: packages run on ``slingr/main.js`` with their limits, docs/slingr.md).
    bootstrap: str = "bootstrap.js"
    extra_args: tuple[str, ...] = ()
    #: Node options of this child's own (before the entry script).
    node_options: tuple[str, ...] = ()
    #: The deadline of one call when not ``CALL_TIMEOUT_SECONDS`` (a Slingr child enforces its
    #: scripts' own limit and gets a deadline after it, docs/slingr.md "Limits").
    call_timeout_seconds: float | None = None


def command(
    settings: JsRunnerSettings,
    isolation: Isolation,
    spec: SandboxSpec,
    proxy_socket: Path | None = None,
) -> list[str]:
    readable = [spec.module_dir, settings.node_dir, *spec.require_paths]
    if isolation.namespaces and not settings.ip_binary:
        proxy_socket = None  # no loopback in the namespace: SDKs fail closed, no proxy to wait for
    node = [settings.node_binary]
    if isolation.permissions:
        # One flag per directory, each with the trailing wildcard that opens its tree: Node 20.20
        # honours only the first path of a comma-separated list.
        node += [
            "--experimental-permission",
            *(f"--allow-fs-read={path}/*" for path in readable),
            "--disable-warning=ExperimentalWarning",
        ]
        node += [ALLOWABLE[name] for name in spec.allowances if ALLOWABLE.get(name)]
    if "addons" not in spec.allowances:
        node.append("--no-addons")
    node += [
        *spec.node_options,
        f"--max-old-space-size={settings.heap_mb}",
        str(settings.node_dir / spec.bootstrap),
        ":".join(str(path) for path in spec.require_paths),
        str(proxy_socket or ""),
        *spec.extra_args,
    ]
    if not isolation.namespaces:
        return node
    steps: list[str] = []
    if isolation.mounts:
        steps += _hide(
            settings, [*readable, Path(settings.node_binary).resolve().parent], proxy_socket
        )
    if proxy_socket is not None and settings.ip_binary:
        # The namespace's own loopback up (nothing else is there), for the in-namespace
        # proxy listener of npm SDKs (node/proxy.js). `ip` runs beside Node's start (it
        # takes ~10 ms, Node ~60): the bootstrap says it is ready only once its listener
        # answers on that loopback. The subshell leaves `ip` to init, not to Node.
        steps.append(f"({shlex.quote(settings.ip_binary)} link set lo up &)")
    unshare = [
        settings.unshare_binary,
        *(MOUNT_NAMESPACE if isolation.mounts else NAMESPACES),
        "--",
    ]
    if not steps:
        return [*unshare, *node]
    script = " && ".join(steps) + ' ; unset PWD; exec "$@"'
    return [*unshare, "/bin/sh", "-c", script, "sh", *node]


def _hide(settings: JsRunnerSettings, keep: list[Path], proxy_socket: Path | None) -> list[str]:
    """Shell steps run in the child's mount namespace before Node: an empty read-only tmpfs
    over each hidden directory (Node's permission model does not check connecting to a Unix
    socket path, and a path crosses network namespaces), then what the child needs mounted
    back. A directory to keep is opened before it is hidden and bound back from that open
    descriptor (``/proc/$$/fd/N``, not canonicalized: its path then names the empty tmpfs)."""
    hidden = settings.hidden_paths
    if proxy_socket is not None:
        keep = [*keep, proxy_socket.parent]  # a directory of its own (Child.__init__)
    under = sorted(
        {path.resolve() for path in keep if any(path.resolve().is_relative_to(t) for t in hidden)}
    )
    # Outermost only (a bind brings its subtree); at most 7, the descriptors sh can name (3-9).
    needed: list[Path] = []
    for path in under:
        if not any(path.is_relative_to(other) for other in needed):
            needed.append(path)
    if len(needed) > 7:
        raise SandboxFailure(
            f"{len(needed)} directories to mount back in the sandbox (at most 7): shorten "
            "MODYARD_JS_RUNNER_HIDDEN_DIRS or keep the cache outside them",
            retryable=False,
        )
    mount = shlex.quote(settings.mount_binary)
    steps = [f"exec {fd}<{shlex.quote(str(path))}" for fd, path in enumerate(needed, start=3)]
    steps += [
        f"{mount} -n -t tmpfs -o mode=755,nosuid,nodev,noexec,size=64k tmpfs {shlex.quote(str(top))}"
        for top in hidden
    ]
    for fd, path in enumerate(needed, start=3):
        steps += [
            f"mkdir -p {shlex.quote(str(path))}",
            f"{mount} -n -c --rbind /proc/$$/fd/{fd} {shlex.quote(str(path))}",
        ]
    steps += [f"{mount} -n -o remount,ro {shlex.quote(str(top))}" for top in hidden]
    steps += [f"exec {fd}<&-" for fd in range(3, 3 + len(needed))]
    return steps


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` (from /proc), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Call:
    future: asyncio.Future[dict[str, Any]]
    logs: list[dict[str, Any]] = field(default_factory=list)
    #: Who the call runs for (context_api.CallScope), given to its ``rpc`` frames.
    scope: Any = None
    #: The calling workspace's egress allow-list (httpRequest and the SDK proxy).
    allowance: Allowance | None = None
    workspace: str = ""


class Child:
    """A started child; :meth:`call` sends one call and waits for its answer."""

    def __init__(
        self,
        spec: SandboxSpec,
        settings: JsRunnerSettings,
        isolation: Isolation,
        http: HttpHandler,
        rpc: RpcHandler | None = None,
        *,
        proxy_clients: EgressClients | None = None,
    ) -> None:
        self.spec = spec
        self._rpc = rpc
        #: HTTP(S)_PROXY of the npm SDKs (egress_proxy.py); None: they fail closed.
        self._proxy = (
            EgressProxy(
                settings,
                proxy_clients,
                module=spec.module,
                # Unguessable: a child cannot list the directory (permission model), and a Unix
                # socket path is reachable from any network namespace, so another module's child
                # must not be able to name this one's proxy (and borrow its workspace's list).
                # A directory of its own, the only part of run_path mounted back in its child's
                # mount namespace (other children's sockets are not there at all).
                path=settings.run_path / secrets.token_hex(16) / "p.sock",
                allowance=self.proxy_allowance,
            )
            if proxy_clients is not None
            else None
        )
        self._settings = settings
        self._isolation = isolation
        self._http = http
        self._process: asyncio.subprocess.Process | None = None
        self._calls: dict[int, _Call] = {}
        self._next_id = 1
        self._tasks: list[asyncio.Task[None]] = []
        self._http_tasks: set[asyncio.Task[None]] = set()
        self.calls_started = 0
        self.last_used = time.monotonic()
        self.started_seconds = 0.0
        #: Why the child is gone (None while it runs).
        self.ended: str | None = None
        self.retiring = False
        self._exited = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self.ended is None

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    async def start(self) -> None:
        began = time.perf_counter()
        if self._proxy is not None:
            await self._proxy.start()
        argv = command(
            self._settings, self._isolation, self.spec, self._proxy.path if self._proxy else None
        )
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Nothing of the runner's environment (credentials, URLs) reaches module code.
            env={},
            cwd=str(self.spec.module_dir),
            # A process group of its own: the deadline kills everything the child started.
            start_new_session=True,
            limit=self._settings.max_frame_bytes + 4,
        )
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(self._settings.start_timeout_seconds):
                hello = await self._read_frame(self._process.stdout)
        except (TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            stderr = await self._drain_stderr()
            self.kill(f"did not start: {exc!r}")
            raise SandboxFailure(
                f"the sandbox of {self.spec.module} did not start ({stderr[-500:] or exc!r})"
            ) from None
        if hello.get("t") != "ready":
            self.kill("spoke before saying it was ready")
            raise SandboxFailure(f"the sandbox of {self.spec.module} did not start")
        self.started_seconds = time.perf_counter() - began
        self._tasks = [
            asyncio.create_task(self._reader(), name=f"js-child-{self.pid}-reader"),
            asyncio.create_task(self._stderr(), name=f"js-child-{self.pid}-stderr"),
            asyncio.create_task(self._watch_rss(), name=f"js-child-{self.pid}-rss"),
        ]
        log.info(
            "js_child_started",
            module=self.spec.key,
            pid=self.pid,
            start_ms=round(self.started_seconds * 1000, 1),
        )

    async def call(
        self,
        frame: dict[str, Any],
        scope: Any = None,
        *,
        allowance: Allowance | None = None,
        workspace: str = "",
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The child's ``done`` or ``failed`` frame for ``frame``, and the call's log lines."""
        if not self.alive or self._process is None or self._process.stdin is None:
            raise SandboxFailure(f"the sandbox of {self.spec.module} has stopped ({self.ended})")
        call_id = self._next_id
        self._next_id += 1
        self.calls_started += 1
        self.last_used = time.monotonic()
        pending = _Call(
            asyncio.get_running_loop().create_future(),
            scope=scope,
            allowance=allowance,
            workspace=workspace,
        )
        self._calls[call_id] = pending
        try:
            self._send({**frame, "t": "call", "id": call_id})
            deadline = self.spec.call_timeout_seconds or self._settings.call_timeout_seconds
            try:
                async with asyncio.timeout(deadline):
                    answer = await pending.future
            except TimeoutError:
                self.kill(f"a call passed its {deadline:g} s deadline")
                raise SandboxFailure(
                    f"the component did not finish within {deadline:g} s; its sandbox was stopped"
                ) from None
        finally:
            self._calls.pop(call_id, None)
            self.last_used = time.monotonic()
        return answer, pending.logs

    def _send(self, frame: dict[str, Any]) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        body = json.dumps(frame, default=str, separators=(",", ":")).encode()
        try:
            self._process.stdin.write(_HEADER.pack(len(body)) + body)
        except (ConnectionError, RuntimeError) as exc:
            self.kill(f"its input closed ({exc})")
            raise SandboxFailure(f"the sandbox of {self.spec.module} has stopped") from exc

    async def _read_frame(self, stream: asyncio.StreamReader) -> dict[str, Any]:
        header = await stream.readexactly(4)
        (size,) = _HEADER.unpack(header)
        if size > self._settings.max_frame_bytes:
            raise ValueError(
                f"a frame of {size} bytes (the limit is {self._settings.max_frame_bytes})"
            )
        frame = json.loads(await stream.readexactly(size))
        if not isinstance(frame, dict):
            raise ValueError("a frame that is not an object")
        return frame

    async def _reader(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        stdout = self._process.stdout
        reason = "exited"
        try:
            while True:
                frame = await self._read_frame(stdout)
                kind = frame.get("t")
                if kind in ("done", "failed"):
                    pending = self._calls.get(int(frame.get("id") or 0))
                    if pending is not None and not pending.future.done():
                        pending.future.set_result(frame)
                elif kind == "log":
                    self._log(frame)
                elif kind == "http":
                    task = asyncio.create_task(self._perform(frame))
                    self._http_tasks.add(task)
                    task.add_done_callback(self._http_tasks.discard)
                elif kind == "rpc":
                    task = asyncio.create_task(self._answer_rpc(frame))
                    self._http_tasks.add(task)
                    task.add_done_callback(self._http_tasks.discard)
        except asyncio.IncompleteReadError:
            code = await self._process.wait()
            reason = f"exited with {_exit_text(code)}"
        except (ValueError, TypeError) as exc:
            # A module wrote to the protocol stream itself: its own child, its own calls.
            reason = f"broke the protocol ({exc})"
        self.kill(reason)

    def _log(self, frame: dict[str, Any]) -> None:
        entry = {"level": str(frame.get("level") or "info"), "message": str(frame.get("msg"))}
        call = self._calls.get(int(frame.get("id") or 0))
        if call is not None and len(call.logs) < 100:
            call.logs.append(entry)
        log.info("js_component_log", module=self.spec.key, pid=self.pid, **entry)
        LOGBOOK.add(self.spec.key, self.pid, entry["level"], entry["message"])

    def proxy_allowance(self) -> Allowance | None:
        """The allow-list the SDK proxy applies now. A proxied connection cannot be tied to
        one call (the child serves calls of several workspaces at once): with calls of a single
        workspace in flight, that workspace's list; otherwise only the deployment's policy (a
        workspace's list only widens it, so this never lets through more than a call may)."""
        workspaces = {call.workspace for call in self._calls.values()}
        if len(workspaces) != 1:
            return None
        return next(iter(self._calls.values())).allowance

    async def _perform(self, frame: dict[str, Any]) -> None:
        request = frame.get("request")
        call = self._calls.get(int(frame.get("id") or 0))
        try:
            result = await self._http(
                request if isinstance(request, dict) else {},
                self.spec.module,
                call.allowance if call is not None else None,
            )
        except Exception as exc:  # the child must hear back whatever happened
            result = {"error": {"message": f"httpRequest failed: {exc}", "code": "ERR_RUNNER"}}
        if self.alive:
            with contextlib.suppress(SandboxFailure):
                self._send({"t": "http-result", "rid": frame.get("rid"), **result})

    async def _answer_rpc(self, frame: dict[str, Any]) -> None:
        # Only a call still running may use the context: its scope says for whom.
        call = self._calls.get(int(frame.get("id") or 0))
        if call is None or call.scope is None or self._rpc is None:
            result: dict[str, Any] = {
                "error": {
                    "message": f"context.{frame.get('method')} was used outside a running call",
                    "code": "ERR_NOT_SUPPORTED",
                }
            }
        else:
            result = await self._rpc(str(frame.get("method") or ""), frame.get("args"), call.scope)
        if self.alive:
            with contextlib.suppress(SandboxFailure):
                self._send({"t": "rpc-result", "rid": frame.get("rid"), **result})

    async def _stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        while line := await self._process.stderr.readline():
            log.warning(
                "js_child_stderr",
                module=self.spec.key,
                pid=self.pid,
                line=line.decode(errors="replace").rstrip()[:2000],
            )

    async def _drain_stderr(self) -> str:
        if self._process is None or self._process.stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                return (await self._process.stderr.read(8192)).decode(errors="replace")
        return ""

    async def _watch_rss(self) -> None:
        limit = self._settings.rss_limit_mb * 1024 * 1024
        while self.alive and self.pid is not None:
            rss = rss_bytes(self.pid)
            if rss is None:
                return
            if rss > limit:
                self.kill(f"its memory passed {self._settings.rss_limit_mb} MiB")
                return
            await asyncio.sleep(self._settings.rss_check_seconds)

    def kill(self, reason: str) -> None:
        """Kill the whole process group at once; every call in flight fails as retryable."""
        if self.ended is not None:
            return
        self.ended = reason
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
        for pending in self._calls.values():
            if not pending.future.done():
                pending.future.set_exception(
                    SandboxFailure(f"the sandbox of {self.spec.module} stopped: {reason}")
                )
        level = log.info if reason.startswith("recycled") else log.warning
        level("js_child_stopped", module=self.spec.key, pid=self.pid, reason=reason)
        LOGBOOK.add(self.spec.key, self.pid, "runner", f"sandbox stopped: {reason}")
        current = asyncio.current_task()
        for task in (*self._tasks, *self._http_tasks):
            if task is not current:
                task.cancel()
        if self._process is not None:
            asyncio.get_running_loop().create_task(self._reap())
        if self._proxy is not None:
            asyncio.get_running_loop().create_task(self._close_proxy(self._proxy))

    @staticmethod
    async def _close_proxy(proxy: EgressProxy) -> None:
        await proxy.close()
        with contextlib.suppress(OSError):
            proxy.path.parent.rmdir()  # the child's own socket directory

    async def _reap(self) -> None:
        # Collect the exit status so that no zombie is left behind.
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                await self._process.wait()
            # asyncio closes the pipes only once all were read to the end: not after a kill.
            transport = getattr(self._process, "_transport", None)
            if transport is not None:
                transport.close()
        self._exited.set()

    async def wait_closed(self) -> None:
        await self._exited.wait()


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
