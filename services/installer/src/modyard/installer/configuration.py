"""An installation's configuration: defaults, validation, secrets, environment overrides.

The rules, in the order the installer applies them:

**Fields.** A module's ``ConfigSpec`` has a JSON Schema (``json_schema``) and UI fields
(``fields``). Both name the stored values: a property of the schema or a stored field (every type
but ``label``, ``info`` and ``button``) is a *setting*; a ``fieldsGroup`` (or an object property
with ``properties``) is a *group* whose values live under its name (``{"advanced": {"apiUrl":
…}}``); a ``multiple`` field (or an ``array`` property) holds a list, and a multiple group a list
of objects. Paths (:data:`Path`) name settings by their names only: lists are walked through, so
``("servers", "password")`` is the password of every element of ``servers``.

**Defaults.** The module's defaults are each field's ``default``, else its schema property's
``default``. A group's default is its own ``default`` laid over its members' defaults, so an
absent group appears with its members' defaults; each element of a multiple group gets the
members' defaults it lacks. Defaults are *not* written into the stored configuration
(:func:`validate_config` returns what was sent): they are read at :func:`effective_config` time,
so that an environment override can take the place of a default and a module's new defaults apply
to existing installations — as a Prisme.ai AppInstance falls back to its app's ``config.value``.

**Layers and merge rule.** The effective configuration is, per setting, the instance's value, else
the environment's (``APP_CONFIG_…``/``APP_SECRET_…``, see :func:`read_env_overrides`), else the
module's default. ``null`` counts as not set: it falls through to the next layer, and a setting
no layer sets is absent from the result (never ``null``). Groups merge
member by member, at any depth, so an instance that sets only ``advanced.apiUrl`` still gets
``advanced.timeout`` from the environment or the defaults. Everything else — scalars, lists (also
lists of groups) and free-form objects (``json`` fields, objects without declared
``properties``) — is taken whole from the highest layer that sets it.

**Validation** (:func:`config_errors`, :func:`validate_config`) checks the configuration as the
runtime will see it (instance over the given overrides over defaults) and reports *every* problem
at once, each as a JSON pointer into the configuration (``/apiKey``, ``/advanced/apiUrl``,
``/servers/0/host``) with a detail saying what to send. Never the value sent: a secret must not
come back in an error. It checks

- the schema, with the dialect its ``$schema`` names (Draft 2020-12 when it names none) and format
  checking, compiled by :func:`modyard.common.user_schemas.compile_user_schema`: nothing is
  fetched (a ``$ref`` outside the document makes the module unconfigurable until its publisher
  fixes it, reported at ``""`` with the schema's pointer), and ``pattern``/``patternProperties``
  match with RE2 in linear time (a pattern RE2 cannot compile is reported the same way);
- unknown keys: an object whose schema names ``additionalProperties``, ``patternProperties``,
  ``unevaluatedProperties`` or a composition (``allOf``, ``$ref`` …) is left to the schema; any
  other object that declares its members (schema ``properties`` or fields) is closed, stricter than
  plain JSON Schema on purpose: a mistyped key would otherwise be stored silently — and a
  mistyped ``apiKy`` unencrypted and unmasked, since only declared settings are known secrets;
- each field's ``visibility`` and ``required`` (booleans or conditions, see
  :mod:`modyard.common.expressions`) evaluated against that configuration. Inside a group,
  ``config.x`` finds ``x`` among the group's own values first (innermost group first), then at the
  root, so a member can name a sibling (``config.apiUrl``) or any setting by its full path
  (``config.advanced.apiUrl``). A hidden field (its ``visibility`` false, or inside a hidden
  group) is never required, not even by the schema's ``required``; a value sent for it is kept and
  still checked against the schema (the runtime reads it; the UI just does not show it). A
  required field is missing when it is absent, ``null``, ``""`` or ``[]``. A condition the module
  got wrong is reported at the field's pointer rather than guessed at;
- ``${NAME}`` placeholders: accepted wherever the field has ``allow_custom`` (Slingr's
  ``allowCustom``), whatever its schema says.

**Secrets** (:func:`secret_paths`) are the settings whose field is ``secret`` or of type
``password``, whose schema property is ``writeOnly`` (or Prisme.ai's ``secret: true``), or —
defence in depth for modules that forgot to say so — text settings whose name ends in a secret
noun: ``password``, ``passwd``, ``passphrase``, ``secret``, ``token``, ``credentials``, or
``key`` after ``api``/``private``/``secret``/``access``/``signing``/``encryption``/``client``
(``apiKey``, ``API_KEY``, ``webhookSecret``, ``accessToken``; not ``tokenUrl``, not a toggle). Below
a secret nothing is split further: the whole value is secret. :func:`mask` shows them as
``"********"``; :func:`split_secrets`/:func:`merge_secrets` keep them apart from the plain
configuration so they can be stored encrypted; :func:`restore_masked` puts stored secrets back
where a client sent the mask unchanged.

**Environment overrides**: see :func:`read_env_overrides`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import structlog
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from modyard.common.errors import InvalidParam, ValidationFailed
from modyard.common.expressions import (
    PLACEHOLDER_PATTERN,
    ExpressionError,
    check_expression,
    evaluate_condition,
    is_placeholder,
)
from modyard.common.secrets import SecretValue
from modyard.common.user_schemas import SchemaRefused, compile_user_schema, pattern_search
from modyard.modules.manifest import ConfigField, ConfigSpec

log = structlog.get_logger(__name__)

#: A setting's location by names (lists are walked through, see the module docstring).
Path: TypeAlias = tuple[str, ...]
#: What a secret looks like in anything the API returns.
MASK: Final = "********"
#: Field types that show something but store nothing.
NOT_STORED_TYPES: Final = frozenset({"label", "info", "button"})
CONFIG_PREFIX: Final = "APP_CONFIG_"
SECRET_PREFIX: Final = "APP_SECRET_"  # noqa: S105 (a name prefix, not a password)

# Field types whose values are not free text, so never secrets by their name alone.
_NOT_TEXT_TYPES = frozenset(
    {"toggle", "number", "dropDown", "buttonsGroup", "fieldsGroup", "json", "boolean", "integer"}
)
_SECRET_NOUNS = ("password", "passwd", "passphrase", "secret", "token", "credential", "credentials")
_KEY_QUALIFIERS = frozenset(
    {"api", "private", "secret", "access", "signing", "encryption", "client"}
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_NOT_ENV_CHARACTER = re.compile(r"[^A-Za-z0-9]")
# Keywords after which the schema, not our closed-object rule, decides which keys are allowed.
_OPEN_KEYWORDS = frozenset(
    {"additionalProperties", "unevaluatedProperties", "patternProperties", "allOf", "anyOf"}
    | {"oneOf", "not", "if", "$ref", "$dynamicRef", "dependentSchemas"}
)
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
_MISSING: Final = object()


# --- errors ---------------------------------------------------------------------------------------


class ConfigError(InvalidParam):
    """One problem of a configuration: a JSON pointer into it and what to send instead."""


class ConfigInvalid(ValidationFailed):
    """A configuration with problems; ``errors`` lists every one (a 422 problem response)."""

    slug = "invalid-configuration"
    title = "The configuration is not valid"

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        shown = ", ".join(error.pointer or "(the whole configuration)" for error in errors[:10])
        more = f" and {len(errors) - 10} more" if len(errors) > 10 else ""
        super().__init__(
            f"Fix the configuration fields named in 'errors' and retry: {shown}{more}.",
            errors=errors,
        )
        self.config_errors: list[ConfigError] = list(errors)

    def under(self, prefix: str) -> ConfigInvalid:
        """The same errors with pointers into a request body (``under("/config")``)."""
        return ConfigInvalid(
            [
                ConfigError(pointer=prefix + error.pointer, detail=error.detail)
                for error in self.config_errors
            ]
        )


def json_pointer(path: Sequence[str | int]) -> str:
    """RFC 6901: ``("advanced", "apiUrl")`` → ``/advanced/apiUrl``; ``()`` → ``""``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


