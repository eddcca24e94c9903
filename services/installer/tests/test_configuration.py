"""Configuration logic: defaults, validation, required/visibility, secrets, environment overrides."""

from __future__ import annotations

import copy
import json
import urllib.request
from typing import Any

import pytest
from structlog.testing import capture_logs

from modyard.common.errors import InvalidParam, ValidationFailed
from modyard.common.secrets import SecretValue
from modyard.installer.configuration.environment import (
    effective_config,
    env_overrides,
    env_variable,
    read_env_overrides,
)
from modyard.installer.configuration.errors import ConfigError, ConfigInvalid
from modyard.installer.configuration.layers import apply_defaults, module_defaults
from modyard.installer.configuration.secrets import (
    MASK,
    conceal,
    mask,
    merge_secrets,
    restore_masked,
    reveal,
    secret_paths,
    split_secrets,
)
from modyard.installer.configuration.validation import (
    check_spec_expressions,
    config_errors,
    validate_config,
)
from modyard.modules.examples import example_files
from modyard.modules.formats.appcell import AppCellAdapter
from modyard.modules.formats.native import NativeAdapter
from modyard.modules.formats.prismeai import PrismeAiAdapter
from modyard.modules.formats.slingr import SlingrAdapter
from modyard.modules.manifest import ConfigSpec

SECRET = "s3cr3t-hunter2"
OTHER_SECRET = "w3bh00k-secret"


def spec(
    schema: dict[str, Any] | None = None, fields: list[dict[str, Any]] | None = None
) -> ConfigSpec:
    return ConfigSpec.model_validate(
        {"schema": schema or {"type": "object"}, "fields": fields or []}
    )


def pointers(errors: list[ConfigError]) -> list[str]:
    return [error.pointer for error in errors]


@pytest.fixture(scope="module")
def slingr() -> ConfigSpec:
    return SlingrAdapter().parse(example_files("slingr-sample-complex")).config


@pytest.fixture(scope="module")
def nlu() -> ConfigSpec:
    return PrismeAiAdapter().parse(example_files("prismeai-nlu")).config


@pytest.fixture(scope="module")
def toolbox() -> ConfigSpec:
    return PrismeAiAdapter().parse(example_files("prismeai-toolbox")).config


@pytest.fixture(scope="module")
def weather() -> ConfigSpec:
    return NativeAdapter().parse(example_files("native-weather")).config


@pytest.fixture(scope="module")
def cell() -> ConfigSpec:
    return AppCellAdapter().parse(example_files("appcell-newresellerclub")).config


def slingr_config() -> dict[str, Any]:
    return {
        "email": "ops@example.com",
        "password": SECRET,
        "syncAutomatically": True,
        "syncInterval": "30",
        "multiSwitcher": ["warn"],
        "multiCustomDropDown": ["${STATE}", "NY"],
        "region": "eu",
        "advanced": {"apiUrl": "${API_URL}", "webhookSecret": OTHER_SECRET},
    }


#: A group that is a list (a Slingr fieldsGroup with multiplicity many), with a secret inside.
SERVERS = spec(
    fields=[
        {
            "name": "servers",
            "type": "fieldsGroup",
            "multiple": True,
            "fields": [
                {"name": "host", "type": "text", "required": True},
                {"name": "port", "type": "number", "default": 22},
                {"name": "password", "type": "password"},
            ],
        },
        {"name": "tokens", "type": "password", "multiple": True},
    ]
)


# --- secret paths ---------------------------------------------------------------------------------


def test_secret_paths_of_the_example_modules(
    slingr: ConfigSpec, nlu: ConfigSpec, toolbox: ConfigSpec, weather: ConfigSpec, cell: ConfigSpec
) -> None:
    assert secret_paths(slingr) == {("password",), ("advanced", "webhookSecret")}
    assert secret_paths(nlu) == {("API_KEY",)}
    assert secret_paths(toolbox) == frozenset()
    assert secret_paths(weather) == {("apiKey",)}
    assert secret_paths(cell) == {("password",), ("Api key",)}


def test_secrets_are_found_by_field_schema_and_name() -> None:
    found = secret_paths(
        spec(
            schema={
                "type": "object",
                "properties": {
                    "writeOnlyOne": {"type": "string", "writeOnly": True},
                    "prismeSecret": {"type": "string", "secret": True},
                    "API_KEY": {"type": "string"},
                    "accessToken": {"type": "string"},
                    "tokenUrl": {"type": "string"},
                    "passwordPolicy": {"type": "string"},
                    "maxTokens": {"type": "integer"},
                    "useToken": {"type": "boolean"},
                    "secretName": {"type": "string"},
                    "auth": {
                        "type": "object",
                        "properties": {
                            "clientSecret": {"type": "string"},
                            "clientId": {"type": "string"},
                        },
                    },
                },
            },
            fields=[
                {"name": "flagged", "type": "text", "secret": True},
                {"name": "pass", "type": "password"},
                {"name": "privateKey", "type": "text"},
                {"name": "signingToggleToken", "type": "toggle"},
            ],
        )
    )
    assert found == {
        ("writeOnlyOne",),
        ("prismeSecret",),
        ("API_KEY",),
        ("accessToken",),
        ("auth", "clientSecret"),
        ("flagged",),
        ("pass",),
        ("privateKey",),
    }


