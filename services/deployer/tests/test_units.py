"""Pure logic: image references and CrashLoopBackOff delays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modyard.deployer.backoff import BackoffPolicy
from modyard.deployer.image_ref import InvalidImageReference, parse_image_reference


def test_image_references_are_parsed_into_host_path_tag_and_digest() -> None:
    ref = parse_image_reference("registry.gitlab.com/oneentry-skd-js/test-module:prod-v1.0.10")
    assert (ref.host, ref.path, ref.tag, ref.digest) == (
        "registry.gitlab.com",
        "oneentry-skd-js/test-module",
        "prod-v1.0.10",
        None,
    )
    with_port = parse_image_reference("127.0.0.1:5000/team/mod:1")
    assert (with_port.host, with_port.path, with_port.tag) == ("127.0.0.1:5000", "team/mod", "1")
    digest = "sha256:" + "a" * 64
    pinned = parse_image_reference(f"localhost:5000/a/b@{digest}")
    assert (pinned.tag, pinned.digest) == (None, digest)
    assert str(pinned) == f"localhost:5000/a/b@{digest}"
    assert str(with_port.with_tag("2")) == "127.0.0.1:5000/team/mod:2"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("user/repo:1", "no registry host"),
        ("repo", "no registry host"),
        ("registry.example.com/", "no repository path"),
        ("registry.example.com/Upper/repo:1", "path component"),
        ("registry.example.com/a//b:1", "path component"),
        ("registry.example.com/a/b:-bad", "tag"),
        ("registry.example.com/a/b@sha256:xyz", "digest"),
        ("registry.example.com/a b:1", "white space"),
        ("-bad-.example.com/a/b:1", "host"),
        ("", "empty"),
    ],
)
def test_bad_image_references_say_what_to_fix(text: str, words: str) -> None:
    with pytest.raises(InvalidImageReference, match=words):
        parse_image_reference(text)


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    policy = BackoffPolicy(base_seconds=10, cap_seconds=300, reset_after_seconds=600)
    assert [policy.delay(step).total_seconds() for step in range(1, 8)] == [
        10,
        20,
        40,
        80,
        160,
        300,
        300,
    ]
    assert policy.delay(10_000).total_seconds() == 300


def test_backoff_streak_resets_after_a_long_enough_run() -> None:
    policy = BackoffPolicy(base_seconds=10, cap_seconds=300, reset_after_seconds=600)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.next_step(4, start, start + timedelta(seconds=30)) == 5
    assert policy.next_step(4, start, start + timedelta(minutes=10)) == 1
    assert policy.next_step(0, None, None) == 1


def test_registry_checks_use_plain_http_only_on_loopback() -> None:
    from modyard.deployer.registry_check import registry_base_url

    assert registry_base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_base_url("localhost:5000") == "http://localhost:5000"
    assert registry_base_url("[::1]:5000") == "http://[::1]:5000"
    assert registry_base_url("registry.gitlab.com") == "https://registry.gitlab.com"
    assert registry_base_url("10.0.0.8:5000") == "https://10.0.0.8:5000"


def test_host_networking_is_refused_in_production() -> None:
    from pydantic import ValidationError

    from modyard.deployer.settings import DeployerSettings

    with pytest.raises(ValidationError, match="MODYARD_DEPLOYER_HOST_NETWORK"):
        DeployerSettings(
            environment="production",
            host_network=True,
            secret_keys="ZmVybmV0LWtleS1mb3ItdGVzdHMtb25seS0zMi1ieXQ=",
            jwt_secret="a-production-secret-that-is-long-enough-for-the-check",
            database_url="postgresql+asyncpg://prod:s3cret-db@db.internal:5432/modyard",
            amqp_url="amqp://prod:s3cret-mq@mq.internal:5672/modyard",
            image_registry_password="s3cret-registry",
        )
    assert DeployerSettings(host_network=True).host_network  # development: allowed


def test_allowed_registries_default_to_the_platform_registry_and_parse_from_a_list() -> None:
    from modyard.deployer.settings import DeployerSettings

    default = DeployerSettings(image_registry_url="http://user:pw@Registry.Local:5000")
    assert default.registries == ["registry.local:5000"]
    configured = DeployerSettings(
        allowed_registries="registry.example.com, https://ghcr.io/",  # type: ignore[arg-type]
        allowed_capabilities="cap_net_bind_service,CHOWN",  # type: ignore[arg-type]
    )
    assert configured.registries == ["registry.example.com", "ghcr.io"]
    assert configured.allowed_capabilities == ["CHOWN", "NET_BIND_SERVICE"]
    with pytest.raises(ValueError, match="not a Linux capability"):
        DeployerSettings(allowed_capabilities=["NOPE"])


def test_a_declaration_narrowed_by_the_settings_is_refused_at_rollout() -> None:
    from modyard.deployer.container_policy import Declaration, InvalidDeclaration, sandbox
    from modyard.deployer.settings import DeployerSettings

    wide = DeployerSettings(allowed_capabilities=["NET_ADMIN"], allow_root=True)
    declared = Declaration(capabilities=["NET_ADMIN"], user="0")
    confined = sandbox(declared, wide)
    assert (confined.user, confined.capabilities) == ("0:0", ("NET_ADMIN",))
    assert confined.writable_paths == ("/tmp",)  # noqa: S108 - the container's tmpfs
    with pytest.raises(InvalidDeclaration, match="ALLOWED_CAPABILITIES"):
        sandbox(declared, DeployerSettings())
