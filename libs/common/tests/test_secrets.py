"""SecretBox (MultiFernet with rotation) and SecretValue: round trips, rotation, errors, no leaks."""

from __future__ import annotations

import copy
import logging
import pickle
import traceback
from typing import Any, ClassVar

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from modyard.common.secrets import InvalidSecretKey, SecretBox, SecretUnreadable, SecretValue
from modyard.common.settings import DEVELOPMENT_SECRET_KEY, Environment, SecretKeysSettings

PLAINTEXT = "hunter2-very-secret"


@pytest.fixture
def old_key() -> str:
    return SecretBox.generate_key()


@pytest.fixture
def new_key() -> str:
    return SecretBox.generate_key()


@pytest.mark.parametrize(
    "value",
    [
        {"apiKey": PLAINTEXT, "advanced": {"webhookSecret": "w"}},
        [PLAINTEXT, "other"],
        PLAINTEXT,
        "déjà vu ✓",
        42,
        None,
        {},
    ],
)
def test_json_round_trip(value: Any) -> None:
    box = SecretBox([SecretBox.generate_key()])
    token = box.encrypt_json(value)
    assert box.decrypt_json(token) == value


def test_tokens_do_not_contain_the_plaintext() -> None:
    box = SecretBox([SecretBox.generate_key()])
    token = box.encrypt_json({"apiKey": PLAINTEXT})
    assert PLAINTEXT not in token
    assert box.encrypt_json(PLAINTEXT) != box.encrypt_json(PLAINTEXT)  # random IV each time


def test_secret_values_are_unwrapped_when_encrypted() -> None:
    box = SecretBox([SecretBox.generate_key()])
    token = box.encrypt_json({"a": SecretValue(PLAINTEXT), "b": SecretStr("s")})
    assert box.decrypt_json(token) == {"a": PLAINTEXT, "b": "s"}


def test_values_that_are_not_json_are_refused() -> None:
    box = SecretBox([SecretBox.generate_key()])
    with pytest.raises(TypeError, match="not a JSON value"):
        box.encrypt_json({"when": object()})


def test_rotation_reads_old_tokens_and_writes_with_the_first_key(
    old_key: str, new_key: str
) -> None:
    before = SecretBox([old_key])
    old_token = before.encrypt_json({"apiKey": PLAINTEXT})

    after = SecretBox.from_setting(f"{new_key},{old_key}")
    assert after.decrypt_json(old_token) == {"apiKey": PLAINTEXT}
    assert after.needs_rotation(old_token)

    new_token = after.encrypt_json({"apiKey": PLAINTEXT})
    assert not after.needs_rotation(new_token)
    assert SecretBox([new_key]).decrypt_json(new_token) == {"apiKey": PLAINTEXT}
    with pytest.raises(SecretUnreadable):
        before.decrypt_json(new_token)  # the old key alone cannot read what the new key wrote


def test_rotate_re_encrypts_under_the_current_key(old_key: str, new_key: str) -> None:
    old_token = SecretBox([old_key]).encrypt_json([PLAINTEXT])
    rotated = SecretBox([new_key, old_key]).rotate(old_token)
    assert rotated != old_token
    # Once every token is rotated, the old key can go.
    assert SecretBox([new_key]).decrypt_json(rotated) == [PLAINTEXT]


def test_a_token_under_an_unknown_key_is_unreadable(old_key: str, new_key: str) -> None:
    token = SecretBox([old_key]).encrypt_json(PLAINTEXT)
    box = SecretBox([new_key])
    with pytest.raises(SecretUnreadable) as caught:
        box.decrypt_json(token)
    message = str(caught.value)
    assert PLAINTEXT not in message
    assert new_key not in message
    assert old_key not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__  # the InvalidToken is not shown with it
    with pytest.raises(SecretUnreadable):
        box.rotate(token)


@pytest.mark.parametrize("token", ["", "not-a-token", "é", b"\x00\x01", "gAAAAA" + "A" * 80])
def test_damaged_tokens_are_unreadable(token: str | bytes) -> None:
    with pytest.raises(SecretUnreadable):
        SecretBox([SecretBox.generate_key()]).decrypt_json(token)


def test_a_decrypted_token_that_is_not_json_is_unreadable() -> None:
    key = SecretBox.generate_key()
    token = Fernet(key.encode()).encrypt(b"\xff not json")
    with pytest.raises(SecretUnreadable, match="not the JSON"):
        SecretBox([key]).decrypt_json(token)


@pytest.mark.parametrize(
    "keys",
    [
        ["short"],
        ["not base64 at all !!!"],
        ["bW9keWFyZA=="],  # base64, but 7 bytes
        ["ünïcode-key"],
    ],
)
def test_bad_keys_are_refused_without_showing_them(keys: list[str]) -> None:
    with pytest.raises(InvalidSecretKey) as caught:
        SecretBox(keys)
    assert keys[0] not in str(caught.value)
    assert "key 1 of 1" in str(caught.value)
    assert caught.value.__suppress_context__  # cryptography's error is not chained to it


