"""The shipped SDK without the dev-only members (issue 18): ``modyard dev`` says what to install,
and ``modyard status`` works, as in an image or a ``pip install modyard-sdk``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Makes modyard.dev and modyard.testing unimportable, as where modyard-dev and modyard-testing
# are not installed (a None entry in sys.modules makes import raise ModuleNotFoundError).
WITHOUT_DEV = (
    "import sys\n"
    "for name in ('modyard.dev', 'modyard.dev.cli', 'modyard.testing'):\n"
    "    sys.modules[name] = None\n"
)


#: Nothing of ours listens on the discard port: every service and infrastructure check is down.
NOWHERE = "127.0.0.1:9"
DOWN = {
    f"MODYARD_{name}_URL": f"http://{NOWHERE}"
    for name in ("REGISTRY", "INSTALLER", "RUNTIME", "GATEWAY", "DEPLOYER", "BACKOFFICE")
} | {
    "MODYARD_DATABASE_URL": f"postgresql+asyncpg://u:p@{NOWHERE}/db",
    "MODYARD_AMQP_URL": f"amqp://u:p@{NOWHERE}/v",
    "MODYARD_AMQP_MANAGEMENT_URL": f"http://{NOWHERE}",
    "MODYARD_IMAGE_REGISTRY_URL": f"http://{NOWHERE}",
}


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    script = WITHOUT_DEV + (
        f"sys.argv = ['modyard', *{list(args)!r}]\nfrom modyard.sdk.cli import main\nmain()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", **DOWN},
        cwd=cwd,
        check=False,
    )


def test_dev_without_modyard_dev_says_to_install_it_and_fails() -> None:
    done = run_cli("dev", "infra", "up")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "modyard-dev" in done.stderr
    assert "not installed" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_still_lists_dev_without_modyard_dev() -> None:
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert " dev " in done.stdout


def test_status_runs_without_modyard_dev(tmp_path: Path) -> None:
    # In an empty folder: no .env of the checkout's.
    done = run_cli("status", "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["healthy"] is False
    states = {check["name"]: check["state"] for check in report["checks"]}
    assert states["registry"] == "down"
    assert len(states) > 6  # the infrastructure was probed too
