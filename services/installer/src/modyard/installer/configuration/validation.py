"""Checking a configuration as the runtime will see it, reporting every problem at once."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from modyard.common.expressions import (
    ExpressionError,
    check_expression,
    evaluate_condition,
    is_placeholder,
)
from modyard.common.json_pointer import json_pointer
from modyard.common.user_schemas import SchemaRefused, compile_user_schema, pattern_search
from modyard.installer.configuration.declared import NOT_STORED_TYPES, Path, Setting, spec_settings
from modyard.installer.configuration.description import describe, explain, setting_description
from modyard.installer.configuration.errors import ConfigError, ConfigInvalid
from modyard.installer.configuration.layers import default_values, layered
from modyard.modules.manifest import ConfigField, ConfigSpec

# Keywords after which the schema, not our closed-object rule, decides which keys are allowed.
_OPEN_KEYWORDS = frozenset(
    {"additionalProperties", "unevaluatedProperties", "patternProperties", "allOf", "anyOf"}
    | {"oneOf", "not", "if", "$ref", "$dynamicRef", "dependentSchemas"}
)


class _Scope(Mapping[str, Any]):
    """What ``config`` names in a member's condition: its group(s) first, then the root."""

    def __init__(self, maps: Sequence[Mapping[str, Any]]) -> None:
        self._maps = maps

    def __getitem__(self, key: str) -> Any:
        for mapping in self._maps:
            if key in mapping:
                return mapping[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for mapping in self._maps for key in mapping))

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass
class _Check:
    errors: list[tuple[str, ConfigError]] = field(default_factory=list)
    hidden: set[tuple[str | int, ...]] = field(default_factory=set)
    custom: set[Path] = field(default_factory=set)

    def add(self, kind: str, path: Sequence[str | int], detail: str) -> None:
        self.errors.append((kind, ConfigError(pointer=json_pointer(*path), detail=detail)))

    def is_hidden(self, path: tuple[str | int, ...]) -> bool:
        return any(path[:length] in self.hidden for length in range(1, len(path) + 1))


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or value == []


def _condition(
    check: _Check,
    config_field: ConfigField,
    which: str,
    scope: Mapping[str, Any],
    path: tuple[str | int, ...],
) -> bool | None:
    value = config_field.visibility if which == "visibility" else config_field.required
    try:
        return evaluate_condition(value, scope, default=which == "visibility")
    except ExpressionError as exc:
        check.add(
            "module",
            path,
            f"cannot be checked: the module's {which} condition for this field is invalid ({exc}); "
            "the module's publisher must fix it",
        )
        return None


def _check_fields(
    check: _Check,
    fields: Sequence[ConfigField],
    values: Mapping[str, Any],
    scopes: tuple[Mapping[str, Any], ...],
    prefix: tuple[str | int, ...],
    settings: Mapping[str, Setting],
) -> None:
    scope = _Scope(scopes)
    for config_field in fields:
        if config_field.type in NOT_STORED_TYPES:
            continue
        path = (*prefix, config_field.name)
        visible = _condition(check, config_field, "visibility", scope, path) is not False
        if not visible:
            check.hidden.add(path)
            continue  # neither it nor its members are required
        required = _condition(check, config_field, "required", scope, path) is True
        value = values.get(config_field.name)
        setting = settings.get(config_field.name)
        if required and _is_missing(value):
            because = (
                ""
                if config_field.required is True
                else f" (required because {config_field.required})"
            )
            check.add(
                "required", path, f"is required{because}; send {setting_description(setting)}"
            )
        if not config_field.fields:
            continue
        members = setting.members if setting is not None else {}
        if config_field.multiple:
            for index, element in enumerate(value if isinstance(value, list) else []):
                if isinstance(element, Mapping):
                    _check_fields(
                        check,
                        config_field.fields,
                        element,
                        (element, *scopes),
                        (*path, index),
                        members,
                    )
        else:
            group = value if isinstance(value, Mapping) else {}
            _check_fields(check, config_field.fields, group, (group, *scopes), path, members)


def _custom_paths(fields: Sequence[ConfigField], prefix: Path = ()) -> Iterator[Path]:
    for config_field in fields:
        path = (*prefix, config_field.name)
        if config_field.allow_custom:
            yield path
        yield from _custom_paths(config_field.fields, path)


def _closed(schema: dict[str, Any] | None, settings: Mapping[str, Setting]) -> bool:
    if schema is not None and _OPEN_KEYWORDS & schema.keys():
        return False  # the schema says which keys are allowed
    return bool(settings)


def _check_unknown(
    check: _Check,
    schema: dict[str, Any] | None,
    settings: Mapping[str, Setting],
    value: Any,
    path: tuple[str | int, ...],
) -> None:
    if not isinstance(value, Mapping):
        return
    if _closed(schema, settings):
        for key in value:
            if key not in settings:
                check.add("unknown", (*path, key), _unknown_detail(settings))
    for name, setting in settings.items():
        if not setting.is_group or name not in value:
            continue
        item = value[name]
        elements = (
            enumerate(item) if setting.multiple and isinstance(item, list) else [(None, item)]
        )
        for index, element in elements:
            where = (*path, name) if index is None else (*path, name, index)
            _check_unknown(check, setting.object_schema, setting.members, element, where)


def _unknown_detail(settings: Mapping[str, Setting]) -> str:
    names = ", ".join(list(settings)[:30])
    return f"is not a setting of this module; remove it or use one of: {names}"


