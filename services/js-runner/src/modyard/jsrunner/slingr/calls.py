"""What the runner sends a Slingr package's child: its sandbox spec and one call's frame."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modyard.jsrunner.context_api import CallScope
from modyard.jsrunner.modules import JsComponent, ModuleVersion
from modyard.jsrunner.sandbox import SandboxSpec
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.jsrunner.slingr import inputs

SLINGR = "slingr"


@dataclass(frozen=True)
class SlingrScope:
    """Who a Slingr call runs for: the context scope and the installation whose storage and
    events it uses (all from the runtime's request, never from the child)."""

    base: CallScope
    installation: str
    #: The package's own name (``pkg.<name>``) and the events package.json declares.
    package: str
    events: frozenset[str]
    #: The runtime's request the call answers (module, version, workspace, installation,
    #: egress; never the configuration, read again by each call): package-event listeners run
    #: with the same.
    origin: dict[str, Any] = field(default_factory=dict)
    #: How many package events or dependency calls led to this call (bounded).
    depth: int = 0
    #: The packages package.json depends on (``dependencies.<name>.functions``).
    packages: frozenset[str] = frozenset()
    #: A flow step's ``sys.events.triggerEvent`` calls, returned with its answer so that the
    #: runtime records them with the node's success (None: published at once).
    emitted: list[dict[str, Any]] | None = None


def spec(settings: JsRunnerSettings, module: ModuleVersion, base: SandboxSpec) -> SandboxSpec:
    """A Slingr package's child: node/slingr/main.js with worker threads (package code runs in
    them, so the child needs ``--allow-worker``) and the per-script limits."""
    limits = {
        "timeoutMs": int(settings.slingr_timeout_seconds * 1000),
        "workers": settings.slingr_workers,
        "heapMb": settings.slingr_heap_mb,
        "bufferBytes": settings.max_frame_bytes,
    }
    return SandboxSpec(
        key=base.key,
        module=base.module,
        module_dir=base.module_dir,
        require_paths=base.require_paths,
        allowances=tuple(sorted({*base.allowances, "worker"})),
        bootstrap="slingr/main.js",
        # Node warns at each start that --allow-worker "could invalidate the permission model":
        # workers inherit it (docs/slingr.md, "Sandbox"; test_slingr_steps' escape attempts).
        node_options=("--disable-warning=SecurityWarning",),
        extra_args=(json.dumps(limits, separators=(",", ":")),),
        call_timeout_seconds=settings.slingr_call_timeout_seconds,
    )


def descriptor(module: ModuleVersion) -> dict[str, Any]:
    return _descriptor(module.directory)


@functools.lru_cache(maxsize=512)
def _descriptor(directory: Path) -> dict[str, Any]:
    """package.json of an installed version (read-only on disk: read once per process)."""
    try:
        loaded = json.loads((directory / "package.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def scope_of(
    module: ModuleVersion, base: CallScope, request: dict[str, Any], *, collect: bool = False
) -> SlingrScope:
    document = descriptor(module)
    payload = request.get("payload")
    depth = payload.get("depth") if isinstance(payload, dict) else None
    declared = document.get("events")
    events: list[Any] = declared if isinstance(declared, list) else []
    return SlingrScope(
        base=base,
        installation=str(request.get("installation") or ""),
        package=str(document.get("name") or module.name),
        events=frozenset(
            str(event["name"]) for event in events if isinstance(event, dict) and event.get("name")
        ),
        origin={
            key: request[key]
            for key in ("module", "version", "workspace", "installation", "egress")
            if key in request
        },
        depth=depth
        if request.get("port") in ("listener", "function") and isinstance(depth, int)
        else 0,
        packages=frozenset(
            str(dependency["name"])
            for dependency in (document.get("dependencies") or [])
            if isinstance(dependency, dict)
            and dependency.get("type") == "package"
            and dependency.get("name")
        ),
        emitted=[] if collect else None,
    )


def step_frame(
    module: ModuleVersion, component: JsComponent, request: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """A flow step's call: the message's content are its inputs (over step.json's defaults and
    the node's properties), the installation's configuration (``config``, read from the
    installer for this call: run.py) goes through ``configurationBuilder`` in the child."""
    return {
        "kind": "step",
        "packageDir": str(module.directory),
        "entry": str(component.entry),
        # step.json's defaults, the node's properties and the message, converted to the
        # types the registry mapped (inputs.py; raises InputError).
        "content": inputs.step_inputs(
            component, request.get("properties") or {}, request.get("payload")
        ),
        "properties": {},
        "config": config,
        "nodeId": request.get("node_id"),
        "flowId": request.get("flow_id"),
    }


def listener_frame(
    module: ModuleVersion, request: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """The package's listeners for one webhook or package event. A webhook's ``payload`` is the
    request (``method``, ``path``, ``headers``, ``query``, ``data``): each ``webhook`` listener
    matching its path runs, a ``webhookSync`` one's return value answers. A package event's is
    ``{"kind": "package", "event", "data", "depth"}``: its ``type: 'package'`` listeners run."""
    return {
        "kind": "webhook",
        "packageDir": str(module.directory),
        "event": request.get("payload"),
        "config": config,
    }


def function_frame(
    module: ModuleVersion, request: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """Another package's ``dependencies.<this>.functions.<namespace>.<fn>(…)``: ``payload`` is
    ``{"path": [namespace, fn] | [fn], "args": […]}``, run with this installation's config."""
    payload = request.get("payload") if isinstance(request.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    return {
        "kind": "function",
        "packageDir": str(module.directory),
        "path": payload.get("path") or [],
        "args": payload.get("args") or [],
        "config": config,
    }
