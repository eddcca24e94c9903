"""JSON Schemas that tenants and module authors write, compiled so that checking data with them
can neither reach the network nor stall the event loop.

Three kinds reach the platform: an automation's ``arguments`` (a workspace user writes them), a
module component's ``properties_schema`` and a module's configuration schema (its publisher does;
publishers are not trusted either). :func:`compile_user_schema` checks one once — when it is
published, saved, a flow using it starts, or the installer checks a configuration against it —
and returns the validator to use:

- **Nothing is fetched.** A ``$ref`` (``$dynamicRef``, ``$recursiveRef``) resolves within the
  document itself (``#/$defs/…``, an ``$anchor``, a subschema's ``$id``) or to the JSON Schema
  meta-schemas shipped with ``jsonschema``; anything else (``http://…``, ``file:///etc/passwd``,
  a relative file name) is refused with the JSON pointer of the ``$ref``. jsonschema's own default
  fetches remote references with ``urllib`` synchronously and without a timeout, inside the event
  loop; the validator returned here has a registry that cannot retrieve anything, so even a
  reference that slipped past the check fails instead of being fetched.
- **Patterns match in linear time.** ``pattern`` and ``patternProperties`` (and the
  ``additionalProperties`` that depend on them) are matched with RE2, which has no backtracking:
  ``^(a+)+$`` against 100,000 ``a`` and a ``b`` is microseconds, where Python's ``re`` never ends.
  A pattern RE2 cannot compile (backreferences, lookaround) is refused with its pointer, and so is
  ``unevaluatedProperties`` next to ``patternProperties`` (jsonschema matches those with ``re``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any, Final

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for

# jsonschema's own meta-schema registry; the package ships no type information.
from jsonschema_specifications import REGISTRY as META_SCHEMAS  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from modyard.common.json_pointer import json_pointer

#: The base URI of a user's schema: ``.invalid`` never resolves, and nothing retrieves anyway.
BASE_URI: Final = "https://schema.modyard.invalid/user.json"
#: Longest pattern accepted (RE2 compiles in linear time, but a pattern is a few dozen chars).
MAX_PATTERN_LENGTH: Final = 1000

_REFERENCES: Final = ("$ref", "$dynamicRef", "$recursiveRef")
# Values under these keywords are data, not schemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS: Final = frozenset({"enum", "const", "examples", "default"})
# Keywords whose value maps arbitrary names to schemas: the names may be anything ("$ref" too).
_SCHEMA_MAPS: Final = frozenset(
    {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies"}
)
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the caller's 422, not a line on stderr


class SchemaRefused(ValueError):
    """A schema that cannot be used: ``problems`` are ``(json pointer in it, what to change)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{pointer or '/'}: {reason}" for pointer, reason in problems))
        self.problems = problems


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


def pattern_search(pattern: str, text: str) -> bool:
    """Whether a schema's ``pattern`` matches somewhere in ``text`` (RE2: linear time).

    For code that reads a user's schema beside the validator (e.g. to name the keys that
    ``additionalProperties: false`` refuses): never ``re.search`` on a pattern someone else wrote.
    Raises ``re2.error`` for a pattern :func:`compile_user_schema` would have refused.
    """
    return bool(_regex(pattern).search(text))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = _regex(pattern)
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_ADDITIONAL_PROPERTIES = Draft202012Validator.VALIDATORS["additionalProperties"]


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    patterns = schema.get("patternProperties") if isinstance(schema, Mapping) else None
    if not patterns:
        yield from _ADDITIONAL_PROPERTIES(validator, additional, instance, schema)
        return
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    regexes = [_regex(pattern) for pattern in patterns]
    extras = sorted(
        key
        for key in instance
        if key not in properties and not any(regex.search(key) for regex in regexes)
    )
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        verb = "does" if len(extras) == 1 else "do"
        joined = ", ".join(repr(each) for each in extras)
        shown = ", ".join(repr(each) for each in sorted(patterns))
        yield ValidationError(f"{joined} {verb} not match any of the regexes: {shown}")


_RE2_KEYWORDS: Final = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


@lru_cache(maxsize=16)
def _re2_class(cls: type[Validator]) -> type[Validator]:
    extended: type[Validator] = extend(cls, validators=_RE2_KEYWORDS)  # type: ignore[no-untyped-call]
    return extended


def _walk(
    node: Any, path: tuple[str | int, ...], schema_map: bool = False
) -> Iterator[tuple[tuple[str | int, ...], Mapping[str, Any]]]:
    """Every schema object below ``node`` with its path (data keywords skipped)."""
    if isinstance(node, Mapping):
        if not schema_map:
            yield path, node
        for key, value in node.items():
            if not schema_map and key in _DATA_KEYWORDS:
                continue
            yield from _walk(value, (*path, key), schema_map=not schema_map and key in _SCHEMA_MAPS)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, (*path, index))


