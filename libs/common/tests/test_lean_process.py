"""A service process leaves rich and pygments out (modyard.common.lean_process), and its command
line, its logs and its errors still work without them; it compiles third-party modules without
their docstrings (modyard.common.library_bytecode) and serves the same OpenAPI."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from modyard.testing.services import free_port, service_process

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


@pytest.mark.parametrize("package", PACKAGES)
def test_a_service_process_serves_the_same_openapi_without_library_docstrings(
    package: str,
) -> None:
    # The third-party modules it imports are compiled at level 2 (modyard.common.library_bytecode);
    # its OpenAPI descriptions come from modyard's own docstrings, which it keeps.
    lean = _python(
        f"import sys, json, modyard.{package}.__main__, modyard.{package}.app as app, sqlalchemy.orm; "
        "print(type(sqlalchemy.__spec__.loader).__name__, sqlalchemy.orm.Session.__doc__); "
        "print(json.dumps(app.create_app().openapi(), sort_keys=True))"
    )
    loader_and_doc, _, openapi = lean.partition("\n")
    assert loader_and_doc == "LibraryLoader None"
    app = importlib.import_module(f"modyard.{package}.app")
    assert json.loads(openapi) == app.create_app().openapi()


def test_only_third_party_modules_lose_their_docstrings_and_asserts(tmp_path: Path) -> None:
    code = (
        "import sys, modyard.registry.__main__, email.message, sqlalchemy.orm, fastapi\n"
        "import modyard.common.lean_process as lean\n"
        "from sqlalchemy.util import langhelpers\n"
        # stdlib and modyard keep theirs; SQLAlchemy's and FastAPI's are gone.
        "print(email.message.Message.__doc__ is not None, lean.__doc__ is not None,\n"
        "      sqlalchemy.orm.Session.__doc__, fastapi.FastAPI.__doc__)\n"
    )
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(tmp_path),
    }
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert run.stdout.strip() == "True True None None"
    # Its cache is CPython's for level 2: a process without the hook, reading the same cache,
    # still gets the libraries' docstrings.
    assert sorted(tmp_path.rglob("session.cpython-311.opt-2.pyc"))
    plain = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlalchemy.orm; print(bool(sqlalchemy.orm.Session.__doc__))",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert plain.stdout.strip() == "True"


def test_a_served_app_loads_no_websocket_library_and_answers_an_upgrade_as_http() -> None:
    # run_server, as every service serves: uvicorn without a WebSocket protocol (no modyard route
    # is a WebSocket), so neither websockets nor uvicorn's WebSocket protocols are imported.
    port = free_port()
    code = (
        "import sys\n"
        "from fastapi import FastAPI\n"
        "from modyard.common.service_cli import run_server\n"
        "from modyard.common.settings import ServiceSettings\n"
        "app = FastAPI()\n"
        "@app.get('/loaded')\n"
        "def loaded() -> list[str]:\n"
        "    return sorted(name for name, module in sys.modules.items() if module is not None\n"
        "        and (name.split('.')[0] in ('websockets', 'wsproto')\n"
        "             or name.startswith('uvicorn.protocols.websockets')))\n"
        f"run_server(app, ServiceSettings(host='127.0.0.1', port={port}))\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):
            try:
                loaded = httpx.get(f"http://127.0.0.1:{port}/loaded", timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    raise AssertionError("the server exited") from None
                time.sleep(0.1)
        else:
            raise AssertionError("the server never answered")
        assert loaded.status_code == 200
        assert loaded.json() == []
        upgrade = httpx.get(
            f"http://127.0.0.1:{port}/loaded",
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
            timeout=5,
        )
        # Served as the plain GET it also is: no switch of protocols, no 5xx.
        assert upgrade.status_code == 200
        assert upgrade.json() == []
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_the_backoffice_imports_no_database_or_broker_layer() -> None:
    # It owns no tables and no queue: neither its app nor the shared serving path (service_cli,
    # errors, the version) pulls in the service app factory's database and broker layers.
    loaded = _python(
        "import sys, modyard.backoffice.__main__, modyard.backoffice.app as app; app.create_app(); "
        "import modyard.common.service_cli; "
        "print(sorted({name.split('.')[0] if not name.startswith('modyard.') else "
        "'.'.join(name.split('.')[:3]) for name in sys.modules if sys.modules[name] is not None "
        "and (name.split('.')[0] in ('sqlalchemy', 'asyncpg', 'aio_pika', 'aiormq', 'tenacity') "
        "or name.startswith(('modyard.common.db', 'modyard.common.bus', "
        "'modyard.common.app_factory', 'modyard.cell')))}))"
    )
    assert loaded == "[]"


async def test_a_started_backoffice_maps_no_database_or_websocket_extension() -> None:
    # The process as it serves (its lifespan run, ready): the C extensions SQLAlchemy, asyncpg and
    # websockets bring along are not in its memory map; pydantic-core's is (the check reads the
    # right process).
    async with service_process("backoffice", {"MODYARD_LOG_LEVEL": "WARNING"}) as process:
        maps = Path(f"/proc/{process.process.pid}/maps").read_text()  # noqa: ASYNC240 - tiny
    assert "/pydantic_core/" in maps
    for package in ("sqlalchemy", "asyncpg", "websockets"):
        assert f"/{package}/" not in maps
