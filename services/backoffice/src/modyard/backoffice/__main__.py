"""``modyard-backoffice [serve]``: the console keeps no data, so it has nothing to migrate."""

from __future__ import annotations

from modyard.common.lean_process import lean_service_process

# Before any other import: what a service process leaves out (see lean_process).
lean_service_process()

import sys  # noqa: E402

from modyard.backoffice.app import create_app  # noqa: E402
from modyard.backoffice.settings import BackofficeSettings  # noqa: E402
from modyard.common.service_cli import SERVE_ARGUMENTS, run_server  # noqa: E402


def serve() -> None:
    """Run the web console."""
    run_server(create_app(), BackofficeSettings())


def main() -> None:
    if tuple(sys.argv[1:]) in SERVE_ARGUMENTS:
        serve()
        return
    # The other commands and --help: typer, loaded for them only (modyard.common.service_cli).
    from modyard.backoffice.commands import command_line

    command_line(serve)()


if __name__ == "__main__":
    main()