def test_a_bad_key_is_reported_by_its_position(new_key: str) -> None:
    with pytest.raises(InvalidSecretKey, match="key 2 of 3"):
        SecretBox.from_setting(f"{new_key}, oops-{PLAINTEXT} ,{new_key}")


def test_no_keys_is_refused() -> None:
    with pytest.raises(InvalidSecretKey, match="no secret key"):
        SecretBox.from_setting(" , ")
    with pytest.raises(InvalidSecretKey):
        SecretBox([])


def test_a_single_string_is_not_taken_for_a_list_of_keys(new_key: str) -> None:
    with pytest.raises(TypeError, match="from_setting"):
        SecretBox(new_key)  # a str is a sequence: refused on purpose


def test_from_setting_accepts_the_settings_secret_str_and_the_development_key(new_key: str) -> None:
    box = SecretBox.from_setting(SecretStr(f" {new_key} ,{DEVELOPMENT_SECRET_KEY}"))
    assert box.key_count == 2
    legacy = SecretBox([DEVELOPMENT_SECRET_KEY]).encrypt_json("x")
    assert box.decrypt_json(legacy) == "x"


def test_generated_keys_are_distinct_fernet_keys() -> None:
    first, second = SecretBox.generate_key(), SecretBox.generate_key()
    assert first != second
    Fernet(first.encode())


def test_secret_box_repr_shows_no_key(new_key: str) -> None:
    box = SecretBox([new_key])
    assert repr(box) == "SecretBox(keys=1)"
    assert new_key not in repr(box)
    assert new_key not in str(box)


# --- SecretValue ----------------------------------------------------------------------------------


def test_secret_value_never_shows_its_value() -> None:
    secret = SecretValue(PLAINTEXT)
    shown = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret:>40}",
        format(secret, "s"),
    ]
    for text in shown:
        assert PLAINTEXT not in text
        assert "********" in text
    assert PLAINTEXT not in repr({"config": {"apiKey": secret}})
    assert PLAINTEXT not in repr([secret])
    assert secret.reveal() == PLAINTEXT


def test_secret_value_in_a_log_record_stays_masked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.secrets")
    with caplog.at_level(logging.INFO, logger="test.secrets"):
        logger.info("configured %s with %r", "crm", {"apiKey": SecretValue(PLAINTEXT)})
    assert PLAINTEXT not in caplog.text
    assert "********" in caplog.text


def test_secret_value_in_a_traceback_stays_masked() -> None:
    secret = SecretValue(PLAINTEXT)
    try:
        raise ValueError(f"cannot use {secret}")
    except ValueError:
        formatted = traceback.format_exc()
    assert PLAINTEXT not in formatted


def test_secret_value_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(SecretValue(PLAINTEXT))


def test_secret_value_copies_and_compares() -> None:
    secret = SecretValue(PLAINTEXT)
    assert copy.deepcopy({"a": secret})["a"] == secret
    assert secret == SecretValue(PLAINTEXT)
    assert secret != SecretValue("other")
    assert secret != PLAINTEXT  # a wrapper is not its plaintext
    assert len({secret, SecretValue(PLAINTEXT)}) == 1


# --- SecretKeysSettings --------------------------------------------------------------------------


class _VaultSettings(SecretKeysSettings):
    model_config = SettingsConfigDict(env_prefix="MODYARD_VAULT_", extra="ignore")
    service_name: ClassVar[str] = "vault"


#: Production settings with the operator's own passwords (the development ones are refused too).
_OWN_PASSWORDS = {
    "jwt_secret": "j" * 40,
    "database_url": "postgresql+asyncpg://app:own-db-password@db/modyard",
    "amqp_url": "amqp://app:own-mq-password@mq/modyard",
    "image_registry_password": "own-registry-password",
}


def test_production_refuses_the_development_key_and_names_the_services_setting() -> None:
    with pytest.raises(ValidationError, match="MODYARD_VAULT_SECRET_KEYS must hold your own"):
        _VaultSettings(environment=Environment.production, **_OWN_PASSWORDS)
    own = SecretBox.generate_key()
    settings = _VaultSettings(environment=Environment.production, secret_keys=own, **_OWN_PASSWORDS)
    assert settings.secret_box().decrypt_json(SecretBox([own]).encrypt_json("x")) == "x"


def test_a_box_from_settings_names_their_setting_when_a_key_is_wrong() -> None:
    settings = _VaultSettings(secret_keys="not-a-fernet-key")
    with pytest.raises(InvalidSecretKey, match="MODYARD_VAULT_SECRET_KEYS"):
        settings.secret_box()