def test_secrets_inside_a_multiple_group_are_named_by_field_names() -> None:
    assert secret_paths(SERVERS) == {("servers", "password"), ("tokens",)}


def test_a_secret_group_is_secret_as_a_whole() -> None:
    found = secret_paths(
        spec(
            schema={
                "type": "object",
                "properties": {
                    "credentials": {
                        "type": "object",
                        "writeOnly": True,
                        "properties": {"user": {"type": "string"}, "password": {"type": "string"}},
                    }
                },
            }
        )
    )
    assert found == {("credentials",)}


# --- defaults -------------------------------------------------------------------------------------


def test_module_defaults_of_slingr_come_from_fields_and_reach_into_groups(
    slingr: ConfigSpec,
) -> None:
    assert module_defaults(slingr) == {
        "syncAutomatically": False,
        "syncInterval": "15",
        "multiSwitcher": ["danger", "info"],
        "multiCustomDropDown": ["${TEST2}", "CA"],
        "region": "us",
        "advanced": {"apiUrl": "https://api.example.com"},
    }


def test_module_defaults_of_prismeai_come_from_config_value_but_not_for_secrets(
    nlu: ConfigSpec,
) -> None:
    defaults = module_defaults(nlu)
    assert defaults["threshold"] == 0.6
    assert defaults["model"] == {"name": "intents-base", "revision": 3}
    assert "API_KEY" not in defaults


def test_module_defaults_are_fresh_copies(slingr: ConfigSpec) -> None:
    module_defaults(slingr)["advanced"]["apiUrl"] = "changed"
    module_defaults(slingr)["multiSwitcher"].append("x")
    assert module_defaults(slingr)["advanced"] == {"apiUrl": "https://api.example.com"}
    assert module_defaults(slingr)["multiSwitcher"] == ["danger", "info"]


def test_groups_merge_member_by_member_and_everything_else_is_replaced_whole(
    nlu: ConfigSpec,
) -> None:
    merged = apply_defaults(
        nlu,
        {
            "model": {"name": "mine"},
            "warmupSentences": ["hello"],
            "someRawJSON": {"only": 1},
            "threshold": None,  # null is "not set": the default shows through
        },
    )
    assert merged["model"] == {"name": "mine", "revision": 3}
    assert merged["warmupSentences"] == ["hello"]
    assert merged["someRawJSON"] == {"only": 1}
    assert merged["threshold"] == 0.6
    assert "API_KEY" not in apply_defaults(nlu, {"API_KEY": None})  # null below nothing: absent


def test_a_group_default_lies_over_its_members_defaults() -> None:
    grouped = spec(
        schema={
            "type": "object",
            "properties": {
                "retry": {
                    "type": "object",
                    "default": {"count": 5},
                    "properties": {
                        "count": {"type": "integer", "default": 3},
                        "delay": {"type": "integer", "default": 10},
                    },
                },
                "free": {
                    "type": "object",
                    "additionalProperties": True,
                    "default": {"a": 1, "b": 2},
                },
            },
        }
    )
    assert module_defaults(grouped) == {
        "retry": {"count": 5, "delay": 10},
        "free": {"a": 1, "b": 2},
    }
    assert apply_defaults(grouped, {"free": {"a": 9}})["free"] == {"a": 9}


def test_each_element_of_a_multiple_group_gets_its_members_defaults() -> None:
    merged = apply_defaults(SERVERS, {"servers": [{"host": "a"}, {"host": "b", "port": 2222}]})
    assert merged["servers"] == [{"host": "a", "port": 22}, {"host": "b", "port": 2222}]


# --- validation -----------------------------------------------------------------------------------


def test_a_valid_configuration_is_returned_as_sent_without_defaults(slingr: ConfigSpec) -> None:
    sent = {"email": "ops@example.com", "password": SECRET}
    before = copy.deepcopy(sent)
    stored = validate_config(slingr, sent)
    assert stored == before  # defaults are applied when read, not stored
    assert stored is not sent
    assert sent == before


