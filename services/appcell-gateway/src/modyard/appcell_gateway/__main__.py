from __future__ import annotations

from modyard.common.lean_process import leave_out_terminal_rendering

# Before any other import: a service process renders nothing to a terminal (see lean_process).
leave_out_terminal_rendering()

from modyard.appcell_gateway.app import create_app, service_spec  # noqa: E402
from modyard.common.service_cli import service_cli  # noqa: E402


def main() -> None:
    service_cli(service_spec, create_app)()


if __name__ == "__main__":
    main()
