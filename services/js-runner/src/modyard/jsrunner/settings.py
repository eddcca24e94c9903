from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, ClassVar, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from modyard.common.settings import ENV_FILES, ServiceSettings
from modyard.contracts.js_calls import JS_CALL_ANSWER_SECONDS

#: What an operator may allow one module beyond the default sandbox (Node permission flags).
ALLOWABLE = {
    "child-process": "--allow-child-process",
    "worker": "--allow-worker",
    "wasi": "--allow-wasi",
    # Node 20 has no --allow-addons: addons stay off unless --no-addons is left out.
    "addons": "",
}

#: The name in the environment of a module → permissions mapping (JSON).
ModuleAllowances = Annotated[dict[str, list[str]], NoDecode]
HiddenDirs = Annotated[list[str], NoDecode]


class JsRunnerSettings(ServiceSettings):
    """Settings of the JavaScript runner: ``MODYARD_JS_RUNNER_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_JS_RUNNER_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "js-runner"
    default_port: ClassVar[int] = 8007

    #: The queue the runtime sends ``js`` component requests to (a quorum queue).
    queue: str = "js-runner.requests"
    #: Requests handled at once by this process (the queue's prefetch).
    prefetch: int = Field(default=256, ge=1, le=10_000)

    node_binary: str = "/usr/bin/node"
    npm_binary: str = "/usr/bin/npm"
    unshare_binary: str = "/usr/bin/unshare"
    #: util-linux ``mount``, run in the child's mount namespace to hide the directories below.
    mount_binary: str = "/usr/bin/mount"
    #: Directories hidden from a child under an empty read-only tmpfs (its own mount namespace),
    #: because they can hold Unix sockets: Node's permission model does not check connecting
    #: to a socket path, and a path works from any network namespace (the Docker daemon's,
    #: PostgreSQL's, the dev infra's under ``.run``). ``~`` is the runner's home, a relative
    #: path is from the runner's working directory. What the child needs (its module, the
    #: base layer, its proxy socket) is mounted back. Comma-separated.
    hidden_dirs: HiddenDirs = Field(
        default_factory=lambda: [
            "/run",
            "/var/run",
            "/tmp",  # noqa: S108 - hidden, not used
            "/var/tmp",  # noqa: S108
            "/dev/shm",  # noqa: S108
            "/var/lib/postgresql",
            "/var/lib/docker",
            "/var/lib/rabbitmq",
            "~",
            ".run",
        ]
    )
    #: Where module versions are unpacked with their ``node_modules``, the base layer and the
    #: shared npm cache live. Empty: ``$XDG_CACHE_HOME/modyard/js-runner`` (``~/.cache/…``).
    cache_dir: str = ""

    # -- the sandbox (docs/js-runner.md, "Isolation") --------------------------------------------
    #: V8 heap cap of a child (``--max-old-space-size``), MiB.
    heap_mb: int = Field(default=128, ge=16, le=16384)
    #: A child whose resident memory passes this is killed (off-heap buffers count too), MiB.
    rss_limit_mb: int = Field(default=256, ge=32, le=65536)
    rss_check_seconds: float = Field(default=0.5, gt=0)
    #: Wall-clock deadline of one call; past it the child's whole process group is killed.
    call_timeout_seconds: float = Field(default=25.0, gt=0)
    #: A child is replaced after this many calls, or this many idle seconds.
    max_calls_per_child: int = Field(default=10_000, ge=1)
    idle_seconds: float = Field(default=300.0, gt=0)
    #: How long a child may take to start and say it is ready.
    start_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Largest frame a child may send (a component's outputs), bytes.
    max_frame_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: Extra Node permissions per module (JSON: ``{"vendor.service": ["child-process"]}``);
    #: keys are module names, values among child-process, worker, wasi, addons.
    module_allowances: ModuleAllowances = Field(default_factory=dict)
    #: Run although a sandbox layer (user/network namespace, Node's permission model) is not
    #: available here. Refused at start in production unless set; logged at every start.
    accept_weak_isolation: bool = False

    # -- Slingr packages (docs/slingr.md) --------------------------------------------------------
    #: One flow step, listener or script call past this is stopped (Slingr's own limit), counted
    #: from the call's arrival in the package's child (a call waiting for a free worker too):
    #: the child stops the worker and answers the classified, not retried ``ERR_SCRIPT_TIMEOUT``.
    slingr_timeout_seconds: float = Field(default=30.0, gt=0)
    #: How much longer than that the runner waits for the child's answer before it kills the
    #: whole child (which fails all its calls): the child's answer takes milliseconds, this is
    #: for a child that stopped answering. The runtime waits longer still (docs/slingr.md).
    slingr_stop_margin_seconds: float = Field(default=5.0, gt=0)
    #: Worker threads per Slingr package version: how many of its calls run at once.
    slingr_workers: int = Field(default=4, ge=1, le=64)
    #: V8 heap of one worker, MiB: a script past it fails alone, the package's other calls go on.
    slingr_heap_mb: int = Field(default=64, ge=8, le=4096)

    # -- context.httpRequest (through the egress policy) -----------------------------------------
    http_timeout_seconds: float = Field(default=20.0, gt=0)
    http_max_response_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    http_max_request_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    #: The longest a CONNECT tunnel of an SDK's ``HTTPS_PROXY`` stays open (egress_proxy.py).
    proxy_tunnel_seconds: float = Field(default=60.0, gt=0)
    #: ``ip`` (iproute2), run in the child's namespace to bring its loopback up so that the
    #: in-namespace proxy listener is reachable; empty: no proxy (SDKs fail closed).
    ip_binary: str = "/usr/sbin/ip"
    #: Ahead of the first call: module versions installed on the installer's events, and a
    #: child started for each (a warm pool: the first call does not pay for Node's start).
    install_on_events: bool = True
    warm_children: bool = True

    # -- what components keep between calls (PostgreSQL; docs/js-runner.md, "Context API") -----
    #: Largest value one ``stateSet`` (any scope) may store, bytes of JSON.
    state_max_value_bytes: int = Field(default=1024 * 1024, ge=64)
    #: Largest state one node, one flow or one module's service scope may hold, bytes of JSON.
    state_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: ``lock(name)`` without ``ttl`` expires after this; a ``ttl`` is capped at the maximum.
    lock_default_ttl_seconds: float = Field(default=20.0, gt=0)
    lock_max_ttl_seconds: float = Field(default=3600.0, gt=0)
    #: Longest ``setTimeout`` (the runtime's delay tiers carry it in hops of at most an hour).
    timer_max_seconds: float = Field(default=30 * 24 * 3600.0, gt=0)
    #: Largest value of one ``store.set``, bytes of JSON; most items one ``store.find`` returns.
    store_max_value_bytes: int = Field(default=1024 * 1024, ge=64)
    store_find_max: int = Field(default=1000, ge=1)
    #: Largest file ``saveFileStream`` stores, bytes.
    file_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # -- module files and npm --------------------------------------------------------------------
    registry_timeout_seconds: float = Field(default=30.0, gt=0)
    npm_timeout_seconds: float = Field(default=300.0, gt=0)
    #: The npm registry ``npm`` installs from (empty: npm's own default).
    npm_registry: str = ""

    @field_validator("module_allowances", mode="before")
    @classmethod
    def _parse_allowances(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(
                    'MODYARD_JS_RUNNER_MODULE_ALLOWANCES is JSON: {"module": ["child-process"]}'
                ) from exc
        return value

    @field_validator("hidden_dirs", mode="before")
    @classmethod
    def _split_hidden(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("module_allowances")
    @classmethod
    def _known_allowances(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for module, allowed in value.items():
            unknown = sorted(set(allowed) - set(ALLOWABLE))
            if unknown:
                raise ValueError(
                    f"MODYARD_JS_RUNNER_MODULE_ALLOWANCES[{module!r}]: {', '.join(unknown)} "
                    f"unknown; allowed: {', '.join(ALLOWABLE)}"
                )
        return value

    @model_validator(mode="after")
    def _limits(self) -> Self:
        if self.rss_limit_mb <= self.heap_mb:
            raise ValueError(
                "MODYARD_JS_RUNNER_RSS_LIMIT_MB must be above MODYARD_JS_RUNNER_HEAP_MB (the heap "
                "is part of the resident memory)"
            )
        if self.slingr_call_timeout_seconds > JS_CALL_ANSWER_SECONDS:
            raise ValueError(
                "MODYARD_JS_RUNNER_SLINGR_TIMEOUT_SECONDS + MODYARD_JS_RUNNER_SLINGR_STOP_MARGIN_"
                f"SECONDS is {self.slingr_call_timeout_seconds:g} s: keep it at most "
                f"{JS_CALL_ANSWER_SECONDS:g} s, or the runtime gives up on a Slingr call "
                "(and retries it) before the runner has stopped the script and reported it"
            )
        return self

    @property
    def slingr_call_timeout_seconds(self) -> float:
        """The deadline of one call to a Slingr package's child (the script's limit, then the
        margin): the child answers a script past its limit itself well before it."""
        return self.slingr_timeout_seconds + self.slingr_stop_margin_seconds

    @property
    def cache_path(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir)
        return Path.home() / ".cache" / "modyard" / "js-runner"

    @property
    def run_path(self) -> Path:
        """The children's proxy sockets (short: a Unix socket path has at most 107 bytes)."""
        return self.cache_path / "run"

    @property
    def hidden_paths(self) -> tuple[Path, ...]:
        """The existing directories of ``hidden_dirs``, resolved (``/var/run`` is ``/run``),
        outermost first, none inside another."""
        found: list[Path] = []
        for entry in self.hidden_dirs:
            path = Path(entry).expanduser().resolve()
            if path.is_dir() and path != Path("/"):
                found.append(path)
        found.sort(key=lambda path: len(path.parts))
        outer: list[Path] = []
        for path in found:
            if not any(path.is_relative_to(other) for other in outer):
                outer.append(path)
        return tuple(outer)

    @property
    def node_dir(self) -> Path:
        """The Node side shipped with this package: bootstrap.js, the base layer's lockfile."""
        return Path(__file__).parent / "node"
