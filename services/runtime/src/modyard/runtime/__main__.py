from __future__ import annotations

from modyard.common.lean_process import lean_service_process

# Before any other import: what a service process leaves out (see lean_process).
lean_service_process()

from modyard.common.service_cli import main as service_main  # noqa: E402
from modyard.runtime.app import create_app, service_spec  # noqa: E402


def main() -> None:
    service_main(service_spec, create_app)


if __name__ == "__main__":
    main()