def test_the_full_slingr_configuration_with_placeholders_is_valid(slingr: ConfigSpec) -> None:
    assert config_errors(slingr, slingr_config()) == []


def test_every_error_is_reported_at_once_with_exact_pointers(slingr: ConfigSpec) -> None:
    sent = {
        "email": "not-an-email",
        "password": 987654321,
        "region": "mars",
        "multiSwitcher": ["danger", "${CUSTOM}", 42],  # a custom value is text
        "bogus": True,
        "advanced": {"apiUrl": "${API_URL}", "typo": 1},
    }
    with pytest.raises(ConfigInvalid) as caught:
        validate_config(slingr, sent)
    errors = caught.value.config_errors
    assert pointers(errors) == [
        "/advanced/typo",
        "/bogus",
        "/email",
        "/multiSwitcher/2",
        "/password",
        "/region",
    ]
    details = {error.pointer: error.detail for error in errors}
    assert details["/region"] == 'must be one of "us", "eu"'
    assert details["/password"] == "must be a string"
    assert details["/email"] == "must be a valid email address or a ${NAME} placeholder"
    assert details["/bogus"].startswith("is not a setting of this module; remove it")
    assert "987654321" not in json.dumps([error.model_dump() for error in errors])
    assert "987654321" not in str(caught.value)


def test_missing_required_fields_say_what_to_send(weather: ConfigSpec, slingr: ConfigSpec) -> None:
    assert config_errors(weather, {}) == [
        ConfigError(pointer="/apiKey", detail="is required; send a string")
    ]
    assert pointers(config_errors(slingr, {})) == ["/email", "/password"]


def test_config_invalid_is_a_422_problem_with_json_pointers(weather: ConfigSpec) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        validate_config(weather, {"units": "kelvin"})
    problem = caught.value
    assert isinstance(problem, ValidationFailed)
    body = problem.to_detail("/v1/workspaces/w/installations/x/config")
    assert body.status == 422
    assert body.type.endswith("/invalid-configuration")
    assert [error.pointer for error in body.errors or []] == ["/apiKey", "/units"]
    assert all(isinstance(error, InvalidParam) for error in body.errors or [])
    assert pointers(problem.under("/config").config_errors) == ["/config/apiKey", "/config/units"]


def test_a_configuration_that_is_not_an_object_is_one_error(weather: ConfigSpec) -> None:
    assert pointers(config_errors(weather, ["apiKey"])) == [""]  # type: ignore[arg-type]


REQUIRED_IF = spec(
    schema={
        "type": "object",
        "properties": {
            "mode": {"enum": ["default", "custom"]},
            "customUrl": {"type": "string"},
            "debug": {"type": "boolean"},
            "debugLevel": {"type": "integer"},
        },
    },
    fields=[
        {
            "name": "mode",
            "type": "dropDown",
            "options": [{"value": "default"}, {"value": "custom"}],
        },
        {"name": "customUrl", "type": "text", "required": "config.mode === 'custom'"},
        {"name": "debug", "type": "toggle"},
        {"name": "debugLevel", "type": "number", "required": "@config.debug"},
    ],
)


def test_required_if_expressions_are_evaluated_against_the_configuration() -> None:
    assert config_errors(REQUIRED_IF, {"mode": "default"}) == []
    errors = config_errors(REQUIRED_IF, {"mode": "custom", "debug": True, "customUrl": ""})
    assert errors == [
        ConfigError(
            pointer="/customUrl",
            detail="is required (required because config.mode === 'custom'); send a string",
        ),
        ConfigError(
            pointer="/debugLevel",
            detail="is required (required because @config.debug); send a whole number",
        ),
    ]


def test_required_if_uses_the_defaults_when_the_instance_is_silent(slingr: ConfigSpec) -> None:
    # syncInterval is required when syncAutomatically is on; its default "15" satisfies it.
    assert config_errors(slingr, {**slingr_config(), "syncInterval": None}) == []
    with_blank = config_errors(slingr, {**slingr_config(), "syncInterval": ""})
    assert with_blank == [
        ConfigError(
            pointer="/syncInterval",
            detail="is required (required because @config.syncAutomatically); send a number "
            'written as text (e.g. "15") or a ${NAME} placeholder',
        )
    ]


def test_a_hidden_field_is_not_required_even_when_its_condition_holds(slingr: ConfigSpec) -> None:
    # webhookSecret: visibility false, required "config.syncAutomatically && isPlaceHolder(apiUrl)".
    config = slingr_config()
    del config["advanced"]["webhookSecret"]
    assert config["syncAutomatically"] is True
    assert config["advanced"]["apiUrl"] == "${API_URL}"
    assert config_errors(slingr, config) == []