# --- the settings a spec declares -----------------------------------------------------------------


@dataclass
class _Setting:
    """A stored setting, from the schema's property and/or the UI field of the same name."""

    name: str
    ui: ConfigField | None = None
    schema: dict[str, Any] | None = None
    members: dict[str, _Setting] = field(default_factory=dict)

    @property
    def multiple(self) -> bool:
        if self.ui is not None and self.ui.multiple:
            return True
        return self.schema is not None and (
            self.schema.get("type") == "array"
            or ("items" in self.schema and "type" not in self.schema)
        )

    @property
    def is_group(self) -> bool:
        return bool(self.members)

    @property
    def object_schema(self) -> dict[str, Any] | None:
        """The schema of the group's object (the items' schema for a multiple group)."""
        if self.schema is None:
            return None
        if self.multiple:
            items = self.schema.get("items")
            return items if isinstance(items, dict) else None
        return self.schema


def _settings(schema: Any, fields: Sequence[ConfigField]) -> dict[str, _Setting]:
    settings: dict[str, _Setting] = {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    for name, prop in (properties or {}).items():
        settings[name] = _Setting(name, schema=prop if isinstance(prop, dict) else {})
    for config_field in fields:
        if config_field.type in NOT_STORED_TYPES:
            continue
        setting = settings.setdefault(config_field.name, _Setting(config_field.name))
        setting.ui = config_field
    for name, setting in list(settings.items()):
        member_fields = [] if setting.ui is None else setting.ui.fields
        setting.members = _settings(setting.object_schema, member_fields)
        ui = setting.ui
        stores_nothing = ui is not None and ui.type == "fieldsGroup" and not setting.members
        if stores_nothing and setting.schema is None:
            del settings[name]  # a group of labels and buttons stores nothing
    return settings


def _spec_settings(spec: ConfigSpec) -> dict[str, _Setting]:
    return _settings(spec.json_schema, spec.fields)


# --- secrets --------------------------------------------------------------------------------------


def _name_looks_secret(name: str) -> bool:
    words = [word.lower() for word in _WORDS.findall(name)]
    if not words:
        return False
    last = words[-1]
    if last.endswith(_SECRET_NOUNS) or last in ("apikey", "privatekey", "secretkey", "accesskey"):
        return True
    return last == "key" and len(words) > 1 and words[-2] in _KEY_QUALIFIERS


def _is_text_setting(setting: _Setting) -> bool:
    if setting.is_group:
        return False
    if setting.ui is not None and setting.ui.type in _NOT_TEXT_TYPES:
        return False
    schema = setting.object_schema if setting.multiple else setting.schema
    if not schema:
        return True
    return _accepts_strings(schema)


def _is_secret(setting: _Setting) -> bool:
    if setting.ui is not None and (setting.ui.secret or setting.ui.type == "password"):
        return True
    if setting.schema is not None and (
        setting.schema.get("writeOnly") is True or setting.schema.get("secret") is True
    ):
        return True
    return _name_looks_secret(setting.name) and _is_text_setting(setting)


def _secret_paths(settings: Mapping[str, _Setting], prefix: Path) -> Iterator[Path]:
    for name, setting in settings.items():
        path = (*prefix, name)
        if _is_secret(setting):
            yield path  # the whole value, members included
        else:
            yield from _secret_paths(setting.members, path)


def secret_paths(spec: ConfigSpec) -> frozenset[Path]:
    """Where a configuration of this module holds secrets (see the module docstring)."""
    return frozenset(_secret_paths(_spec_settings(spec), ()))


# A trie of paths: name → sub-trie, or None where the value at that name is a secret.
_Trie: TypeAlias = dict[str, "_Trie | None"]


def _trie(paths: frozenset[Path] | set[Path]) -> _Trie:
    root: _Trie = {}
    for path in sorted(paths, key=len):
        node: _Trie | None = root
        for part in path[:-1]:
            assert node is not None
            node = node.setdefault(part, {})
            if node is None:
                break  # an ancestor is secret already: so is everything below it
        else:
            if path and node is not None:
                node[path[-1]] = None
    return root


def _masked(value: Any) -> Any:
    if value is None:
        return None  # "not set" is not a secret
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return MASK  # objects too: their keys may say as much as their values


def _mask(value: Any, trie: _Trie) -> Any:
    if isinstance(value, list):
        return [_mask(item, trie) for item in value]
    if not isinstance(value, Mapping):
        return copy.deepcopy(value)
    masked: dict[str, Any] = {}
    for key, item in value.items():
        if key not in trie:
            masked[key] = copy.deepcopy(item)
            continue
        sub = trie[key]
        masked[key] = _masked(item) if sub is None else _mask(item, sub)
    return masked


def mask(config: Mapping[str, Any], paths: frozenset[Path]) -> dict[str, Any]:
    """A copy of ``config`` with every secret value (each element of a list) shown as ``MASK``."""
    result: dict[str, Any] = _mask(config, _trie(paths))
    return result


def _split(value: Any, trie: _Trie) -> tuple[Any, Any, bool]:
    if isinstance(value, list):
        parts = [_split(item, trie) for item in value]
        found = any(part[2] for part in parts)
        return [part[0] for part in parts], [part[1] for part in parts] if found else None, found
    if not isinstance(value, Mapping):
        return copy.deepcopy(value), None, False
    plain: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for key, item in value.items():
        if key not in trie:
            plain[key] = copy.deepcopy(item)
            continue
        sub = trie[key]
        if sub is None:
            secrets[key] = copy.deepcopy(item)
            continue
        plain[key], secret, found = _split(item, sub)
        if found:
            secrets[key] = secret
    return plain, secrets, bool(secrets)


def split_secrets(
    config: Mapping[str, Any], paths: frozenset[Path]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(plain, secrets)``: the configuration without its secrets, and the secrets alone.

    Lists keep their length on both sides (an element without secrets is ``{}``/``None`` in
    ``secrets``), so :func:`merge_secrets` puts every secret back in its element.
    """
    plain, secrets, found = _split(config, _trie(paths))
    return plain, secrets if found else {}


def _merge_secret(plain: Any, secret: Any) -> Any:
    if secret is None:
        return copy.deepcopy(plain)
    if isinstance(plain, Mapping) and isinstance(secret, Mapping):
        merged = copy.deepcopy(dict(plain))
        for key, item in secret.items():
            merged[key] = _merge_secret(plain[key], item) if key in plain else copy.deepcopy(item)
        return merged
    if isinstance(plain, list) and isinstance(secret, list):
        merged_list = [_merge_secret(p, s) for p, s in zip(plain, secret, strict=False)]
        longer = plain if len(plain) > len(secret) else secret
        return merged_list + copy.deepcopy(longer[len(merged_list) :])
    return copy.deepcopy(secret)


def merge_secrets(plain: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`split_secrets`."""
    merged: dict[str, Any] = _merge_secret(plain, secrets)
    return merged


def _unmask(value: Any, previous: Any) -> Any:
    if value == MASK:
        return previous if previous is not None else _MISSING
    if isinstance(value, list):
        restored = [
            _unmask(
                item,
                previous[index] if isinstance(previous, list) and index < len(previous) else None,
            )
            for index, item in enumerate(value)
        ]
        return [item for item in restored if item is not _MISSING]
    return value


def _restore(value: Any, previous: Any, trie: _Trie) -> Any:
    if isinstance(value, list):
        return [
            _restore(
                item,
                previous[index] if isinstance(previous, list) and index < len(previous) else None,
                trie,
            )
            for index, item in enumerate(value)
        ]
    if not isinstance(value, Mapping):
        return value
    restored: dict[str, Any] = {}
    for key, item in value.items():
        before = previous.get(key) if isinstance(previous, Mapping) else None
        if key not in trie:
            restored[key] = item
            continue
        sub = trie[key]
        result = _unmask(item, before) if sub is None else _restore(item, before, sub)
        if result is not _MISSING:
            restored[key] = result
    return restored


def restore_masked(
    values: Mapping[str, Any], previous: Mapping[str, Any], paths: frozenset[Path]
) -> dict[str, Any]:
    """``values`` with each secret sent back as ``MASK`` replaced by the ``previous`` value.

    What a client does when it edits a configuration it read masked. A mask with no previous value
    is dropped (a required secret is then reported missing). List elements match by position.
    """
    result: dict[str, Any] = _restore(copy.deepcopy(dict(values)), previous, _trie(paths))
    return result


def _conceal(value: Any, trie: _Trie) -> Any:
    if isinstance(value, list):
        return [_conceal(item, trie) for item in value]
    if not isinstance(value, Mapping):
        return value
    concealed: dict[str, Any] = {}
    for key, item in value.items():
        if key not in trie:
            concealed[key] = item
            continue
        sub = trie[key]
        if sub is not None:
            concealed[key] = _conceal(item, sub)
        else:
            concealed[key] = item if item is None else SecretValue(item)
    return concealed


def conceal(config: Mapping[str, Any], paths: frozenset[Path]) -> dict[str, Any]:
    """A copy whose secrets are :class:`SecretValue` s: safe to log or ``repr``; see :func:`reveal`."""
    result: dict[str, Any] = _conceal(config, _trie(paths))
    return result


def reveal(value: Any) -> Any:
    """The inverse of :func:`conceal`: plain JSON values again (for the wire to the runtime)."""
    if isinstance(value, SecretValue):
        return value.reveal()
    if isinstance(value, Mapping):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


# --- defaults and layers --------------------------------------------------------------------------


def _own_default(setting: _Setting) -> Any:
    if setting.ui is not None and setting.ui.default is not None:
        return setting.ui.default
    if setting.schema is not None and setting.schema.get("default") is not None:
        return setting.schema["default"]
    return _MISSING


def _defaults(settings: Mapping[str, _Setting]) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for name, setting in settings.items():
        own = _own_default(setting)
        if setting.is_group and not setting.multiple:
            members = _defaults(setting.members)
            if own is _MISSING:
                if members:
                    defaults[name] = members
                continue
            if isinstance(own, Mapping):
                defaults[name] = _merge(members, own, setting.members)
                continue
        if own is not _MISSING:
            defaults[name] = copy.deepcopy(own)
    return defaults


def _merge(lower: Any, higher: Any, members: Mapping[str, _Setting] | None) -> Any:
    """``higher`` over ``lower``; ``members`` is given where both are a group's object."""
    if higher is None:
        return copy.deepcopy(lower)
    if members is None or not isinstance(lower, Mapping) or not isinstance(higher, Mapping):
        return copy.deepcopy(higher)
    merged = copy.deepcopy(dict(lower))
    for key, item in higher.items():
        setting = members.get(key)
        group = (
            setting.members
            if setting is not None and setting.is_group and not setting.multiple
            else None
        )
        value = _merge(merged.get(key), item, group)
        if value is None:
            merged.pop(key, None)  # null is "not set": it neither hides a lower layer nor stays
        else:
            merged[key] = value
    return merged


def _fill_elements(value: Any, settings: Mapping[str, _Setting]) -> Any:
    """Each element of a multiple group gets its members' defaults (recursively)."""
    if not isinstance(value, dict):
        return value
    for name, setting in settings.items():
        item = value.get(name)
        if not setting.is_group:
            continue
        if setting.multiple and isinstance(item, list):
            defaults = _defaults(setting.members)
            value[name] = [
                _fill_elements(_merge(defaults, element, setting.members), setting.members)
                if isinstance(element, Mapping)
                else element
                for element in item
            ]
        elif isinstance(item, dict):
            _fill_elements(item, setting.members)
    return value


def _layered(
    settings: Mapping[str, _Setting], layers: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:  # lowest first
        merged = _merge(merged, layer, settings)
    result: dict[str, Any] = _fill_elements(merged, settings)
    return result


def module_defaults(spec: ConfigSpec) -> dict[str, Any]:
    """The configuration a module gives when nothing is set."""
    settings = _spec_settings(spec)
    return _layered(settings, [_defaults(settings)])


def apply_defaults(spec: ConfigSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` over the module's defaults (the merge rule of the module docstring)."""
    settings = _spec_settings(spec)
    return _layered(settings, [_defaults(settings), values])


# --- describing schemas (never values) ------------------------------------------------------------


def _json(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _options(values: Sequence[Any]) -> str:
    shown = ", ".join(_json(value) for value in list(values)[:20])
    return shown + (", …" if len(values) > 20 else "")


def _accepts_strings(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return schema is not False
    if "enum" in schema:
        return any(isinstance(value, str) for value in schema["enum"])
    if "const" in schema:
        return isinstance(schema["const"], str)
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            return any(_accepts_strings(sub) for sub in schema[keyword])
    kind = schema.get("type")
    if kind is None:
        return not ({"properties", "items"} & schema.keys())
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


def _strings_only(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if "enum" in schema:
        return all(isinstance(value, str) for value in schema["enum"])
    if "const" in schema:
        return isinstance(schema["const"], str)
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            return all(_strings_only(sub) for sub in schema[keyword])
    return schema.get("type") == "string" or schema.get("type") == ["string"]


def _describe(schema: Any) -> str:
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
            return " or ".join(dict.fromkeys(_describe(sub) for sub in schema[keyword]))
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
            f"a list of items, each {_describe(items)}"
            if isinstance(items, dict) and items
            else "a list"
        )
    if kind == "string" and isinstance(pattern, str):
        return f"a string matching {pattern}"
    return _TYPES.get(str(kind), "a value of the documented shape")


def _setting_description(setting: _Setting | None) -> str:
    if setting is None:
        return "a value"
    if setting.schema:
        return _describe(setting.schema)
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


def _explain(error: ValidationError) -> str:
    """What to send instead, from the failing keyword — never quoting the value that was sent."""
    keyword, expected = error.validator, error.validator_value
    if keyword is None or error.schema is False:
        return "is not allowed here; remove it"
    if keyword in ("type", "enum", "const", "format", "anyOf"):
        return f"must be {_describe({keyword: expected})}"
    if keyword == "pattern":
        return f"must be {_describe({'type': 'string', 'pattern': expected})}"
    if keyword == "oneOf":
        return f"must be exactly one of: {_describe({'anyOf': expected})}"
    if keyword == "contains":
        return f"must contain at least one item that is {_describe(expected)}"
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


# --- validation -----------------------------------------------------------------------------------


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
        self.errors.append((kind, ConfigError(pointer=json_pointer(path), detail=detail)))

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
    settings: Mapping[str, _Setting],
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
                "required", path, f"is required{because}; send {_setting_description(setting)}"
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


def _closed(schema: dict[str, Any] | None, settings: Mapping[str, _Setting]) -> bool:
    if schema is not None and _OPEN_KEYWORDS & schema.keys():
        return False  # the schema says which keys are allowed
    return bool(settings)


def _check_unknown(
    check: _Check,
    schema: dict[str, Any] | None,
    settings: Mapping[str, _Setting],
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


def _unknown_detail(settings: Mapping[str, _Setting]) -> str:
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
                    what = _describe(properties[name]) if name in properties else "a value"
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
            check.add("schema", path, _explain(error))


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
    settings = _spec_settings(spec)
    view = _layered(settings, [_defaults(settings), overrides or {}, values])
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
    the module's defaults. Defaults are not copied into the result: see the module docstring.
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
                                pointer=json_pointer((*prefix, index, which)), detail=str(exc)
                            )
                        )
            visit(config_field.fields, (*prefix, index, "fields"))

    visit(spec.fields, ("fields",))
    return problems


# --- environment overrides ------------------------------------------------------------------------


def env_name_part(text: str) -> str:
    """A slug or a setting name as it appears in a variable name: upper case, ``[A-Z0-9_]``."""
    return _NOT_ENV_CHARACTER.sub("_", text).upper()


def env_variable(slug: str, path: Sequence[str], *, secret: bool) -> str:
    """``APP_CONFIG_<SLUG>_<KEY>`` (``APP_SECRET_…`` for a secret), members joined by ``_``."""
    prefix = SECRET_PREFIX if secret else CONFIG_PREFIX
    return prefix + "_".join(env_name_part(part) for part in (slug, *path))


@dataclass(frozen=True)
class EnvNote:
    """Why a variable was not used. Names only: never the variable's value."""

    variable: str
    pointer: str
    reason: str


@dataclass
class EnvOverrides:
    values: dict[str, Any] = field(default_factory=dict)
    #: pointer of each setting the environment set → the variable it came from.
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[EnvNote] = field(default_factory=list)


class _Environment:
    """Variables found by their normalised names (``APP_CONFIG_nlu_API_URL`` is Prisme.ai's spelling
    of ``APP_CONFIG_NLU_API_URL``)."""

    def __init__(self, environ: Mapping[str, str], result: EnvOverrides) -> None:
        self._result = result
        self._by_name: dict[str, list[tuple[str, str]]] = {}
        for name, value in environ.items():
            canonical = env_name_part(name)
            if canonical.startswith((CONFIG_PREFIX, SECRET_PREFIX)):
                self._by_name.setdefault(canonical, []).append((name, value))

    def get(self, canonical: str, pointer: str) -> tuple[str, str] | None:
        found = sorted(self._by_name.get(canonical, []))
        if not found:
            return None
        exact = [item for item in found if item[0] == canonical]
        if exact or len({value for _, value in found}) == 1:
            return (exact or found)[0]
        self._result.notes.append(
            EnvNote(
                ", ".join(name for name, _ in found),
                pointer,
                f"these variables all spell {canonical} and disagree; keep one",
            )
        )
        return None


def _parse_env_value(raw: str, setting: _Setting) -> tuple[bool, Any]:
    schema = setting.schema
    if not setting.multiple and not setting.is_group:
        if schema is not None and _strings_only(schema):
            return True, raw
        if schema is None and setting.ui is not None and setting.ui.type in (
            "text", "password", "dropDown", "buttonsGroup",
        ):  # fmt: skip
            return True, raw
        kinds = {schema.get("type")} if schema is not None else set()
        toggle = (setting.ui is not None and setting.ui.type == "toggle") or "boolean" in kinds
        if toggle and raw.strip().lower() in ("true", "false"):
            return True, raw.strip().lower() == "true"
    try:
        value = json.loads(raw)
    except ValueError:
        accepts_raw = (
            not setting.multiple
            and not setting.is_group
            and (schema is None or _accepts_strings(schema))
        )
        return (True, raw) if accepts_raw else (False, None)
    if setting.is_group and not setting.multiple and not isinstance(value, dict):
        return False, None
    return True, value


def _set(target: dict[str, Any], path: Path, value: Any) -> None:
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _read_settings(
    env: _Environment,
    result: EnvOverrides,
    slug: str,
    settings: Mapping[str, _Setting],
    secrets: frozenset[Path],
    prefix: Path,
) -> None:
    for name, setting in settings.items():
        path = (*prefix, name)
        pointer = json_pointer(path)
        secret = any(path[:length] in secrets for length in range(1, len(path) + 1))
        wanted = env_variable(slug, path, secret=secret)
        unwanted = env_variable(slug, path, secret=not secret)
        wrong = env.get(unwanted, pointer)
        if wrong is not None:
            reason = (
                f"{pointer} is a secret: set it with {wanted}, never an {CONFIG_PREFIX}… variable"
                if secret
                else f"{pointer} is not a secret: set it with {wanted}"
            )
            result.notes.append(EnvNote(wrong[0], pointer, reason))
        found = env.get(wanted, pointer)
        if found is not None:
            ok, value = _parse_env_value(found[1], setting)
            if not ok:
                result.notes.append(
                    EnvNote(
                        found[0],
                        pointer,
                        f"is not valid JSON for {_setting_description(setting)}; ignored",
                    )
                )
            else:
                if isinstance(value, dict) and not secret:
                    # A group's JSON from APP_CONFIG_… cannot carry its secret members.
                    below = frozenset(p[len(path) :] for p in secrets if p[: len(path)] == path)
                    value, dropped = split_secrets(value, below)
                    if dropped:
                        result.notes.append(
                            EnvNote(
                                found[0],
                                pointer,
                                f"its secret members are set with {SECRET_PREFIX}… only; ignored",
                            )
                        )
                _set(result.values, path, value)
                result.sources[pointer] = found[0]
        if setting.is_group and not setting.multiple:
            _read_settings(env, result, slug, setting.members, secrets, path)


def read_env_overrides(slug: str, spec: ConfigSpec, environ: Mapping[str, str]) -> EnvOverrides:
    """The settings the environment gives installation ``slug``, with notes on what was ignored.

    Each setting has exactly one variable: ``APP_CONFIG_<SLUG>_<KEY>``, or ``APP_SECRET_<SLUG>_<KEY>``
    for a secret. SLUG and KEY are upper-cased with every character outside ``[A-Za-z0-9]``
    turned into ``_``; a group member's KEY is the group's and the member's joined by ``_``
    (``APP_CONFIG_CRM_ADVANCED_APIURL`` for ``advanced.apiUrl``), and the group itself can be set
    whole as a JSON object (``APP_CONFIG_CRM_ADVANCED='{"apiUrl": …}'``; its members' own variables
    win over it). Members of multiple groups have no variables of their own (set the list whole).
    Variable names match case-insensitively after that normalisation, so Prisme.ai's
    ``APP_CONFIG_<appSlug>_<field>`` spelling works when the installation is named like the app.

    A secret set through ``APP_CONFIG_…`` (or a plain setting through ``APP_SECRET_…``) is ignored
    with a note: operators keep secrets in variables named as secrets (and sourced from a secret
    store), and a plain variable that tools may print must not be a way in. Values are taken as
    they are for settings whose schema allows strings only, else parsed as JSON (numbers,
    booleans — also ``True``/``FALSE`` —, lists, objects); text that is not JSON is kept as a string
    where the setting accepts strings, else ignored with a note.

    Names can collide (installation ``a`` setting ``b_c`` and installation ``a-b`` setting ``c``
    both read ``APP_CONFIG_A_B_C``); operators should keep such slugs apart.
    """
    if not slug:
        raise ValueError("an installation slug is needed to read its environment overrides")
    result = EnvOverrides()
    env = _Environment(environ, result)
    _read_settings(env, result, slug, _spec_settings(spec), secret_paths(spec), ())
    return result


def env_overrides(slug: str, spec: ConfigSpec, environ: Mapping[str, str]) -> dict[str, Any]:
    """:func:`read_env_overrides`' values; its notes are logged (variable names, never values)."""
    result = read_env_overrides(slug, spec, environ)
    for note in result.notes:
        log.warning(
            "config.env_variable_ignored",
            installation=slug,
            variable=note.variable,
            pointer=note.pointer,
            reason=note.reason,
        )
    return result.values


def effective_config(
    spec: ConfigSpec,
    instance: Mapping[str, Any],
    slug: str,
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """What the runtime runs installation ``slug`` with: instance > environment > defaults.

    Not validated (the environment may have changed since the configuration was): call
    :func:`config_errors` on the result to find out.
    """
    settings = _spec_settings(spec)
    return _layered(settings, [_defaults(settings), env_overrides(slug, spec, environ), instance])


__all__ = [
    "CONFIG_PREFIX",
    "MASK",
    "NOT_STORED_TYPES",
    "SECRET_PREFIX",
    "ConfigError",
    "ConfigInvalid",
    "EnvNote",
    "EnvOverrides",
    "Path",
    "apply_defaults",
    "check_spec_expressions",
    "conceal",
    "config_errors",
    "effective_config",
    "env_name_part",
    "env_overrides",
    "env_variable",
    "json_pointer",
    "mask",
    "merge_secrets",
    "module_defaults",
    "read_env_overrides",
    "restore_masked",
    "reveal",
    "secret_paths",
    "split_secrets",
    "validate_config",
]
