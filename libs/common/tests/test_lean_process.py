"""A service process leaves rich and pygments out (modyard.common.lean_process), and its command
line, its logs and its errors still work without them."""

from __future__ import annotations

import subprocess
import sys

import pytest

PACKAGES = [
    "registry",
    "installer",
    "runtime",
    "appcell_gateway",
    "deployer",
    "backoffice",
    "jsrunner",
]


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip()


@pytest.mark.parametrize("package", PACKAGES)
def test_a_service_entry_point_imports_no_terminal_rendering(package: str) -> None:
    loaded = _python(
        f"import sys, modyard.{package}.__main__, modyard.{package}.app as app; app.create_app(); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('rich', 'pygments') "
        "and sys.modules[name] is not None))"
    )
    assert loaded == "[]"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_started_service_has_not_loaded_what_only_some_calls_use(package: str) -> None:
    # Its tokens are HMAC (PyJWT without cryptography) and its SecretBox is made at start-up but
    # imports cryptography only when it first opens a secret (modyard.common.secrets); FastAPI
    # looks for pydantic.v1 only to rule its models out; typer is for the other commands
    # (modyard.common.service_cli), psutil for an egress policy's first look at the interfaces,
    # watchfiles for uvicorn's --reload only.
    loaded = _python(
        f"import sys, modyard.{package}.__main__, modyard.{package}.app as app; app.create_app(); "
        "import modyard.common.tokens, modyard.common.service_cli, uvicorn.supervisors; "
        "print(sorted(name for name in sys.modules if sys.modules[name] is not None and "
        "(name.split('.')[0] in ('cryptography', 'typer', 'psutil', 'watchfiles') "
        "or name.startswith('pydantic.v1'))))"
    )
    assert loaded == "[]"


def test_hmac_tokens_and_secrets_still_work_in_a_lean_process() -> None:
    out = _python(
        "import sys, modyard.registry.__main__, jwt\n"
        "from modyard.common.settings import CommonSettings\n"
        "from modyard.common.tokens import Role, decode_token, mint_token\n"
        "from modyard.common.secrets import SecretBox\n"
        "settings = CommonSettings()\n"
        "claims = decode_token(settings, mint_token(settings, subject='a', roles=(Role.operator,)))\n"
        "before = 'cryptography' in sys.modules\n"
        "box = SecretBox([SecretBox.generate_key()])\n"
        "made = 'cryptography' in sys.modules\n"
        "opened = box.decrypt_json(box.encrypt_json({'k': 1}))\n"
        "print(claims.subject, jwt.algorithms.has_crypto, before, made, opened['k'], "
        "'cryptography' in sys.modules)"
    )
    # PyJWT runs HMAC-only, the box imports cryptography when it first encrypts.
    assert out == "a False False False 1 True"


def test_the_service_help_and_its_usage_errors_still_render() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "modyard.registry", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "serve" in help_text
    assert "migrate" in help_text
    wrong = subprocess.run(
        [sys.executable, "-m", "modyard.registry", "no-such-command"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 2
    assert "No such command 'no-such-command'" in wrong.stderr


def test_structlog_console_logs_without_rich() -> None:
    line = _python(
        "import modyard.registry.__main__, structlog, sys; "
        "from modyard.common.logging import configure_logging; "
        "configure_logging(service='registry', level='INFO', json=False, stream=sys.stdout); "
        "structlog.get_logger().info('started', port=1)"
    )
    assert "started" in line
    assert "port=1" in line


def test_the_cli_keeps_rich() -> None:
    # Only a service's __main__ leaves rich out: the modyard CLI imports the same libraries and
    # renders with it.
    assert (
        _python("import sys, modyard.sdk.cli; print(sys.modules.get('rich') is not None)") == "True"
    )