HIDDEN = spec(
    schema={
        "type": "object",
        "properties": {
            "auth": {"enum": ["none", "basic"]},
            "user": {"type": "string"},
            "basic": {
                "type": "object",
                "properties": {"password": {"type": "string", "writeOnly": True}},
                "required": ["password"],
            },
        },
        "required": ["user", "basic"],
    },
    fields=[
        {"name": "auth", "type": "dropDown", "options": [{"value": "none"}, {"value": "basic"}]},
        {"name": "user", "type": "text", "required": True, "visibility": "config.auth === 'basic'"},
        {
            "name": "basic",
            "type": "fieldsGroup",
            "visibility": "config.auth == 'basic'",
            "fields": [{"name": "password", "type": "password", "required": True}],
        },
    ],
)


def test_hidden_fields_and_groups_are_not_required_even_by_the_schema() -> None:
    assert config_errors(HIDDEN, {"auth": "none"}) == []
    assert pointers(config_errors(HIDDEN, {"auth": "basic"})) == ["/basic/password", "/user"]


def test_a_value_sent_for_a_hidden_field_is_kept_and_still_checked() -> None:
    assert validate_config(HIDDEN, {"auth": "none", "user": "kept"}) == {
        "auth": "none",
        "user": "kept",
    }
    assert config_errors(HIDDEN, {"auth": "none", "user": 5}) == [
        ConfigError(pointer="/user", detail="must be a string")
    ]


def test_members_of_a_group_see_their_siblings_and_the_root() -> None:
    grouped = spec(
        fields=[
            {"name": "enabled", "type": "toggle"},
            {
                "name": "proxy",
                "type": "fieldsGroup",
                "fields": [
                    {"name": "host", "type": "text"},
                    {"name": "port", "type": "text", "required": "config.enabled && config.host"},
                    {"name": "user", "type": "text", "required": "config.proxy.port === '8080'"},
                ],
            },
        ]
    )
    assert config_errors(grouped, {"enabled": True, "proxy": {}}) == []
    assert pointers(config_errors(grouped, {"enabled": True, "proxy": {"host": "h"}})) == [
        "/proxy/port"
    ]
    assert pointers(
        config_errors(grouped, {"enabled": False, "proxy": {"host": "h", "port": "8080"}})
    ) == ["/proxy/user"]


def test_required_members_of_an_absent_group_are_named_one_by_one() -> None:
    grouped = spec(
        schema={
            "type": "object",
            "properties": {
                "db": {
                    "type": "object",
                    "properties": {"host": {"type": "string"}, "name": {"type": "string"}},
                    "required": ["host", "name"],
                }
            },
            "required": ["db"],
        },
        fields=[
            {
                "name": "db",
                "type": "fieldsGroup",
                "fields": [
                    {"name": "host", "type": "text", "required": True},
                    {"name": "name", "type": "text", "required": True},
                ],
            }
        ],
    )
    assert pointers(config_errors(grouped, {})) == ["/db/host", "/db/name"]
    assert pointers(config_errors(grouped, {"db": {"host": "h"}})) == ["/db/name"]


def test_required_members_of_a_multiple_group_are_checked_per_element() -> None:
    errors = config_errors(SERVERS, {"servers": [{"host": "a"}, {"port": 1}, {"host": ""}]})
    assert pointers(errors) == ["/servers/1/host", "/servers/2/host"]


def test_placeholders_are_accepted_where_the_field_allows_custom_values() -> None:
    def region(allow_custom: bool) -> ConfigSpec:
        return spec(
            schema={"type": "object", "properties": {"region": {"enum": ["us", "eu"]}}},
            fields=[
                {
                    "name": "region",
                    "type": "dropDown",
                    "options": [{"value": "us"}, {"value": "eu"}],
                    "allow_custom": allow_custom,
                }
            ],
        )

    assert config_errors(region(True), {"region": "${REGION}"}) == []
    assert pointers(config_errors(region(True), {"region": "mars"})) == ["/region"]
    assert pointers(config_errors(region(False), {"region": "${REGION}"})) == ["/region"]


def test_unknown_keys_follow_the_schema(nlu: ConfigSpec) -> None:
    # someRawJSON says additionalProperties: true; model declares its members and is closed.
    assert config_errors(nlu, {"someRawJSON": {"anything": [1, {"x": 2}]}}) == []
    assert pointers(config_errors(nlu, {"model": {"name": "m", "extra": 1}, "nope": 1})) == [
        "/model/extra",
        "/nope",
    ]
    open_schema = spec(
        schema={
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": True,
        }
    )
    assert config_errors(open_schema, {"a": "x", "b": 1}) == []
    closed_schema = spec(
        schema={
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": False,
        }
    )
    assert config_errors(closed_schema, {"a": "x", "b": 1, "c/d": 2}) == [
        ConfigError(pointer="/b", detail="is not a setting of this module; remove it"),
        ConfigError(pointer="/c~1d", detail="is not a setting of this module; remove it"),
    ]
    assert config_errors(spec(), {"whatever": 1}) == []  # a module that declares nothing


