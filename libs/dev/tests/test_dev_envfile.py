"""`.run/infra.env` rendering and writing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from modyard.dev import envfile
from modyard.dev.component import Report, State
from modyard.dev.infra import write_infra_env
from modyard.dev.paths import RunLayout


def test_render_keeps_order_and_plain_values_unquoted() -> None:
    text = envfile.render(
        {
            "MODYARD_DATABASE_URL": "postgresql+asyncpg://modyard:modyard@127.0.0.1:5432/modyard",
            "MODYARD_DOCKER_HOST": "unix:///work/main/.run/docker/docker.sock",
        }
    )
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        "MODYARD_DATABASE_URL=postgresql+asyncpg://modyard:modyard@127.0.0.1:5432/modyard",
        "MODYARD_DOCKER_HOST=unix:///work/main/.run/docker/docker.sock",
    ]


def test_values_needing_quotes_round_trip_through_dotenv(tmp_path: Path) -> None:
    values = {
        "MODYARD_A": 'has space and "quotes"',
        "MODYARD_B": "has#hash",
        "MODYARD_C": "back\\slash",
        "MODYARD_D": "",
    }
    path = tmp_path / "infra.env"
    envfile.write(path, values)
    assert dotenv_values(path) == values


def test_rejects_bad_keys() -> None:
    with pytest.raises(ValueError, match="not an environment variable name"):
        envfile.render({"lower-case": "x"})


def test_comments_keep_only_the_first_line() -> None:
    text = envfile.render({}, {"dockerd": "unavailable: boom\n    log tail"})
    assert text.endswith("# dockerd: unavailable: boom\n")


def test_write_is_owner_only_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "infra.env"
    envfile.write(path, {"MODYARD_X": "1"})
    envfile.write(path, {"MODYARD_X": "2"})
    assert dotenv_values(path) == {"MODYARD_X": "2"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_name("infra.env.tmp").exists()


def test_infra_env_collects_usable_components(tmp_path: Path) -> None:
    reports = [
        Report("PostgreSQL", "u", State.started, env={"MODYARD_DATABASE_URL": "pg"}),
        Report("RabbitMQ", "u", State.external, env={"MODYARD_AMQP_URL": "amqp"}),
        Report("dockerd", "u", State.unavailable, "dockerd needs root", required=False),
    ]
    layout = RunLayout(tmp_path)
    write_infra_env(layout, reports)
    assert dotenv_values(layout.infra_env) == {
        "MODYARD_DATABASE_URL": "pg",
        "MODYARD_AMQP_URL": "amqp",
    }
    assert "# dockerd: unavailable: dockerd needs root" in layout.infra_env.read_text()


def test_report_error_semantics() -> None:
    assert Report("x", "u", State.failed).is_error
    assert Report("x", "u", State.unavailable, required=True).is_error
    assert not Report("x", "u", State.unavailable, required=False).is_error
    assert not Report("x", "u", State.external).is_error