def _pattern_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return None  # check_schema reports it
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"the pattern is longer than {MAX_PATTERN_LENGTH} characters"
    try:
        _regex(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        return (
            f"RE2 cannot compile this pattern ({reason}); patterns are matched without "
            "backtracking, so backreferences and lookaround are not available"
        )
    return None


def pattern_problems(schema: Any) -> list[tuple[str, str]]:
    """``(pointer, what to change)`` for each ``pattern``/``patternProperties`` RE2 cannot compile.

    For publish time, where the rest of :func:`compile_user_schema`'s checks would be premature
    (a format's references may still be resolved against the archive's bundled files).
    """
    problems: list[tuple[str, str]] = []
    for path, node in _walk(schema, ()):
        if isinstance(node.get("pattern"), str):
            problem = _pattern_problem(node["pattern"])
            if problem is not None:
                problems.append((json_pointer(*path, "pattern"), problem))
        patterns = node.get("patternProperties")
        if isinstance(patterns, Mapping):
            for pattern in patterns:
                problem = _pattern_problem(pattern)
                if problem is not None:
                    problems.append((json_pointer(*path, "patternProperties", pattern), problem))
    return problems


def _problems(schema: Mapping[str, Any], registry: Registry[Any]) -> Iterator[tuple[str, str]]:
    resolver = registry.resolver(base_uri=BASE_URI)
    scopes: dict[tuple[str | int, ...], Any] = {(): resolver}
    has_pattern_properties = False
    unevaluated: str | None = None
    for path, node in _walk(schema, ()):
        # Pre-order: the nearest enclosing schema's scope is known (its $id sets the base).
        scope = next(scopes[path[:end]] for end in range(len(path), -1, -1) if path[:end] in scopes)
        if isinstance(node.get("$id"), str):
            scope = scope.in_subresource(DRAFT202012.create_resource(node))
        scopes[path] = scope
        for keyword in _REFERENCES:
            ref = node.get(keyword)
            if not isinstance(ref, str):
                continue
            try:
                scope.lookup(ref)
            except Unresolvable:
                yield (
                    json_pointer(*path, keyword),
                    f"{ref!r} is not within this schema: a reference names a part of the same "
                    "document (#/$defs/<name>, an $anchor) or a JSON Schema meta-schema; "
                    "schemas are never fetched, so copy the referenced schema under $defs",
                )
        if isinstance(node.get("pattern"), str):
            problem = _pattern_problem(node["pattern"])
            if problem is not None:
                yield json_pointer(*path, "pattern"), problem
        patterns = node.get("patternProperties")
        if isinstance(patterns, Mapping):
            has_pattern_properties = True
            for pattern in patterns:
                problem = _pattern_problem(pattern)
                if problem is not None:
                    yield json_pointer(*path, "patternProperties", pattern), problem
        if "unevaluatedProperties" in node and unevaluated is None:
            unevaluated = json_pointer(*path, "unevaluatedProperties")
    if has_pattern_properties and unevaluated is not None:
        yield (
            unevaluated,
            "unevaluatedProperties cannot be combined with patternProperties here; use "
            "additionalProperties next to the patternProperties instead",
        )


def compile_user_schema(schema: Any, *, format_checker: FormatChecker | None = None) -> Validator:
    """A validator for ``schema`` that fetches nothing and matches patterns with RE2.

    Raises :class:`SchemaRefused` with every problem (pointers relative to ``schema``).
    ``format_checker`` (e.g. the dialect's ``FORMAT_CHECKER``) makes ``format`` assert; jsonschema's
    own checkers match the *value* with the library's fixed expressions, never the schema's text.
    """
    if isinstance(schema, bool):
        return Draft202012Validator(schema, format_checker=format_checker)
    if not isinstance(schema, Mapping):
        raise SchemaRefused([("", "a JSON Schema is an object (or true/false)")])
    schema = dict(schema)
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        problem = (json_pointer(*exc.path), f"is not a JSON Schema: {exc.message}")
        raise SchemaRefused([problem]) from None
    specification = DRAFT202012.detect(schema) if "$schema" in schema else DRAFT202012
    resource: Resource[Any] = specification.create_resource(schema)
    # META_SCHEMAS has no retrieval: a URI it does not hold fails to resolve, never fetched.
    registry: Registry[Any] = META_SCHEMAS.with_resource(BASE_URI, resource).crawl()
    problems = list(_problems(schema, registry))
    if problems:
        raise SchemaRefused(problems)
    validator: Validator = _re2_class(cls)(schema, registry=registry, format_checker=format_checker)
    return validator


__all__ = [
    "BASE_URI",
    "MAX_PATTERN_LENGTH",
    "SchemaRefused",
    "compile_user_schema",
    "pattern_problems",
    "pattern_search",
]