def test_fields_alone_declare_the_known_keys() -> None:
    fields_only = spec(fields=[{"name": "a", "type": "text"}])
    assert pointers(config_errors(fields_only, {"a": "x", "b": "y"})) == ["/b"]


def test_overrides_count_for_required_settings(weather: ConfigSpec) -> None:
    assert pointers(config_errors(weather, {})) == ["/apiKey"]
    assert config_errors(weather, {}, overrides={"apiKey": SECRET}) == []
    assert validate_config(weather, {}, overrides={"apiKey": SECRET}) == {}


def test_the_schema_dialect_follows_dollar_schema() -> None:
    draft4 = spec(
        schema={
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "properties": {"n": {"type": "number", "minimum": 5, "exclusiveMinimum": True}},
        }
    )
    assert pointers(config_errors(draft4, {"n": 5})) == ["/n"]
    assert config_errors(draft4, {"n": 6}) == []


def test_a_broken_module_schema_is_reported_not_raised() -> None:
    broken = spec(schema={"type": "object", "properties": {"n": {"type": "numbr"}}})
    [error] = config_errors(broken, {"n": 1})
    assert error.pointer == ""
    assert "module's configuration schema is invalid" in error.detail


def test_remote_refs_are_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the installer must not fetch a module's $ref")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    remote = spec(
        schema={
            "type": "object",
            "properties": {
                "a": {"$ref": "https://schemas.example.com/a.json"},
                "b": {"$ref": "#/$defs/number"},
            },
            "$defs": {"number": {"type": "number"}},
        }
    )
    # The schema is refused whole, before any value is looked at: the module is unconfigurable
    # until its publisher copies the schema under $defs (as the runtime refuses its flows).
    for values in ({"b": "x"}, {"a": 1}, {}):
        [error] = config_errors(remote, values)
        assert error.pointer == ""
        assert "/properties/a/$ref" in error.detail
        assert "https://schemas.example.com/a.json" in error.detail
    local = spec(schema={**remote.json_schema, "properties": {"b": {"$ref": "#/$defs/number"}}})
    assert config_errors(local, {"b": "x"}) == [
        ConfigError(pointer="/b", detail="must be a number")
    ]


def test_invalid_conditions_of_a_module_are_reported_at_the_field() -> None:
    broken = spec(
        fields=[
            {"name": "a", "type": "text", "required": "__import__('os')"},
            {
                "name": "g",
                "type": "fieldsGroup",
                "fields": [{"name": "b", "type": "text", "visibility": "config.a;"}],
            },
        ]
    )
    errors = config_errors(broken, {})
    assert pointers(errors) == ["/a", "/g/b"]
    assert all("the module's publisher must fix it" in error.detail for error in errors)
    assert pointers(check_spec_expressions(broken)) == [
        "/fields/0/required",
        "/fields/1/fields/0/visibility",
    ]


def test_the_example_modules_have_valid_conditions(slingr: ConfigSpec) -> None:
    assert check_spec_expressions(slingr) == []


# --- masking and storage of secrets ---------------------------------------------------------------


def test_mask_hides_every_secret_and_keeps_the_rest(slingr: ConfigSpec) -> None:
    config = slingr_config()
    before = copy.deepcopy(config)
    masked = mask(config, secret_paths(slingr))
    assert masked["password"] == MASK
    assert masked["advanced"] == {"apiUrl": "${API_URL}", "webhookSecret": MASK}
    assert {k: v for k, v in masked.items() if k not in ("password", "advanced")} == {
        k: v for k, v in config.items() if k not in ("password", "advanced")
    }
    assert config == before
    text = json.dumps(masked)
    assert SECRET not in text
    assert OTHER_SECRET not in text


def test_mask_hides_each_element_of_multiple_secrets_and_secrets_in_list_groups() -> None:
    config = {
        "servers": [{"host": "a", "password": SECRET}, {"host": "b", "password": None}],
        "tokens": [SECRET, OTHER_SECRET],
    }
    assert mask(config, secret_paths(SERVERS)) == {
        "servers": [{"host": "a", "password": MASK}, {"host": "b", "password": None}],
        "tokens": [MASK, MASK],
    }


def test_mask_hides_secret_objects_whole() -> None:
    masked = mask({"credentials": {"user": "u", "password": SECRET}}, frozenset({("credentials",)}))
    assert masked == {"credentials": MASK}


