"""A Slingr flow step's inputs, converted to the types the registry's Slingr adapter mapped from
its ``step.json`` (libs/modules formats/slingr.py; docs/slingr.md, "Inputs").

The inputs are step.json's defaults, then the node's properties, then the message's content. A
flow message carries JSON as it came (a webhook's form fields are text), so each value is
converted to what the step declared: ``number`` from numeric text, ``boolean``/``toggle`` from
``"true"``/``"false"``, ``date`` to ISO 8601, a choice checked against its values, ``json`` and
``object`` parsed from JSON text, ``keyValue`` from ``"a=1,b=2"``, ``multiplicity: many`` a list.
A value that cannot be converted fails the call before the step runs (not retried: the same
message fails the same way) with a message naming the input, the value and what it accepts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from modyard.jsrunner.modules import JsComponent

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off", ""})
#: step.json types the JSON Schema alone does not tell apart from text.
_DATES = frozenset({"date", "dateTime", "datetime", "time"})


class InputError(Exception):
    """An input that cannot be what its step declared (code ERR_BAD_OPTION: not retried)."""

    code = "ERR_BAD_OPTION"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def step_inputs(
    component: JsComponent, properties: Mapping[str, Any], content: Any
) -> dict[str, Any]:
    """The step's inputs (defaults ← node properties ← message content), converted."""
    schema = component.input_schema
    declared = schema.get("properties")
    fields: Mapping[str, Any] = declared if isinstance(declared, dict) else {}
    kinds = {str(f.get("name")): str(f.get("type") or "") for f in component.input_fields}
    merged: dict[str, Any] = {
        name: spec["default"]
        for name, spec in fields.items()
        if isinstance(spec, dict) and "default" in spec
    }
    merged.update(properties)
    if isinstance(content, dict):
        merged.update(content)
    try:
        converted = {
            name: convert(name, value, fields.get(name), kinds.get(name, ""))
            if name in fields and value is not None
            else value
            for name, value in merged.items()
        }
    except InputError as exc:
        raise InputError(f"step {component.name}: {exc.message}") from None
    required = schema.get("required")
    missing = [
        str(name)
        for name in (required if isinstance(required, list) else [])
        if converted.get(name) in (None, "")
    ]
    if missing:
        raise InputError(
            f"step {component.name}: input {', '.join(missing)} is required and has no value; "
            "set it on the node or send it in the message"
        )
    return converted


def convert(name: str, value: Any, schema: Any, kind: str) -> Any:
    spec: dict[str, Any] = schema if isinstance(schema, dict) else {}
    if spec.get("type") == "array":
        values = value if isinstance(value, list) else [value]
        return [convert(name, item, spec.get("items"), kind) for item in values]
    if kind in _DATES:
        return _date(name, value)
    if "enum" in spec:
        return _choice(name, value, spec["enum"], custom=False)
    choices = _any_of(spec)
    if choices is not None:
        return _choice(name, value, choices, custom=True)
    if _is_key_value(spec):
        return _key_value(name, value)
    wanted = spec.get("type")
    if wanted == "number":
        return _number(name, value)
    if wanted == "boolean":
        return _boolean(name, value)
    if wanted == "object":
        return _json(name, value, "object", (dict,))
    if isinstance(wanted, list) and "object" in wanted:  # json: an object, a list or JSON text
        return _json(name, value, "JSON", (dict, list)) if isinstance(value, str) else value
    if wanted == "string":
        return _text(name, value)
    return value


def _fail(name: str, value: Any, what: str) -> InputError:
    shown = json.dumps(value, default=str)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InputError(f"input {name} is {shown}: {what}")


def _one(value: Any) -> Any:
    # Slingr writes a single choice as a one-element list (["regular"]).
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _number(name: str, value: Any) -> int | float:
    value = _one(value)
    if isinstance(value, bool):
        raise _fail(name, value, "not a number; send a number such as 42 or 1.5")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return int(number) if number.is_integer() and "." not in value else number
    raise _fail(name, value, "not a number; send a number such as 42 or 1.5")


def _boolean(name: str, value: Any) -> bool:
    value = _one(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _fail(name, value, "not a boolean; send true or false")


def _date(name: str, value: Any) -> str:
    value = _one(value)
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # Slingr's dates are milliseconds since the epoch.
            return datetime.fromtimestamp(value / 1000, UTC).isoformat().replace("+00:00", "Z")
        if isinstance(value, str):
            datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return value.strip()
    except (ValueError, OverflowError, OSError):
        pass
    raise _fail(
        name, value, "not a date; send ISO 8601 (2026-12-06T18:00:00Z) or milliseconds since 1970"
    )


def _any_of(spec: dict[str, Any]) -> list[Any] | None:
    """A choice that also takes a custom value: ``anyOf [{enum}, {type: string}]``."""
    options = spec.get("anyOf")
    if not isinstance(options, list):
        return None
    for option in options:
        if isinstance(option, dict) and isinstance(option.get("enum"), list):
            return list(option["enum"])
    return None


def _choice(name: str, value: Any, choices: list[Any], *, custom: bool) -> Any:
    value = _one(value)
    if value in choices:
        return value
    if custom and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    listed = ", ".join(json.dumps(choice) for choice in choices)
    raise _fail(name, value, f"not one of its values; send one of {listed}")


def _is_key_value(spec: dict[str, Any]) -> bool:
    options = spec.get("anyOf")
    return isinstance(options, list) and any(
        isinstance(option, dict) and option.get("type") == "object" for option in options
    )


def _key_value(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(key): _text(f"{name}.{key}", item) for key, item in value.items()}
    if isinstance(value, str):
        pairs = [pair for pair in value.split(",") if pair.strip()]
        if all("=" in pair and pair.split("=", 1)[0].strip() for pair in pairs):
            return dict(
                (pair.split("=", 1)[0].strip(), pair.split("=", 1)[1].strip()) for pair in pairs
            )
    raise _fail(name, value, 'not key=value pairs; send {"key": "value"} or "key=value,other=2"')


def _json(name: str, value: Any, what: str, kinds: tuple[type, ...]) -> Any:
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise _fail(name, value, f"not {what} text; send valid {what}") from None
    if isinstance(parsed, kinds):
        return parsed
    raise _fail(name, value, f"not {'an' if what[0] in 'aeiouAEIOU' else 'a'} {what} value")


def _text(name: str, value: Any) -> str:
    value = _one(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return json.dumps(value)  # 2000 → "2000", true → "true"
    raise _fail(name, value, "not text; send a string")
