from __future__ import annotations

from modyard.appcell_gateway.app import create_app, service_spec
from modyard.common.service_cli import service_cli


def main() -> None:
    service_cli(service_spec, create_app)()


if __name__ == "__main__":
    main()