def test_split_and_merge_round_trip(slingr: ConfigSpec) -> None:
    config = slingr_config()
    plain, secrets = split_secrets(config, secret_paths(slingr))
    assert secrets == {"password": SECRET, "advanced": {"webhookSecret": OTHER_SECRET}}
    assert SECRET not in json.dumps(plain)
    assert OTHER_SECRET not in json.dumps(plain)
    assert plain["advanced"] == {"apiUrl": "${API_URL}"}
    assert merge_secrets(plain, secrets) == config


def test_split_and_merge_round_trip_through_lists() -> None:
    config = {
        "servers": [
            {"host": "a", "password": SECRET},
            {"host": "b"},
            {"host": "c", "password": "p"},
        ],
        "tokens": [SECRET],
    }
    plain, secrets = split_secrets(config, secret_paths(SERVERS))
    assert plain == {"servers": [{"host": "a"}, {"host": "b"}, {"host": "c"}]}
    assert secrets == {
        "servers": [{"password": SECRET}, {}, {"password": "p"}],
        "tokens": [SECRET],
    }
    assert merge_secrets(plain, secrets) == config


def test_split_of_a_configuration_without_secrets_gives_no_secrets(toolbox: ConfigSpec) -> None:
    assert split_secrets({"API_URL": "u"}, secret_paths(toolbox)) == ({"API_URL": "u"}, {})


def test_restore_masked_puts_back_secrets_the_client_did_not_change(slingr: ConfigSpec) -> None:
    paths = secret_paths(slingr)
    stored = slingr_config()
    edited = mask(stored, paths)
    edited["region"] = "us"
    restored = restore_masked(edited, stored, paths)
    assert restored == {**stored, "region": "us"}
    edited["password"] = "a-new-one"
    assert restore_masked(edited, stored, paths)["password"] == "a-new-one"


def test_a_mask_with_nothing_behind_it_is_dropped(weather: ConfigSpec) -> None:
    restored = restore_masked({"apiKey": MASK, "units": "metric"}, {}, secret_paths(weather))
    assert restored == {"units": "metric"}
    assert pointers(config_errors(weather, restored)) == ["/apiKey"]


def test_concealed_configurations_show_no_secret_in_repr(slingr: ConfigSpec) -> None:
    config = slingr_config()
    concealed = conceal(config, secret_paths(slingr))
    assert isinstance(concealed["password"], SecretValue)
    for text in (repr(concealed), str(concealed), f"{concealed}"):
        assert SECRET not in text
        assert OTHER_SECRET not in text
    assert reveal(concealed) == config


# --- environment overrides ------------------------------------------------------------------------


def test_env_variable_names() -> None:
    assert env_variable("crm-eu", ("apiUrl",), secret=False) == "APP_CONFIG_CRM_EU_APIURL"
    assert env_variable("crm-eu", ("advanced", "apiUrl"), secret=False) == (
        "APP_CONFIG_CRM_EU_ADVANCED_APIURL"
    )
    assert env_variable("nlu", ("Api key",), secret=True) == "APP_SECRET_NLU_API_KEY"


def test_env_values_are_parsed_by_the_settings_type(nlu: ConfigSpec, slingr: ConfigSpec) -> None:
    environ = {
        "APP_CONFIG_NLU_THRESHOLD": "0.9",
        "APP_CONFIG_NLU_WARMUPSENTENCES": '["salut", "bye"]',
        "APP_CONFIG_NLU_LANGUAGE": "en",
        "APP_CONFIG_NLU_API_URL": '"quoted"',  # a string setting takes the text as it is
        "APP_CONFIG_NLU_SOMERAWJSON": '{"a": [1, true]}',
        "APP_SECRET_NLU_API_KEY": SECRET,
    }
    assert env_overrides("nlu", nlu, environ) == {
        "threshold": 0.9,
        "warmupSentences": ["salut", "bye"],
        "language": "en",
        "API_URL": '"quoted"',
        "someRawJSON": {"a": [1, True]},
        "API_KEY": SECRET,
    }
    slingr_env = {
        "APP_CONFIG_PKG_SYNCAUTOMATICALLY": "TRUE",
        "APP_CONFIG_PKG_SYNCINTERVAL": "30",
        "APP_CONFIG_PKG_MULTISWITCHER": '["warn"]',
    }
    assert env_overrides("pkg", slingr, slingr_env) == {
        "syncAutomatically": True,
        "syncInterval": "30",
        "multiSwitcher": ["warn"],
    }