def _extra_keys(instance: Any, schema: Any) -> list[str]:
    if not isinstance(instance, Mapping) or not isinstance(schema, dict):
        return []
    known = schema.get("properties") or {}
    patterns = list((schema.get("patternProperties") or {}).keys())
    return [
        key
        for key in instance
        if key not in known and not any(pattern_search(pattern, key) for pattern in patterns)
    ]


def _check_schema(check: _Check, schema: dict[str, Any], view: Mapping[str, Any]) -> None:
    # The module's publisher wrote this schema and is not trusted: compile_user_schema fetches
    # no $ref (only the document itself and bundled meta-schemas resolve) and matches `pattern`/
    # `patternProperties` with RE2, in linear time — with `re`, `^(a+)+$` against forty "a" and a
    # "!" typed by whoever configures an installation would hold the installer for hours.
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        validator = compile_user_schema(schema, format_checker=cls.FORMAT_CHECKER)
    except SchemaRefused as exc:
        for in_schema, reason in exc.problems:
            check.add(
                "module",
                (),
                f"cannot be checked: the module's configuration schema is invalid at "
                f"{in_schema or '/'} ({reason[:300]}); the module's publisher must fix it",
            )
        return
    try:
        errors = list(validator.iter_errors(view))
    except Unresolvable as exc:  # compile_user_schema resolved every $ref; kept as a backstop
        check.add(
            "module",
            (),
            f"cannot be checked: the module's configuration schema refers to {str(exc.ref)[:200]!r}, "
            "which is not part of it; the module's publisher must fix it",
        )
        return
    for error in errors:
        path = tuple(error.absolute_path)
        names = tuple(part for part in path if isinstance(part, str))
        if is_placeholder(error.instance) and names in check.custom:
            continue  # allow_custom: a ${NAME} placeholder stands for any value
        if error.validator == "required" and isinstance(error.instance, Mapping):
            properties = (
                error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            )
            required: list[str] = list(error.validator_value)  # type: ignore[arg-type]
            for name in required:
                where = (*path, name)
                if name not in error.instance and not check.is_hidden(where):
                    what = describe(properties[name]) if name in properties else "a value"
                    check.add("schema-required", where, f"is required; send {what}")
        elif error.validator == "dependentRequired" and isinstance(error.instance, Mapping):
            dependencies: dict[str, list[str]] = dict(error.validator_value)  # type: ignore[arg-type]
            for present, needed in dependencies.items():
                for name in needed if present in error.instance else ():
                    if name not in error.instance and not check.is_hidden((*path, name)):
                        check.add(
                            "schema-required", (*path, name), f"is required when {present} is set"
                        )
        elif (
            error.validator in ("additionalProperties", "unevaluatedProperties")
            and error.validator_value is False
        ):
            for key in _extra_keys(error.instance, error.schema):
                check.add("unknown", (*path, key), "is not a setting of this module; remove it")
        else:
            check.add("schema", path, explain(error))


def _final(check: _Check) -> list[ConfigError]:
    by_fields = {error.pointer for kind, error in check.errors if kind == "required"}
    pointers = {error.pointer for _, error in check.errors}
    kept: dict[tuple[str, str], ConfigError] = {}
    for kind, error in check.errors:
        if kind == "schema" and error.pointer in by_fields:
            continue  # "" for a required text fails its pattern too; "is required" says it all
        if kind == "schema-required" and (
            error.pointer in by_fields
            # a group the schema requires, whose missing members are named one by one already
            or any(other.startswith(error.pointer + "/") for other in pointers)
        ):
            continue
        kept.setdefault((error.pointer, error.detail), error)
    return sorted(kept.values(), key=lambda error: error.pointer)


def config_errors(
    spec: ConfigSpec,
    values: Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
) -> list[ConfigError]:
    """Every problem of ``values`` (over ``overrides`` over the module's defaults); ``[]`` if none."""
    if not isinstance(values, Mapping):
        return [
            ConfigError(pointer="", detail="must be an object that maps setting names to values")
        ]
    settings = spec_settings(spec)
    view = layered(settings, [default_values(settings), overrides or {}, values])
    check = _Check(custom=set(_custom_paths(spec.fields)))
    _check_fields(check, spec.fields, view, (view,), (), settings)
    _check_unknown(check, spec.json_schema, settings, view, ())
    _check_schema(check, spec.json_schema, view)
    return _final(check)


def validate_config(
    spec: ConfigSpec,
    values: Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration to store (a copy of ``values``), or :class:`ConfigInvalid`.

    It is checked as the runtime will read it: over ``overrides`` (pass
    :func:`env_overrides`, so that a setting the environment provides is not "missing") and over
    the module's defaults. Defaults are not copied into the result: see the package docstring.
    """
    errors = config_errors(spec, values, overrides=overrides)
    if errors:
        raise ConfigInvalid(errors)
    return copy.deepcopy(dict(values))


def check_spec_expressions(spec: ConfigSpec) -> list[ConfigError]:
    """Conditions of the spec's fields this installer cannot evaluate, located in ``fields``.

    For publish time, so that a module whose conditions are junk is refused before anyone installs
    it (pointers like ``/fields/3/fields/0/required``).
    """
    problems: list[ConfigError] = []

    def visit(fields: Sequence[ConfigField], prefix: tuple[str | int, ...]) -> None:
        for index, config_field in enumerate(fields):
            for which in ("required", "visibility"):
                value = getattr(config_field, which)
                if isinstance(value, str):
                    try:
                        check_expression(value)
                    except ExpressionError as exc:
                        problems.append(
                            ConfigError(
                                pointer=json_pointer(*prefix, index, which), detail=str(exc)
                            )
                        )
            visit(config_field.fields, (*prefix, index, "fields"))

    visit(spec.fields, ("fields",))
    return problems
