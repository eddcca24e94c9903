"""What a schema or a setting expects, in words for a problem's detail (never the value sent)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jsonschema import ValidationError

from modyard.common.expressions import (
    PLACEHOLDER_PATTERN,
)
from modyard.installer.configuration.declared import Setting

# Slingr's text field with ``validation: number`` (see the slingr adapter).
_SLINGR_NUMBER_PATTERN = r"^(-?[0-9]+(\.[0-9]+)?|\$\{[^}]+\})$"
_FORMATS = {
    "email": "a valid email address",
    "idn-email": "a valid email address",
    "uri": "an absolute URL (e.g. https://api.example.com)",
    "iri": "an absolute URL (e.g. https://api.example.com)",
    "uri-reference": "a URL or a relative reference",
    "date-time": "a date and time like 2024-01-31T12:00:00Z",
    "date": "a date like 2024-01-31",
    "time": "a time like 12:00:00Z",
    "hostname": "a host name",
    "ipv4": "an IPv4 address",
    "ipv6": "an IPv6 address",
    "uuid": "a UUID",
    "regex": "a regular expression",
}
_TYPES = {
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def _json(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _options(values: Sequence[Any]) -> str:
    shown = ", ".join(_json(value) for value in list(values)[:20])
    return shown + (", …" if len(values) > 20 else "")


def accepts_strings(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return schema is not False
    if "enum" in schema:
        return any(isinstance(value, str) for value in schema["enum"])
    if "const" in schema:
        return isinstance(schema["const"], str)
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            return any(accepts_strings(sub) for sub in schema[keyword])
    kind = schema.get("type")
    if kind is None:
        return not ({"properties", "items"} & schema.keys())
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


def strings_only(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if "enum" in schema:
        return all(isinstance(value, str) for value in schema["enum"])
    if "const" in schema:
        return isinstance(schema["const"], str)
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            return all(strings_only(sub) for sub in schema[keyword])
    return schema.get("type") == "string" or schema.get("type") == ["string"]


def describe(schema: Any) -> str:
    """What a value of ``schema`` is, as a noun phrase ("a valid email address")."""
    if schema is True or schema == {}:
        return "any value"
    if not isinstance(schema, dict):
        return "nothing (remove it)"
    if "const" in schema:
        return _json(schema["const"])
    if isinstance(schema.get("enum"), list):
        return f"one of {_options(schema['enum'])}"
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list) and schema[keyword]:
            return " or ".join(dict.fromkeys(describe(sub) for sub in schema[keyword]))
    pattern = schema.get("pattern")
    if pattern == PLACEHOLDER_PATTERN:
        return "a ${NAME} placeholder"
    if pattern == _SLINGR_NUMBER_PATTERN:
        return 'a number written as text (e.g. "15") or a ${NAME} placeholder'
    if isinstance(schema.get("format"), str):
        return _FORMATS.get(schema["format"], f"a valid {schema['format']}")
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_TYPES.get(str(k), str(k)) for k in kind)
    if kind == "object" or "properties" in schema:
        names = list(schema.get("properties") or {})
        return f"an object with {', '.join(names)}" if names else "an object"
    if kind == "array" or "items" in schema:
        items = schema.get("items")
        return (
            f"a list of items, each {describe(items)}"
            if isinstance(items, dict) and items
            else "a list"
        )
    if kind == "string" and isinstance(pattern, str):
        return f"a string matching {pattern}"
    return _TYPES.get(str(kind), "a value of the documented shape")


def setting_description(setting: Setting | None) -> str:
    if setting is None:
        return "a value"
    if setting.schema:
        return describe(setting.schema)
    if setting.ui is not None:
        config_field = setting.ui
        if config_field.options and not config_field.allow_custom:
            described = f"one of {_options([option.value for option in config_field.options])}"
        elif config_field.type in ("toggle", "boolean"):
            described = "true or false"
        elif config_field.type == "number":
            described = "a number"
        elif setting.is_group:
            described = f"an object with {', '.join(setting.members)}"
        else:
            described = "a value"
        return f"a list of {described}" if config_field.multiple else described
    return "a value"


_BOUNDS = {
    "minLength": "must be at least {} characters long",
    "maxLength": "must be at most {} characters long",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
    "exclusiveMaximum": "must be less than {}",
    "multipleOf": "must be a multiple of {}",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "minProperties": "must have at least {} members",
    "maxProperties": "must have at most {} members",
}


def explain(error: ValidationError) -> str:
    """What to send instead, from the failing keyword — never quoting the value that was sent."""
    keyword, expected = error.validator, error.validator_value
    if keyword is None or error.schema is False:
        return "is not allowed here; remove it"
    if keyword in ("type", "enum", "const", "format", "anyOf"):
        return f"must be {describe({keyword: expected})}"
    if keyword == "pattern":
        return f"must be {describe({'type': 'string', 'pattern': expected})}"
    if keyword == "oneOf":
        return f"must be exactly one of: {describe({'anyOf': expected})}"
    if keyword == "contains":
        return f"must contain at least one item that is {describe(expected)}"
    if keyword == "uniqueItems":
        return "must not list the same item twice"
    if keyword == "not":
        return "is a value this setting does not accept"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword in ("minimum", "maximum") and schema.get(f"exclusive{keyword.title()}") is True:
        keyword = f"exclusive{keyword.title()}"  # draft 4's boolean form
    if keyword in _BOUNDS:
        return _BOUNDS[str(keyword)].format(expected)
    return f"does not satisfy the schema's {keyword!r} rule"
