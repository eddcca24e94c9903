"""The services as seen from the outside: console scripts and base URLs.

The sdk must not import the service packages, so everything goes through their console scripts
(``modyard-<svc> migrate`` / ``modyard-<svc> serve``), found next to the running interpreter.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Service:
    #: Name in ``CommonSettings.service_urls()`` and in log prefixes.
    name: str
    #: Console script installed by the service's package.
    script: str


SERVICES: tuple[Service, ...] = (
    Service("registry", "modyard-registry"),
    Service("installer", "modyard-installer"),
    Service("runtime", "modyard-runtime"),
    Service("appcell-gateway", "modyard-appcell-gateway"),
    Service("deployer", "modyard-deployer"),
    # The operators' web console; it has no schema (its `migrate` only says so).
    Service("backoffice", "modyard-backoffice"),
    # Runs the Appmixer components (``js`` executor) in sandboxed Node.js processes.
    Service("js-runner", "modyard-js-runner"),
)

#: Where the backoffice listens unless MODYARD_BACKOFFICE_URL says otherwise (the default of
#: ``CommonSettings.backoffice_url`` too).
BACKOFFICE_URL = "http://127.0.0.1:8006"


class ScriptNotFoundError(RuntimeError):
    pass


def bin_dir() -> Path:
    # Not resolved: in a venv, python is a symlink to the base interpreter, but the scripts live
    # next to the symlink.
    return Path(sys.executable).parent


def script_path(script: str) -> str:
    """The console script from our environment, else from PATH."""
    candidate = bin_dir() / script
    if candidate.exists():
        return str(candidate)
    found = shutil.which(script)
    if found:
        return found
    raise ScriptNotFoundError(
        f"{script} not found in {bin_dir()} or on PATH; run `uv sync --all-packages`"
    )


def select(names: list[str] | None) -> list[Service]:
    """Services by name (either the service name or its script suffix), all when empty."""
    if not names:
        return list(SERVICES)
    by_name = {service.name: service for service in SERVICES}
    by_name.update({service.script.removeprefix("modyard-"): service for service in SERVICES})
    unknown = [name for name in names if name not in by_name]
    if unknown:
        known = ", ".join(service.name for service in SERVICES)
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; known: {known}")
    chosen = {by_name[name] for name in names}
    return [service for service in SERVICES if service in chosen]
