"""The entry point of every service: ``modyard-<service> [serve|migrate|rotate-secrets]``.

``modyard-<service>`` and ``modyard-<service> serve``, what every container runs, start the server
without building the command line: typer (28 modules, ~1 MiB of every process) is imported only
for the other commands and ``--help`` (:mod:`modyard.common.service_commands`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from modyard.common.http_server import CoalescingHttpToolsProtocol
from modyard.common.process_heap import serving_this_process
from modyard.common.settings import ServiceSettings

if TYPE_CHECKING:
    # For the annotation only: the backoffice serves through run_server without the app factory,
    # which imports the database and broker layers (SQLAlchemy, asyncpg, aio-pika) it never uses.
    from modyard.common.app_factory import ServiceSpec

#: The arguments that mean "serve" (no command runs ``serve``).
SERVE_ARGUMENTS = ((), ("serve",))


def main(
    spec_factory: Callable[[], ServiceSpec],
    app_factory: Callable[[], FastAPI],
    argv: Sequence[str] | None = None,
) -> None:
    """A service's entry point: serve at once, or the full command line for anything else."""
    arguments = tuple(sys.argv[1:] if argv is None else argv)
    if arguments in SERVE_ARGUMENTS:
        run_server(app_factory(), spec_factory().settings)
        return
    # The other commands and --help: typer, loaded for them only.
    from modyard.common.service_commands import service_cli

    service_cli(spec_factory, app_factory)(list(arguments))


def run_server(app: FastAPI, settings: ServiceSettings) -> None:
    """uvicorn, as every modyard service runs it (the backoffice too)."""
    # The process is the service's: it may freeze its heap once ready (process_heap).
    serving_this_process()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # Our RequestContextMiddleware writes the access line; uvicorn's logger is disabled
        # (configure_logging), but with access_log on uvicorn still formats each request's
        # client address and path for it (bench gateway: ~1.5 % of the gateway's CPU).
        access_log=False,
        http=CoalescingHttpToolsProtocol,
        # No modyard route is a WebSocket: uvicorn's default ("auto") imports the websockets
        # library and its protocol at start (~20 modules, 1.2 MiB of every process) for upgrades
        # no service accepts. An upgrade request is then answered as plain HTTP (the route's 404).
        ws="none",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
    )
