from __future__ import annotations

import time

import jwt
import pytest
from pydantic import SecretStr

from modyard.common.auth import Role, TokenError, decode_token, mint_token
from modyard.common.settings import CommonSettings


@pytest.fixture
def settings() -> CommonSettings:
    return CommonSettings(jwt_secret=SecretStr("unit-test-secret-that-is-long-enough-0123"))


def test_minted_token_round_trips(settings: CommonSettings) -> None:
    token = mint_token(settings, subject="ops", roles=["operator"], workspaces=["w1", "w2"])
    principal = decode_token(settings, token)
    assert principal.subject == "ops"
    assert principal.roles == {Role.operator}
    assert principal.workspaces == {"w1", "w2"}
    assert principal.is_operator


def test_user_reaches_only_its_workspaces(settings: CommonSettings) -> None:
    principal = decode_token(
        settings, mint_token(settings, subject="u", roles=["user"], workspaces=["w1"])
    )
    assert principal.can_access_workspace("w1")
    assert not principal.can_access_workspace("w2")


def test_token_signed_with_another_secret_is_refused(settings: CommonSettings) -> None:
    other = CommonSettings(jwt_secret=SecretStr("another-secret-also-long-enough-0123456"))
    with pytest.raises(TokenError, match="not valid"):
        decode_token(settings, mint_token(other, subject="x", roles=["operator"]))


def forge(settings: CommonSettings, **claims: object) -> str:
    """A token with the given claims over sensible valid ones, signed with our secret."""
    now = int(time.time())
    base = {"sub": "x", "iss": "modyard", "aud": "modyard", "iat": now, "exp": now + 60}
    return jwt.encode({**base, **claims}, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def test_expired_token_is_refused(settings: CommonSettings) -> None:
    now = int(time.time())
    token = forge(settings, iat=now - 3600, exp=now - 600, roles=["user"])
    with pytest.raises(TokenError, match="expired"):
        decode_token(settings, token)


def test_unknown_role_is_refused(settings: CommonSettings) -> None:
    with pytest.raises(TokenError, match="unknown role"):
        decode_token(settings, forge(settings, roles=["root"]))


def test_token_without_roles_is_refused(settings: CommonSettings) -> None:
    with pytest.raises(TokenError, match="role"):
        decode_token(settings, forge(settings, roles=[]))


def test_alg_none_is_refused(settings: CommonSettings) -> None:
    now = int(time.time())
    claims = {
        "sub": "x",
        "iss": "modyard",
        "aud": "modyard",
        "iat": now,
        "exp": now + 60,
        "roles": ["operator"],
    }
    token = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(TokenError):
        decode_token(settings, token)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject": "", "roles": ["user"]}, "subject"),
        ({"subject": "x", "roles": []}, "role"),
        ({"subject": "x", "roles": ["user"], "ttl_seconds": 0}, "ttl"),
    ],
)
def test_mint_rejects_bad_arguments(
    settings: CommonSettings, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mint_token(settings, **kwargs)  # type: ignore[arg-type]
