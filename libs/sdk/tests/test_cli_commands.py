"""The ``modyard`` command tree: every command reachable, listed with its own help, and the root
loading none of what only API calls and module checks need (what makes start-up slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from modyard.sdk.cli import COMMANDS, app, load_command

runner = CliRunner()

#: Modules that `modyard --help` must not import: each costs tens to hundreds of milliseconds.
HEAVY = ("httpx", "pydantic", "jwt", "sqlalchemy", "modyard.modules", "modyard.sdk.client")


def test_every_listed_command_has_the_help_its_command_declares() -> None:
    for name, lazy in COMMANDS.items():
        if lazy is None:
            continue
        command = load_command(name, lazy)
        assert command.name == name
        target = getattr(sys.modules[lazy.module], lazy.attribute)
        # 'dev' is listed with the line it always had at the root, not its own app's.
        own = target.info.help if isinstance(target, typer.Typer) else command.help
        if name != "dev":
            assert " ".join(str(own).split("\n\n")[0].split()) == lazy.help, name


def test_help_lists_every_command_without_importing_clients_or_formats() -> None:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from modyard.sdk.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'], env={'COLUMNS': '200'})\n"
        "print(result.output)\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    *help_lines, loaded = done.stdout.strip().splitlines()
    assert loaded == "[]"
    listed = "\n".join(help_lines)
    for name in COMMANDS:
        assert f" {name} " in listed, name


def test_a_lazy_command_and_a_nested_group_run() -> None:
    minted = runner.invoke(
        app, ["token", "--json", "-s", "ann@acme.test"], env={"MODYARD_JWT_SECRET": "s" * 32}
    )
    assert minted.exit_code == 0, minted.output
    assert json.loads(minted.output)["subject"] == "ann@acme.test"
    members = runner.invoke(app, ["workspaces", "members", "--help"])
    assert members.exit_code == 0
    assert "add" in members.output
    assert "remove" in members.output
    assert "--install-completion" not in runner.invoke(app, ["dev", "--help"]).output
    unknown = runner.invoke(app, ["no-such-command"])
    assert unknown.exit_code == 2


LOOKALIKE = """\
name: acme.weather
version: 1.0.0
kind: connector
config:
  schema:
    type: object
    properties:
      apiKey: {type: string, writeOnly: true}
  fields:
    - {name: apiKey, type: password, secret: true}
components:
  - name: acme.weather.forecast.GetForecast
    role: action
    in_ports: [{name: in}]
    out_ports: [{name: out, schema: {type: object}}]
    executor: {type: amqp}
"""


def test_pack_json_prints_the_canonical_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "weather"
    folder.mkdir()
    (folder / "modyard.yaml").write_text(LOOKALIKE)
    target = tmp_path / "w.zip"
    result = runner.invoke(app, ["pack", str(folder), "-o", str(target), "--json"])
    assert result.exit_code == 0, result.output
    packed = json.loads(result.output)
    assert (packed["name"], packed["version"], packed["bytes"]) == (
        "acme.weather",
        "1.0.0",
        target.stat().st_size,
    )
    manifest = packed["manifest"]
    assert (manifest["name"], manifest["format"], manifest["kind"]) == (
        "acme.weather",
        "native",
        "connector",
    )
    [component] = manifest["components"]
    assert component["name"] == "acme.weather.forecast.GetForecast"
    assert component["role"] == "action"
    assert [port["name"] for port in component["out_ports"]] == ["out"]
    assert [(f["name"], f["secret"]) for f in manifest["config"]["fields"]] == [("apiKey", True)]


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (("name: acme.weather", "name: Acme Weather!"), "modyard.yaml/name"),
        (("role: action", "role: sometimes"), "modyard.yaml/components/0/role"),
    ],
)
def test_pack_json_of_a_defective_module_names_the_file_and_pointer(
    tmp_path: Path, edit: tuple[str, str], where: str
) -> None:
    folder = tmp_path / "weather"
    folder.mkdir()
    (folder / "modyard.yaml").write_text(LOOKALIKE.replace(*edit))
    result = runner.invoke(app, ["pack", str(folder), "-o", str(tmp_path / "w.zip"), "--json"])
    assert result.exit_code == 1
    assert where in " ".join(result.output.split())
    assert not (tmp_path / "w.zip").exists()


@pytest.mark.parametrize("name", ["cell", "token"])
def test_a_command_group_with_one_sub_command_keeps_it(name: str) -> None:
    # `modyard cell run` has one sub-command; loading it lazily once collapsed the group into it.
    lazy = COMMANDS[name]
    assert lazy is not None
    command = load_command(name, lazy)
    target = getattr(sys.modules[lazy.module], lazy.attribute)
    sub_commands = {
        info.name or (info.callback.__name__ if info.callback else "")
        for info in target.registered_commands
    }

    assert set(getattr(command, "commands", {})) >= sub_commands


def test_modyard_cell_run_is_reachable() -> None:
    result = runner.invoke(app, ["cell", "run", "--help"])

    assert result.exit_code == 0, result.output
    assert "modyard cell run" in result.output
