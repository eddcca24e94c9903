from __future__ import annotations

import warnings

import pytest

from modyard.common.bus.outbox import RETRY_BACKOFF, retry_delay
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


class RenamedSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": "MODYARD_NEW_NAME_"}
    service_name = "new-name"
    former_env_prefix = "MODYARD_OLD_NAME_"


def test_a_former_prefix_is_read_with_a_warning_below_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir("/")
    monkeypatch.setenv("MODYARD_PORT", "7000")
    monkeypatch.setenv("MODYARD_OLD_NAME_PORT", "7001")
    monkeypatch.setenv("MODYARD_OLD_NAME_DB_SCHEMA", "old_schema")
    monkeypatch.setenv("MODYARD_NEW_NAME_DB_SCHEMA", "new_schema")
    with pytest.warns(FutureWarning, match="MODYARD_OLD_NAME_.*rename to MODYARD_NEW_NAME_"):
        settings = RenamedSettings()
    assert settings.port == 7001  # the former prefix beats the shared MODYARD_
    assert settings.db_schema == "new_schema"  # and the new prefix beats the former


def test_without_former_variables_nothing_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    monkeypatch.setenv("MODYARD_NEW_NAME_PORT", "7002")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RenamedSettings().port == 7002


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


def test_outbox_retry_delay_grows_and_is_capped_with_jitter_below_each_ceiling() -> None:
    ceilings = [RETRY_BACKOFF.ceiling(n) for n in range(1, 30)]
    assert ceilings[:3] == [2, 4, 8]
    assert ceilings == sorted(ceilings)
    assert max(ceilings) == 300
    for attempts, ceiling in enumerate(ceilings, start=1):
        assert 0.8 * ceiling <= retry_delay(attempts).total_seconds() <= ceiling
    assert len({retry_delay(9).total_seconds() for _ in range(50)}) > 1  # spread, not fixed


def own_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production with the operator's own passwords and secrets (nothing of development)."""
    monkeypatch.setenv("MODYARD_ENVIRONMENT", "production")
    monkeypatch.setenv("MODYARD_JWT_SECRET", "x" * 40)
    monkeypatch.setenv("MODYARD_DATABASE_URL", "postgresql+asyncpg://app:s3cret-db@db:5432/modyard")
    monkeypatch.setenv("MODYARD_AMQP_URL", "amqp://app:s3cret-mq@mq:5672/modyard")
    monkeypatch.setenv("MODYARD_IMAGE_REGISTRY_PASSWORD", "s3cret-registry")
    monkeypatch.setenv("MODYARD_EGRESS_ALLOW_LOOPBACK", "false")


def test_production_refuses_the_development_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    own_production_settings(monkeypatch)
    monkeypatch.delenv("MODYARD_JWT_SECRET")
    with pytest.raises(ValueError, match="MODYARD_JWT_SECRET"):
        DemoSettings()
    monkeypatch.setenv("MODYARD_JWT_SECRET", "x" * 40)
    assert DemoSettings().environment == "production"


@pytest.mark.parametrize(
    ("variable", "development", "named"),
    [
        (
            "MODYARD_DATABASE_URL",
            "postgresql+asyncpg://modyard:modyard@127.0.0.1:5432/modyard",
            "MODYARD_DATABASE_URL",
        ),
        (
            "MODYARD_DEMO_DATABASE_URL",
            "postgresql+asyncpg://modyard:modyard@127.0.0.1:5432/modyard",
            "MODYARD_DATABASE_URL",
        ),
        ("MODYARD_AMQP_URL", "amqp://modyard:modyard@127.0.0.1:5672/modyard", "MODYARD_AMQP_URL"),
        ("MODYARD_AMQP_URL", "amqp://127.0.0.1:5672/modyard", "MODYARD_AMQP_URL"),
        ("MODYARD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", "MODYARD_AMQP_URL"),
        ("MODYARD_IMAGE_REGISTRY_PASSWORD", "modyard", "MODYARD_IMAGE_REGISTRY_PASSWORD"),
    ],
)
def test_production_refuses_the_development_passwords_and_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, variable: str, development: str, named: str
) -> None:
    monkeypatch.chdir("/")
    own_production_settings(monkeypatch)
    assert DemoSettings().environment == "production"
    monkeypatch.setenv(variable, development)
    with pytest.raises(ValueError, match=f"{named} must") as refused:
        DemoSettings()
    assert "MODYARD_ENVIRONMENT=production" in str(refused.value)
    # The password itself is never echoed back beyond the known development one.
    assert "s3cret" not in str(refused.value)


def test_production_lists_every_development_secret_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir("/")
    for variable in ("DATABASE_URL", "AMQP_URL", "IMAGE_REGISTRY_PASSWORD", "JWT_SECRET"):
        monkeypatch.delenv(f"MODYARD_{variable}", raising=False)
    monkeypatch.setenv("MODYARD_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="MODYARD_JWT_SECRET") as refused:
        DemoSettings()
    for named in ("MODYARD_DATABASE_URL", "MODYARD_AMQP_URL", "MODYARD_IMAGE_REGISTRY_PASSWORD"):
        assert named in str(refused.value)
