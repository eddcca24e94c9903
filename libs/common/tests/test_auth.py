from __future__ import annotations

import time

import jwt
import pytest
from pydantic import SecretStr

from modyard.common.auth import Role, TokenError, VerifiedTokens, decode_token, mint_token
from modyard.common.settings import CommonSettings
from modyard.common.tokens import Denials


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
    base = {
        "sub": "x",
        "iss": "modyard",
        "aud": "modyard",
        "iat": now,
        "exp": now + 60,
        "jti": "forged",
    }
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


def test_every_minted_token_has_an_id_and_a_token_without_one_is_refused(
    settings: CommonSettings,
) -> None:
    first = decode_token(settings, mint_token(settings, subject="u", roles=["user"]))
    second = decode_token(settings, mint_token(settings, subject="u", roles=["user"]))
    assert first.token_id
    assert first.token_id != second.token_id
    without = jwt.encode(
        {
            "sub": "x",
            "iss": "modyard",
            "aud": "modyard",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "roles": ["user"],
        },
        settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )
    with pytest.raises(TokenError, match="jti"):
        decode_token(settings, without)


def test_tokens_living_longer_than_the_settings_allow_are_refused_and_not_minted(
    settings: CommonSettings,
) -> None:
    now = int(time.time())
    day = 24 * 3600
    with pytest.raises(TokenError, match="MODYARD_TOKEN_MAX_TTL_SECONDS"):
        decode_token(settings, forge(settings, roles=["user"], iat=now, exp=now + day + 3600))
    # Operators and services have their own (longer) limit.
    operator = forge(settings, roles=["operator"], iat=now, exp=now + day + 3600)
    assert decode_token(settings, operator).is_operator
    with pytest.raises(TokenError, match="MODYARD_OPERATOR_TOKEN_MAX_TTL_SECONDS"):
        decode_token(settings, forge(settings, roles=["operator"], iat=now, exp=now + 8 * day))
    with pytest.raises(ValueError, match="MODYARD_TOKEN_MAX_TTL_SECONDS"):
        mint_token(settings, subject="u", roles=["user"], ttl_seconds=day + 1)
    shorter = settings.model_copy(update={"token_max_ttl_seconds": 600})
    with pytest.raises(TokenError, match="600 s"):
        decode_token(shorter, mint_token(settings, subject="u", roles=["user"]))


def test_denials_refuse_revoked_tokens_and_drop_removed_workspaces_even_when_remembered(
    settings: CommonSettings,
) -> None:
    tokens = VerifiedTokens(settings)
    revoked = mint_token(settings, subject="u", roles=["user"], workspaces=["a", "b"])
    kept = mint_token(settings, subject="u", roles=["user"], workspaces=["a", "b"])
    assert tokens.principal(revoked).workspaces == {"a", "b"}  # remembered from now on
    revoked_id = str(decode_token(settings, revoked).token_id)
    tokens.denials.replace(Denials(revoked={revoked_id: 0}, excluded={"u": frozenset({"a"})}))
    with pytest.raises(TokenError, match="revoked"):
        tokens.principal(revoked)
    assert tokens.principal(kept).workspaces == {"b"}
    assert not tokens.principal(kept).can_access_workspace("a")
    tokens.denials.replace(Denials())
    assert tokens.principal(revoked).workspaces == {"a", "b"}