def test_group_members_have_variables_and_win_over_the_groups_json(nlu: ConfigSpec) -> None:
    environ = {
        "APP_CONFIG_NLU_MODEL": '{"name": "from-json", "revision": 1}',
        "APP_CONFIG_NLU_MODEL_REVISION": "7",
    }
    result = read_env_overrides("nlu", nlu, environ)
    assert result.values == {"model": {"name": "from-json", "revision": 7}}
    assert result.sources == {
        "/model": "APP_CONFIG_NLU_MODEL",
        "/model/revision": "APP_CONFIG_NLU_MODEL_REVISION",
    }


def test_prismeai_spelling_of_the_variables_is_accepted(nlu: ConfigSpec) -> None:
    assert env_overrides("nlu", nlu, {"APP_CONFIG_nlu_API_URL": "https://nlu.internal"}) == {
        "API_URL": "https://nlu.internal"
    }


def test_spellings_that_disagree_are_ignored_with_a_note(toolbox: ConfigSpec) -> None:
    result = read_env_overrides(
        "toolbox",
        toolbox,
        {"APP_CONFIG_toolbox_API_URL": "https://a", "APP_CONFIG_Toolbox_API_URL": "https://b"},
    )
    assert result.values == {}
    assert [note.pointer for note in result.notes] == ["/API_URL"]
    same = {"APP_CONFIG_toolbox_API_URL": "https://a", "APP_CONFIG_TOOLBOX_API_URL": "https://b"}
    assert env_overrides("toolbox", toolbox, same) == {"API_URL": "https://b"}  # canonical wins


def test_a_secret_is_read_only_from_app_secret_variables(nlu: ConfigSpec) -> None:
    result = read_env_overrides("nlu", nlu, {"APP_CONFIG_NLU_API_KEY": SECRET})
    assert result.values == {}
    [note] = result.notes
    assert note.variable == "APP_CONFIG_NLU_API_KEY"
    assert "APP_SECRET_NLU_API_KEY" in note.reason
    assert SECRET not in repr(result.notes)


def test_a_plain_setting_is_not_read_from_app_secret_variables(toolbox: ConfigSpec) -> None:
    result = read_env_overrides("toolbox", toolbox, {"APP_SECRET_TOOLBOX_API_URL": "https://x"})
    assert result.values == {}
    assert [note.variable for note in result.notes] == ["APP_SECRET_TOOLBOX_API_URL"]


def test_a_groups_json_cannot_carry_its_secret_members(slingr: ConfigSpec) -> None:
    environ = {
        "APP_CONFIG_PKG_ADVANCED": json.dumps({"apiUrl": "https://x", "webhookSecret": SECRET}),
        "APP_SECRET_PKG_ADVANCED_WEBHOOKSECRET": OTHER_SECRET,
    }
    result = read_env_overrides("pkg", slingr, environ)
    assert result.values == {"advanced": {"apiUrl": "https://x", "webhookSecret": OTHER_SECRET}}
    assert [note.pointer for note in result.notes] == ["/advanced"]
    assert SECRET not in repr(result.notes)


def test_values_that_do_not_parse_are_ignored_with_a_note(nlu: ConfigSpec) -> None:
    result = read_env_overrides(
        "nlu", nlu, {"APP_CONFIG_NLU_THRESHOLD": "high", "APP_CONFIG_NLU_MODEL": "[1]"}
    )
    assert result.values == {}
    assert sorted(note.pointer for note in result.notes) == ["/model", "/threshold"]


def test_ignored_variables_are_logged_by_name_never_by_value(nlu: ConfigSpec) -> None:
    with capture_logs() as logs:
        values = env_overrides(
            "nlu", nlu, {"APP_CONFIG_NLU_API_KEY": SECRET, "APP_CONFIG_NLU_THRESHOLD": "x" + SECRET}
        )
    assert values == {}
    assert {entry["variable"] for entry in logs} == {
        "APP_CONFIG_NLU_API_KEY",
        "APP_CONFIG_NLU_THRESHOLD",
    }
    assert all(entry["log_level"] == "warning" for entry in logs)
    assert SECRET not in repr(logs)


def test_a_module_name_is_needed(nlu: ConfigSpec) -> None:
    with pytest.raises(ValueError, match="module name"):
        env_overrides("", nlu, {})


# --- effective configuration ----------------------------------------------------------------------


def test_precedence_is_instance_then_environment_then_defaults(nlu: ConfigSpec) -> None:
    environ = {
        "APP_CONFIG_NLU_THRESHOLD": "0.9",
        "APP_CONFIG_NLU_LANGUAGE": "en",
        "APP_CONFIG_NLU_MODEL_REVISION": "7",
        "APP_SECRET_NLU_API_KEY": SECRET,
    }
    instance = {"threshold": 0.5, "model": {"name": "mine"}, "language": None}
    assert effective_config(nlu, instance, "nlu", environ) == {
        "API_URL": "https://nlu.prisme.example/v2",  # default
        "API_KEY": SECRET,  # environment
        "language": "en",  # environment: the instance's null is "not set"
        "threshold": 0.5,  # instance over environment
        "model": {"name": "mine", "revision": 7},  # member by member
        "warmupSentences": ["bonjour", "je voudrais résilier mon contrat"],  # default
    }


