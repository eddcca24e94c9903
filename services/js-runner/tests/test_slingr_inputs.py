"""A Slingr step's inputs arrive as the types the registry's Slingr adapter mapped from its
step.json (issue 21): the fixture step ``typed`` returns each input with its JavaScript type, run
in a real child. A value that cannot be converted fails before the step runs, not retried, and
the message names the input, the value and what it accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsrunner_env import Harness, runner_settings, running_harness
from slingr_env import add_package, step

CONFIG = {"apiUrl": "", "token": "t0ken"}


@pytest.fixture(scope="module")
async def slingr(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = runner_settings()
    async with running_harness(settings, tmp_path_factory.mktemp("slingr-inputs")) as harness:
        yield harness


async def typed(slingr: Harness, inputs: Any, **properties: Any) -> dict[str, Any]:
    module = add_package(slingr, "relay", as_name="relay-inputs")
    reply = await step(slingr, module, "typed", inputs, properties=properties, config=CONFIG)
    assert "outputs" in reply, reply
    seen: dict[str, Any] = reply["outputs"]["out"][0]
    return seen


async def refused(slingr: Harness, inputs: Any) -> dict[str, Any]:
    module = add_package(slingr, "relay", as_name="relay-inputs")
    reply = await step(slingr, module, "typed", inputs, config=CONFIG)
    assert "error" in reply, reply
    error: dict[str, Any] = reply["error"]
    assert error["retryable"] is False
    assert error["kind"] == "err_bad_option"
    return error


async def test_defaults_are_step_json_s_as_the_registry_mapped_them(slingr: Harness) -> None:
    seen = await typed(slingr, {})
    assert seen == {
        "count": {"value": 3, "type": "number"},
        "active": {"value": False, "type": "boolean"},
        # A one-element list default of a single choice is that value.
        "mode": {"value": "slow", "type": "string"},
    }


async def test_number(slingr: Harness) -> None:
    seen = await typed(slingr, {"count": "42"}, sizes=["1.5", 2])
    assert seen["count"] == {"value": 42, "type": "number"}
    assert seen["sizes"] == {"value": [1.5, 2], "type": "array"}
    error = await refused(slingr, {"count": "many"})
    assert error["message"] == (
        'step typed: input count is "many": not a number; send a number such as 42 or 1.5'
    )
    assert "not a number" in (await refused(slingr, {"count": True}))["message"]


async def test_boolean_and_toggle(slingr: Harness) -> None:
    seen = await typed(slingr, {"active": "true", "loud": "false"})
    assert seen["active"] == {"value": True, "type": "boolean"}
    assert seen["loud"] == {"value": False, "type": "boolean"}
    error = await refused(slingr, {"loud": "maybe"})
    assert (
        error["message"] == 'step typed: input loud is "maybe": not a boolean; send true or false'
    )


async def test_text(slingr: Harness) -> None:
    seen = await typed(slingr, {"label": 2000, "secret": "s3"})
    assert seen["label"] == {"value": "2000", "type": "string"}
    assert seen["secret"] == {"value": "s3", "type": "string"}
    assert "not text" in (await refused(slingr, {"label": {"a": 1}}))["message"]


async def test_date(slingr: Harness) -> None:
    seen = await typed(slingr, {"when": 0})
    assert seen["when"] == {"value": "1970-01-01T00:00:00Z", "type": "string"}
    kept = await typed(slingr, {"when": "2026-12-06T18:00:00Z"})
    assert kept["when"] == {"value": "2026-12-06T18:00:00Z", "type": "string"}
    error = await refused(slingr, {"when": "next tuesday"})
    assert 'input when is "next tuesday": not a date; send ISO 8601' in error["message"]


async def test_choice(slingr: Harness) -> None:
    seen = await typed(slingr, {"mode": ["fast"], "tone": "stormy"})
    assert seen["mode"] == {"value": "fast", "type": "string"}
    # tone allows a custom value besides its listed ones.
    assert seen["tone"] == {"value": "stormy", "type": "string"}
    error = await refused(slingr, {"mode": "medium"})
    assert error["message"] == (
        'step typed: input mode is "medium": not one of its values; send one of "slow", "fast"'
    )


async def test_json_and_object(slingr: Harness) -> None:
    seen = await typed(slingr, {"body": '[1, {"a": 2}]', "options": '{"deep": true}'})
    assert seen["body"] == {"value": [1, {"a": 2}], "type": "array"}
    assert seen["options"] == {"value": {"deep": True}, "type": "object"}
    given = await typed(slingr, {"body": {"b": 1}, "options": {"c": 2}})
    assert given["body"] == {"value": {"b": 1}, "type": "object"}
    assert "not JSON text" in (await refused(slingr, {"body": "{broken"}))["message"]
    assert "not an object value" in (await refused(slingr, {"options": "[1]"}))["message"]


async def test_key_value(slingr: Harness) -> None:
    seen = await typed(slingr, {"headers": "accept=json, x-try=2"})
    assert seen["headers"] == {"value": {"accept": "json", "x-try": "2"}, "type": "object"}
    assert "not key=value pairs" in (await refused(slingr, {"headers": "oops"}))["message"]


async def test_a_required_input_without_a_value_is_refused(slingr: Harness) -> None:
    module = add_package(slingr, "relay", as_name="relay-inputs")
    reply = await step(slingr, module, "callApi", {}, config=CONFIG)
    assert reply["error"]["retryable"] is False
    assert reply["error"]["message"] == (
        "step callApi: input message is required and has no value; "
        "set it on the node or send it in the message"
    )
