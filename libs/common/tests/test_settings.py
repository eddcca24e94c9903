from __future__ import annotations

import pytest

from modyard.common.bus.outbox import retry_delay
from modyard.common.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": "MODYARD_DEMO_"}
    service_name = "demo-svc"
    default_port = 8999


def test_defaults_follow_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # no .env / .run/infra.env here
    settings = DemoSettings()
    assert settings.port == 8999
    assert settings.db_schema == "demo_svc"
    assert settings.source == "/modyard/demo-svc"


def test_service_prefix_wins_over_shared_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    monkeypatch.setenv("MODYARD_DATABASE_URL", "postgresql+asyncpg://shared@h/db")
    monkeypatch.setenv("MODYARD_AMQP_URL", "amqp://shared@h/")
    monkeypatch.setenv("MODYARD_DEMO_DATABASE_URL", "postgresql+asyncpg://own@h/db")
    settings = DemoSettings()
    assert settings.database_url == "postgresql+asyncpg://own@h/db"
    assert settings.amqp_url == "amqp://shared@h/"


def test_settings_are_read_from_run_infra_env(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / ".run").mkdir()
    (root / ".run" / "infra.env").write_text(
        "MODYARD_AMQP_URL=amqp://from-file@h/\nMODYARD_DEMO_PORT=7777\n"
    )
    monkeypatch.chdir(root)
    settings = DemoSettings()
    assert settings.amqp_url == "amqp://from-file@h/"
    assert settings.port == 7777


def test_outbox_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n).total_seconds() for n in range(1, 30)]
    assert delays[:3] == [2, 4, 8]
    assert delays == sorted(delays)
    assert max(delays) == 300


def test_production_refuses_the_development_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    monkeypatch.setenv("MODYARD_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="MODYARD_JWT_SECRET"):
        DemoSettings()
    monkeypatch.setenv("MODYARD_JWT_SECRET", "x" * 40)
    assert DemoSettings().environment == "production"