def test_environment_overrides_a_default_but_not_an_instance_value(toolbox: ConfigSpec) -> None:
    environ = {"APP_CONFIG_TOOLBOX_API_URL": "https://env"}
    assert effective_config(toolbox, {}, "toolbox", environ) == {"API_URL": "https://env"}
    assert effective_config(toolbox, {}, "toolbox", {}) == {"API_URL": "https://api.mycompany.com"}
    assert effective_config(toolbox, {"API_URL": "https://mine"}, "toolbox", environ) == {
        "API_URL": "https://mine"
    }


def test_a_modules_variables_reach_every_installation_of_it_under_their_own_values(
    weather: ConfigSpec,
) -> None:
    # The variables name the module, not an installation: installations that need their own
    # values (another key, other units) carry them in their own configuration, which wins.
    environ = {
        "APP_SECRET_WEATHER_APIKEY": "key-operator",
        "APP_CONFIG_WEATHER_UNITS": "imperial",
        "APP_SECRET_WEATHER_PARIS_APIKEY": "named-like-an-installation",
    }
    paris = effective_config(weather, {"units": "metric"}, "weather", environ)
    oslo = effective_config(weather, {}, "weather", environ)
    own = effective_config(weather, {"apiKey": "own"}, "weather", environ)
    assert paris == {"apiKey": "key-operator", "units": "metric"}
    assert oslo == {"apiKey": "key-operator", "units": "imperial"}
    assert own == {"apiKey": "own", "units": "imperial"}
    assert config_errors(weather, {}, overrides=env_overrides("weather", weather, environ)) == []
    # Another module's name (or an installation's slug) reads nothing of them.
    assert pointers(
        config_errors(weather, {}, overrides=env_overrides("weather-lyon", weather, environ))
    ) == ["/apiKey"]


def test_two_installations_of_slingr_with_different_configurations(slingr: ConfigSpec) -> None:
    first = validate_config(slingr, slingr_config())
    second = validate_config(
        slingr, {"email": "b@example.com", "password": OTHER_SECRET, "region": "us"}
    )
    assert effective_config(slingr, first, "crm-a", {})["region"] == "eu"
    assert effective_config(slingr, second, "crm-b", {})["region"] == "us"
    assert effective_config(slingr, second, "crm-b", {})["advanced"] == {
        "apiUrl": "https://api.example.com"
    }
    assert effective_config(slingr, first, "crm-a", {})["advanced"] == slingr_config()["advanced"]


def test_effective_config_does_not_modify_its_inputs(nlu: ConfigSpec) -> None:
    instance = {"model": {"name": "mine"}}
    effective = effective_config(nlu, instance, "nlu", {})
    effective["model"]["name"] = "changed"
    assert instance == {"model": {"name": "mine"}}
    assert module_defaults(nlu)["model"] == {"name": "intents-base", "revision": 3}


REDOS = spec(
    schema={
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^(a+)+$"},
            "tags": {
                "type": "object",
                "patternProperties": {"^(b+)+$": {"type": "integer"}},
                "additionalProperties": False,
            },
        },
    }
)


def test_a_module_pattern_is_matched_in_linear_time() -> None:
    # With Python's re each of these takes about 2**40 steps (hours): the test hangs, never flakes.
    assert pointers(config_errors(REDOS, {"code": "a" * 40 + "!"})) == ["/code"]
    unknown = "b" * 40 + "!"
    [error] = config_errors(REDOS, {"tags": {unknown: 1}})
    assert (error.pointer, error.detail) == (
        f"/tags/{unknown}",
        "is not a setting of this module; remove it",
    )
    assert config_errors(REDOS, {"code": "a" * 100_000, "tags": {"b" * 1000: 1}}) == []


def test_a_pattern_re2_cannot_compile_is_reported_with_its_pointer() -> None:
    lookahead = spec(
        schema={
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": "^(?=x)x$"}},
            "patternProperties": {"(a)\\1": {}},
        }
    )
    errors = config_errors(lookahead, {"code": "x"})
    assert pointers(errors) == ["", ""]
    details = " ".join(error.detail for error in errors)
    assert "/properties/code/pattern" in details
    assert "/patternProperties/(a)\\1" in details
    assert "RE2 cannot compile this pattern" in details
    assert "the module's publisher must fix it" in details
