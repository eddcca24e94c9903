"""Slingr packages (seed 001; format ``slingr``, kind ``package``): a ``package.json`` descriptor
plus scripts, listeners, flow steps and UI services → the canonical manifest.

The mapping (detection, names, version, dependencies, events, configuration fields and their
schemas, metadata files, flow steps, UI services, storage) is specified in docs/formats/slingr.md,
its one home; look-alike packages are in libs/modules/tests/fixtures/slingr/. Code-level notes sit
where they apply.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from jsonschema import Draft202012Validator
from pydantic import ValidationError

from modyard.common.expressions import PLACEHOLDER_PATTERN
from modyard.common.semver import InvalidVersion, normalize_range, normalize_version
from modyard.modules.formats.appmixer import AppmixerAdapter
from modyard.modules.formats.base import (
    IssueCollector,
    ManifestError,
    ModuleFiles,
    json_object,
    module_version,
)
from modyard.modules.manifest import (
    MODULE_NAME_PATTERN,
    Component,
    ComponentRole,
    ConfigField,
    ConfigOption,
    ConfigSpec,
    Dependency,
    EventSpec,
    Executor,
    ExecutorType,
    Manifest,
    ModuleFile,
    ModuleFormat,
    ModuleKind,
    Port,
    Requirements,
    module_name,
)

DESCRIPTOR = "package.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Name of the storage Slingr packages get: the app's key-value store (``sys.storage``).
STORAGE_KIND = "kv"

_SLINGR_LISTS = ("configuration", "metadata", "events", "dependencies", "userConfiguration")
_BROKEN_DESCRIPTOR_HINT = re.compile(r'"(configuration|metadata|dependencies)"\s*:\s*\[')
_DEPENDENCY_TYPES: dict[str, Literal["module", "service"]] = {
    "service": "service",
    "package": "module",
}
_METADATA_TYPES = ("script", "listener", "flowStep", "uiService")
_TOP_LEVEL_KEYS = frozenset(
    {"name", "label", "description", "version", "dependencies", "events", "configuration"}
    | {"metadata", "userConfiguration"}
)

# Configuration fields: the keys mapped onto ConfigField, and each type's documented options.
_FIELD_KEYS = frozenset(
    {"label", "name", "type", "multiplicity", "required", "visibility", "defaultValue"}
    | {"typeOptions", "description"}
)
_NOT_STORED = frozenset({"label", "info", "button"})
_ALLOWED_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "text": {"validation": ("email", "number", "url"), "representation": ("inputText", "textArea")},
    "info": {"alertType": ("info", "success", "warning", "danger")},
    "button": {"color": ("info", "default", "primary", "success", "warning", "danger")},
}
_TEXT_FORMATS = {"email": "email", "url": "uri"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STEP_ICON_SIZE = (18, 18)
# Flow step input/output types and the JSON Schema type their values have.
_STEP_TYPES = {
    "text": {"type": "string"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "toggle": {"type": "boolean"},
    "object": {"type": "object"},
    "date": {"type": "string"},
}
_EXTERNAL_SOURCE = re.compile(r"^(https?:)?//", re.IGNORECASE)
_UI_PLACEMENTS = ("head", "bottom")
_LISTENER_NAME = re.compile(r"^\s*listeners\.([A-Za-z_$][\w$]*)\s*=", re.MULTILINE)
_EXPORTED_FUNCTION = re.compile(r"^\s*exports\.([A-Za-z_$][\w$]*)\s*=", re.MULTILINE)
_JS_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*$")
_STORAGE_USE = re.compile(r"\bsys\.storage\.")
_ENCRYPTED_STORAGE = re.compile(r"\b(encrypt|decrypt)\s*:\s*true\b")


class SlingrAdapter:
    format: ClassVar[ModuleFormat] = ModuleFormat.slingr

    def detect(self, files: ModuleFiles) -> bool:
        if DESCRIPTOR not in files or AppmixerAdapter().detect(files):
            return False
        try:
            document = files.json(DESCRIPTOR)
        except ManifestError:
            return _has_slingr_folders(files) or _looks_like_broken_descriptor(files)
        return _is_slingr_descriptor(document)

    def parse(self, files: ModuleFiles, *, version: str | None = None) -> Manifest:
        issues = IssueCollector()
        document = files.json(DESCRIPTOR)  # unreadable: nothing else can be checked
        if not isinstance(document, dict):
            issues.add(DESCRIPTOR, "", "must be a JSON object (the package descriptor)")
            issues.raise_if_any()
        assert isinstance(document, dict)

        name = _package_name(document, issues)
        version = _version(document, version, issues)
        dependencies, platform_services = _module_dependencies(
            _dependencies(document.get("dependencies"), issues)
        )
        events = _events(document.get("events"), issues)
        config = _configuration(document.get("configuration"), "/configuration", issues)
        extra = {k: v for k, v in document.items() if k not in _TOP_LEVEL_KEYS}
        if "userConfiguration" in document:
            user = _configuration(document["userConfiguration"], "/userConfiguration", issues)
            extra["userConfiguration"] = user.model_dump(by_alias=True, mode="json")
        contents = _metadata(files, document.get("metadata"), document.get("name"), issues)
        if "configurationBuilder" in document:
            _configuration_builder(files, document["configurationBuilder"], contents, issues)
        issues.raise_if_any()
        assert name is not None
        assert version is not None

        try:
            return Manifest(
                name=name,
                version=version,
                format=ModuleFormat.slingr,
                kind=ModuleKind.package,
                label=_optional_str(document, "label"),
                description=_optional_str(document, "description"),
                dependencies=dependencies,
                requires=_requirements(files, contents, platform_services),
                config=config,
                components=contents.components,
                events=events,
                files=contents.files,
                extra=extra,
            )
        except ValidationError as exc:
            for error in exc.errors():
                location = "/".join(str(part) for part in error["loc"])
                issues.add(DESCRIPTOR, "", f"{location}: {error['msg']}")
            issues.raise_if_any()
            raise


# --- detection ------------------------------------------------------------------------------------


def _is_slingr_descriptor(document: Any) -> bool:
    if not isinstance(document, dict) or isinstance(document.get("dependencies"), dict):
        return False
    return any(isinstance(document.get(key), list) for key in _SLINGR_LISTS)


def _has_slingr_folders(files: ModuleFiles) -> bool:
    for path in files:
        parts = path.split("/")
        if len(parts) == 3 and (parts[0], parts[2]) in (
            ("flowSteps", "step.json"),
            ("uiServices", "uiService.json"),
        ):
            return True
    return False


def _looks_like_broken_descriptor(files: ModuleFiles) -> bool:
    try:
        return bool(_BROKEN_DESCRIPTOR_HINT.search(files.text(DESCRIPTOR)))
    except ManifestError:
        return False


# --- helpers --------------------------------------------------------------------------------------


def _optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) and value else None


def _text(files: ModuleFiles, path: str, issues: IssueCollector) -> str:
    try:
        return files.text(path)
    except ManifestError as exc:
        issues.issues.extend(exc.issues)
        return ""


def _list(value: Any, pointer: str, what: str, issues: IssueCollector) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    issues.add(DESCRIPTOR, pointer, f"must be a list of {what}")
    return []


def _condition(value: Any, pointer: str, issues: IssueCollector) -> bool | str | None:
    """``required``/``visibility``: a boolean, or a reference/expression the console evaluates."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        # Slingr's own files write booleans as strings too ("required": "true").
        return {"true": True, "false": False}.get(text, text)
    issues.add(
        DESCRIPTOR,
        pointer,
        f"is {value!r}; write true, false, a reference like @config.otherField or an expression "
        "like config.otherField && utils.isPlaceHolder(config.anotherValue)",
    )
    return None


# --- descriptor basics ----------------------------------------------------------------------------


def _package_name(document: dict[str, Any], issues: IssueCollector) -> str | None:
    raw = document.get("name")
    if not isinstance(raw, str) or not raw.strip():
        issues.add(DESCRIPTOR, "/name", "is missing; add the package's internal name, e.g. my-pkg")
        return None
    name = module_name(raw)
    if not re.match(MODULE_NAME_PATTERN, name):
        issues.add(
            DESCRIPTOR,
            "/name",
            f"is {raw!r}; use lower case letters, digits and dashes, e.g. my-package",
        )
        return None
    return name


def _version(document: dict[str, Any], requested: str | None, issues: IssueCollector) -> str | None:
    raw = document.get("version")
    written: str | None = None
    if raw is not None:
        if not isinstance(raw, str):
            issues.add(
                DESCRIPTOR, "/version", f"is {raw!r}; write the version as vX.Y.Z, e.g. v1.0.0"
            )
            return None
        try:
            written = normalize_version(raw)
        except InvalidVersion as exc:
            issues.add(DESCRIPTOR, "/version", f"{exc}; Slingr writes vX.Y.Z, e.g. v1.0.0")
            return None
    return module_version(
        written,
        requested,
        DESCRIPTOR,
        "/version",
        issues,
        carries_none="Slingr packages carry no version: their releases are git tags",
    )


#: Slingr services the platform provides itself: every official package declares
#: ``{"type": "service", "name": "http", …}`` for ``dependencies.http``, which the JavaScript runner
#: gives every package. As a module dependency it would name a module nobody publishes, and the
#: installer would refuse every such package (409 unresolvable-dependency).
PLATFORM_SERVICES = frozenset({"http"})
#: ``requires.extra`` key of the platform services a package declares, with their ranges.
PLATFORM_SERVICES_KEY = "slingr_services"


def _dependencies(raw: Any, issues: IssueCollector) -> list[Dependency]:
    """Every dependency as declared, platform services included (:func:`_module_dependencies`
    takes those out)."""
    dependencies: list[Dependency] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(_list(raw, "/dependencies", "dependencies", issues)):
        pointer = f"/dependencies/{index}"
        if not isinstance(item, dict):
            issues.add(DESCRIPTOR, pointer, "must be an object with type, name and version")
            continue
        kind = _DEPENDENCY_TYPES.get(str(item.get("type")))
        if kind is None:
            issues.add(
                DESCRIPTOR,
                f"{pointer}/type",
                f"is {item.get('type')!r}; a dependency is of type service or package",
            )
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            issues.add(DESCRIPTOR, f"{pointer}/name", "is missing; name the service or package")
            name = None
        version_range = _dependency_range(item.get("version"), f"{pointer}/version", issues)
        if kind is None or name is None or version_range is None:
            continue
        if kind == "module":
            name = module_name(name)
        if (kind, name) in seen:
            issues.add(DESCRIPTOR, f"{pointer}/name", f"{name!r} is listed twice")
            continue
        seen.add((kind, name))
        dependencies.append(Dependency(name=name, range=version_range, type=kind))
    return dependencies


def _module_dependencies(
    declared: list[Dependency],
) -> tuple[list[Dependency], dict[str, str]]:
    """(what the installer resolves, the platform services and their ranges)."""
    provided = {
        dependency.name: dependency.range
        for dependency in declared
        if dependency.type == "service" and dependency.name in PLATFORM_SERVICES
    }
    return [d for d in declared if d.name not in provided or d.type != "service"], provided


def _dependency_range(raw: Any, pointer: str, issues: IssueCollector) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        issues.add(DESCRIPTOR, pointer, "is missing; write vX.Y.Z (fixed), ^vX.Y.Z or ~vX.Y.Z")
        return None
    try:
        return normalize_range(raw)
    except InvalidVersion as exc:
        issues.add(
            DESCRIPTOR,
            pointer,
            f"{exc}; Slingr writes vX.Y.Z (fixed), ^vX.Y.Z (compatible) or ~vX.Y.Z (bug fixes)",
        )
        return None


def _events(raw: Any, issues: IssueCollector) -> list[EventSpec]:
    events: list[EventSpec] = []
    for index, item in enumerate(_list(raw, "/events", "events", issues)):
        pointer = f"/events/{index}"
        if not isinstance(item, dict):
            issues.add(DESCRIPTOR, pointer, "must be an object with label, name and description")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name:
            issues.add(DESCRIPTOR, f"{pointer}/name", "is missing; code triggers events by name")
            continue
        if any(event.name == name for event in events):
            issues.add(DESCRIPTOR, f"{pointer}/name", f"event {name!r} is declared twice")
            continue
        events.append(
            EventSpec(
                name=name,
                label=_optional_str(item, "label"),
                description=_optional_str(item, "description"),
                extra={k: v for k, v in item.items() if k not in ("name", "label", "description")},
            )
        )
    return events


# --- configuration --------------------------------------------------------------------------------


def _configuration(raw: Any, pointer: str, issues: IssueCollector) -> ConfigSpec:
    fields = _config_fields(raw, pointer, issues)
    schema = {"$schema": JSON_SCHEMA_DIALECT, **_object_schema(fields)}
    return ConfigSpec(json_schema=schema, fields=fields)


def _config_fields(raw: Any, pointer: str, issues: IssueCollector) -> list[ConfigField]:
    fields: list[ConfigField] = []
    for index, item in enumerate(_list(raw, pointer, "configuration fields", issues)):
        here = f"{pointer}/{index}"
        config_field = _config_field(item, here, issues)
        if config_field is None:
            continue
        if any(existing.name == config_field.name for existing in fields):
            issues.add(DESCRIPTOR, f"{here}/name", f"field {config_field.name!r} is declared twice")
            continue
        fields.append(config_field)
    return fields


def _config_field(item: Any, pointer: str, issues: IssueCollector) -> ConfigField | None:
    if not isinstance(item, dict):
        issues.add(DESCRIPTOR, pointer, "must be a field object with label, name and type")
        return None
    name, kind = item.get("name"), item.get("type")
    if not isinstance(name, str) or not name:
        issues.add(
            DESCRIPTOR, f"{pointer}/name", "is missing; it is the key the value is kept under"
        )
    if not isinstance(kind, str) or not kind:
        issues.add(DESCRIPTOR, f"{pointer}/type", "is missing; e.g. text, password, dropDown")
    options = item.get("typeOptions", {})
    if not isinstance(options, dict):
        issues.add(DESCRIPTOR, f"{pointer}/typeOptions", "must be an object")
        options = {}
    if not isinstance(name, str) or not name or not isinstance(kind, str) or not kind:
        return None
    if item.get("showLabel", True) is not False and not _optional_str(item, "label"):
        issues.add(
            DESCRIPTOR, f"{pointer}/label", "is required unless showLabel is false; add a label"
        )

    multiple = _multiplicity(item.get("multiplicity"), f"{pointer}/multiplicity", issues)
    if kind == "button" and multiple:
        issues.add(DESCRIPTOR, f"{pointer}/multiplicity", "a button does not allow many; remove it")
    _check_type_options(kind, options, f"{pointer}/typeOptions", issues)

    remaining = dict(options)
    extra = {k: v for k, v in item.items() if k not in _FIELD_KEYS}
    # The field's help text (slack, github, quickbooks, mailchimp write one); an info field's
    # value is its text and wins.
    description = _optional_str(item, "description")
    if "description" in item and description is None:
        extra["description"] = item["description"]
    nested: list[ConfigField] = []
    choices: list[ConfigOption] = []
    allow_custom = False
    if kind == "fieldsGroup":
        nested = _config_fields(
            remaining.pop("fields", []), f"{pointer}/typeOptions/fields", issues
        )
    if kind in ("dropDown", "buttonsGroup"):
        choices = _possible_values(
            remaining.pop("possibleValues", []), f"{pointer}/typeOptions/possibleValues", issues
        )
        allow_custom = remaining.pop("allowCustom", False) is True
    if kind == "info" and isinstance(item.get("value"), str):
        if description is not None:
            extra["description"] = description
        description = extra.pop("value")
    extra.update(remaining)

    secret = kind == "password"
    default = item.get("defaultValue")
    if kind == "text" and isinstance(default, int | float) and not isinstance(default, bool):
        # quickbooks: {"type": "text", "defaultValue": 69, "typeOptions": {"validation":
        # "number"}}. A text field holds text: the console shows and stores the number's text,
        # as a step's text input takes it (inputs.py), so the default is published as "69".
        default = str(default)
    config_field = ConfigField(
        name=name,
        type=kind,
        label=_optional_str(item, "label"),
        description=description,
        required=_condition(item.get("required", False), f"{pointer}/required", issues) or False,
        visibility=_visibility(item, pointer, issues),
        default=default,
        secret=secret,
        multiple=multiple,
        options=choices,
        allow_custom=allow_custom,
        fields=nested,
        extra=extra,
    )
    _check_default(config_field, f"{pointer}/defaultValue", issues)
    if secret:
        # Checked above, never published: anyone who can read the module reads its manifest.
        config_field.default = None
    return config_field


def _visibility(item: dict[str, Any], pointer: str, issues: IssueCollector) -> bool | str:
    value = _condition(item.get("visibility", True), f"{pointer}/visibility", issues)
    return True if value is None else value


def _multiplicity(raw: Any, pointer: str, issues: IssueCollector) -> bool:
    # The document writes "many" everywhere but also says "multiplicity is set to true" once.
    if raw in (None, "one", False):
        return False
    if raw in ("many", True):
        return True
    issues.add(DESCRIPTOR, pointer, f"is {raw!r}; write one (the default) or many")
    return False


def _check_type_options(
    kind: str, options: dict[str, Any], pointer: str, issues: IssueCollector
) -> None:
    for key, allowed in _ALLOWED_OPTIONS.get(kind, {}).items():
        if key in options and options[key] not in allowed:
            issues.add(
                DESCRIPTOR,
                f"{pointer}/{key}",
                f"is {options[key]!r}; a {kind} field's {key} is one of {', '.join(allowed)}",
            )
    rows = options.get("numberOfRows")
    if kind == "text" and rows is not None and not (isinstance(rows, int) and rows > 0):
        issues.add(DESCRIPTOR, f"{pointer}/numberOfRows", f"is {rows!r}; write a positive number")


def _possible_values(raw: Any, pointer: str, issues: IssueCollector) -> list[ConfigOption]:
    if not isinstance(raw, list):
        issues.add(DESCRIPTOR, pointer, 'must be a list of {"label", "name"} objects')
        return []
    choices: list[ConfigOption] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            issues.add(
                DESCRIPTOR, f"{pointer}/{index}", "needs a name (the stored value) and a label"
            )
            continue
        choices.append(ConfigOption(value=item["name"], label=_optional_str(item, "label")))
    return choices


def _check_default(config_field: ConfigField, pointer: str, issues: IssueCollector) -> None:
    schema = _field_schema(config_field)
    if config_field.default is None or schema is None:
        return
    error = next(iter(Draft202012Validator(schema).iter_errors(config_field.default)), None)
    if error is not None:
        issues.add(
            DESCRIPTOR,
            pointer,
            f"{config_field.default!r} is not a value this {config_field.type} field accepts "
            f"({error.message}); use one of its values or a ${{PLACEHOLDER}} where allowed",
        )


def _object_schema(fields: list[ConfigField]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for config_field in fields:
        schema = _field_schema(config_field)
        if schema is None:
            continue
        properties[config_field.name] = schema
        # Only unconditional requirements fit JSON Schema; expressions are evaluated by the UI.
        required_here = config_field.required is True or (
            config_field.type == "fieldsGroup" and bool(schema.get("required"))
        )
        if required_here and config_field.visibility is True:
            required.append(config_field.name)
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _field_schema(config_field: ConfigField) -> dict[str, Any] | None:
    """The JSON Schema of the value a field stores, or None when it stores nothing."""
    if config_field.type in _NOT_STORED:
        return None
    schema = _value_schema(config_field)
    if config_field.type == "fieldsGroup" and not schema["properties"]:
        return None  # a group of labels and buttons stores nothing either
    if config_field.multiple:
        schema = {"type": "array", "items": schema}
    if config_field.label:
        schema["title"] = config_field.label
    if config_field.description:
        schema["description"] = config_field.description
    if config_field.default is not None:
        schema["default"] = config_field.default
    if config_field.secret:
        schema["writeOnly"] = True
    return schema


def _value_schema(config_field: ConfigField) -> dict[str, Any]:
    placeholder = {"type": "string", "pattern": PLACEHOLDER_PATTERN}
    kind = config_field.type
    if kind == "text":
        validation = config_field.extra.get("validation")
        if validation in _TEXT_FORMATS:
            return {"anyOf": [{"type": "string", "format": _TEXT_FORMATS[validation]}, placeholder]}
        if validation == "number":
            # The value is still stored as a string: a number or a placeholder.
            return {"type": "string", "pattern": r"^(-?[0-9]+(\.[0-9]+)?|\$\{[^}]+\})$"}
        return {"type": "string"}
    if kind == "password":
        return {"type": "string"}
    if kind == "toggle":
        return {"type": "boolean"}
    if kind in ("dropDown", "buttonsGroup"):
        choices = (
            {"enum": [option.value for option in config_field.options]}
            if config_field.options
            else {"type": "string"}
        )
        # A custom value is any text the user types, a ${PLACEHOLDER} included.
        return {"anyOf": [choices, {"type": "string"}]} if config_field.allow_custom else choices
    if kind == "fieldsGroup":
        return _object_schema(config_field.fields)
    return _typed_value_schema(kind, [])


def _typed_value_schema(kind: str, url_values: list[str]) -> dict[str, Any]:
    """The value schema of the types configuration fields and flow step inputs share; ``{}``
    (any value: the console decides) for a type the documentation does not describe."""
    if kind == "keyValue":
        # The console stores an object; steps also take Slingr's "key=value,…" text.
        return {
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "string"}},
                {"type": "string", "pattern": r"^([^=,]+=[^,]*)?(,[^=,]+=[^,]*)*$"},
            ]
        }
    if kind == "urlParams":
        url_value: dict[str, Any] = {"type": "string"}
        if url_values:
            url_value["enum"] = url_values
        return {
            "type": "object",
            "properties": {
                # "METHOD /path/{variable}", and the path variables' values in order.
                "urlValue": url_value,
                "paramsValue": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["urlValue"],
        }
    if kind == "json":
        return {"type": ["object", "array", "string"]}  # a string holds JSON text
    if kind == "script":
        return {"type": "string", "contentMediaType": "application/javascript"}
    if kind.startswith("entity"):
        # entity, entityField, entityEvent …: the id or name of that part of the app.
        return {"type": "string", "format": "slingr-" + _kebab(kind)}
    return {}


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()


# --- configuration builder -----------------------------------------------------------------------

_BUILDER_PATH = re.compile(r"^[^()\s]+$")
_BUILDER_BINDING = re.compile(
    r"\b(?:let|var|const|function)\s+configurationBuilder\b|^\s*configurationBuilder\s*=",
    re.MULTILINE,
)


def _configuration_builder(
    files: ModuleFiles, raw: Any, contents: _Contents, issues: IssueCollector
) -> None:
    """``configurationBuilder``: a function's source, or (as Slingr's own packages and its
    skeleton write it) the path of a package file declaring ``configurationBuilder``; that file
    is listed (role ``configurationBuilder``) and checked here, the runner runs it."""
    pointer = "/configurationBuilder"
    if not isinstance(raw, str) or not raw.strip():
        issues.add(
            DESCRIPTOR,
            pointer,
            f"is {raw!r}; write the path of the file declaring it (/configurationBuilder.js) "
            'or a function\'s source ("function (config) { … return config; }")',
        )
        return
    written = raw.strip()
    if not _BUILDER_PATH.match(written) or "=>" in written:
        return  # a function's source, evaluated by the runner
    target = _resolve(files, written, pointer, issues)
    if target is None:
        return
    if target not in files or not target.endswith(".js"):
        issues.add(DESCRIPTOR, pointer, f"{written!r} must name a JavaScript (.js) file")
        return
    if not _BUILDER_BINDING.search(_text(files, target, issues)):
        issues.add(
            target,
            "",
            "does not declare configurationBuilder; add "
            "let configurationBuilder = function (config) { … return config; }",
        )
        return
    contents.files.append(
        ModuleFile(role="configurationBuilder", path=target, name="configurationBuilder")
    )
    contents.code.append(target)


# --- metadata: scripts, listeners, flow steps, UI services ----------------------------------------


@dataclass
class _Contents:
    files: list[ModuleFile] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    #: JavaScript files that run on the server (scripts, listeners, flow steps).
    code: list[str] = field(default_factory=list)


def _metadata(files: ModuleFiles, raw: Any, package: Any, issues: IssueCollector) -> _Contents:
    contents = _Contents()
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(_list(raw, "/metadata", "metadata entries", issues)):
        pointer = f"/metadata/{index}"
        if not isinstance(item, dict):
            issues.add(DESCRIPTOR, pointer, "must be an object with type and path")
            continue
        kind, path = item.get("type"), item.get("path")
        if kind not in _METADATA_TYPES:
            issues.add(
                DESCRIPTOR,
                f"{pointer}/type",
                f"is {kind!r}; metadata is of type {', '.join(_METADATA_TYPES)}",
            )
            continue
        if not isinstance(path, str) or not path.strip("/ "):
            issues.add(DESCRIPTOR, f"{pointer}/path", "is missing; e.g. /scripts/functions.js")
            continue
        namespace = item.get("namespace")
        if namespace is not None and not (
            isinstance(namespace, str) and _JS_IDENTIFIER.match(namespace)
        ):
            issues.add(
                DESCRIPTOR,
                f"{pointer}/namespace",
                f"is {namespace!r}; a namespace is a JavaScript identifier (letters, digits, _ "
                "and $, not starting with a digit), e.g. utils: code calls "
                "pkg.<package>.<namespace>.<function>",
            )
            continue
        target = _resolve(files, path, f"{pointer}/path", issues)
        if target is None:
            continue
        if (kind, target) in seen:
            issues.add(DESCRIPTOR, f"{pointer}/path", f"{path!r} is listed twice")
            continue
        seen.add((kind, target))
        if kind in ("script", "listener"):
            scope = _Scope(package if isinstance(package, str) else None, namespace)
            _code_files(files, kind, target, f"{pointer}/path", scope, contents, issues)
        elif kind == "flowStep":
            _flow_step(files, _folder_of(files, target), f"{pointer}/path", contents, issues)
        else:
            _ui_service(files, _folder_of(files, target), f"{pointer}/path", contents, issues)
    return contents


def _resolve(files: ModuleFiles, path: str, pointer: str, issues: IssueCollector) -> str | None:
    """The archive file or folder a metadata path names (paths are relative to the package)."""
    relative = posixpath.normpath(path.strip().lstrip("/"))
    if relative.startswith("..") or relative == ".":
        issues.add(DESCRIPTOR, pointer, f"{path!r} points outside the package")
        return None
    if relative in files or any(p.startswith(relative + "/") for p in files):
        return relative
    hint = files.find(relative)
    issues.add(
        DESCRIPTOR,
        pointer,
        f"{path!r} names no file or folder in the archive; add it or fix the path"
        + (f" (did you mean /{hint}? paths are case-sensitive)" if hint else ""),
    )
    return None


def _folder_of(files: ModuleFiles, target: str) -> str:
    return posixpath.dirname(target) if target in files else target


@dataclass(frozen=True)
class _Scope:
    """Where a metadata entry's code lives: ``pkg.<package>.<namespace>``."""

    package: str | None
    namespace: str | None

    def describe(self, kind: str, text: str) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.namespace is not None:
            extra["namespace"] = self.namespace
        if kind == "listener":
            extra["listeners"] = _LISTENER_NAME.findall(text)
            return extra
        extra["functions"] = _EXPORTED_FUNCTION.findall(text)
        if self.package is not None:
            parts = ["pkg", self.package] + ([self.namespace] if self.namespace else [])
            extra["address"] = ".".join(parts)
        return extra


def _code_files(
    files: ModuleFiles,
    kind: str,
    target: str,
    pointer: str,
    scope: _Scope,
    contents: _Contents,
    issues: IssueCollector,
) -> None:
    if target in files:
        paths = [target]
        if not target.endswith(".js"):
            issues.add(DESCRIPTOR, pointer, f"{target} must be a JavaScript (.js) file")
            return
    else:
        paths = sorted(p for p in files if p.startswith(target + "/") and p.endswith(".js"))
        if not paths:
            issues.add(DESCRIPTOR, pointer, f"folder {target} holds no .js file; add the {kind}s")
            return
    for path in paths:
        extra = scope.describe(kind, _text(files, path, issues))
        name = posixpath.splitext(posixpath.basename(path))[0]
        contents.files.append(ModuleFile(role=kind, path=path, name=name, extra=extra))
        contents.code.append(path)


def _flow_step(
    files: ModuleFiles, folder: str, pointer: str, contents: _Contents, issues: IssueCollector
) -> None:
    descriptor, code, icon = (f"{folder}/{n}" for n in ("step.json", "step.js", "icon.png"))
    missing = [p for p in (descriptor, code) if p not in files]
    if missing:
        issues.add(
            DESCRIPTOR,
            pointer,
            f"flow step {folder} lacks {', '.join(missing)}; a flow step needs step.json "
            "and step.js (and may have an 18x18 icon.png)",
        )
    # Slingr's docs ask for an icon, but its flow editor shows a default one without it, and
    # official packages (pandadoc, github) ship steps that have none: only a present icon is checked.
    if icon not in files:
        missing.append(icon)
    if descriptor in missing:
        return
    step = json_object(files, descriptor, issues)
    if step is None:
        return
    name = step.get("name")
    if not isinstance(name, str) or not name:
        issues.add(descriptor, "/name", "is missing; name the step as step.js defines it")
        return
    if code not in missing and not re.search(
        rf"""\bstep(\.{re.escape(name)}\b|\[\s*['"]{re.escape(name)}['"]\s*\])\s*=""",
        _text(files, code, issues),
    ):
        issues.add(
            code, "", f"does not define step.{name}; add step.{name} = function (inputs) {{ … }}"
        )
    if icon not in missing:
        _check_icon(files, icon, issues)
    if any(component.name == name for component in contents.components):
        issues.add(descriptor, "/name", f"another flow step is also named {name!r}")
        return

    in_port = _step_port("in", step.get("inputs"), descriptor, "/inputs", issues)
    out_port = _step_port("out", step.get("outputs"), descriptor, "/outputs", issues)
    mapped = ("name", "label", "description", "inputs", "outputs")
    contents.components.append(
        Component(
            name=name,
            role=ComponentRole.action,
            label=_optional_str(step, "label"),
            description=_optional_str(step, "description"),
            icon=icon if icon not in missing else None,
            in_ports=[in_port],
            out_ports=[out_port],
            executor=Executor(type=ExecutorType.js, entrypoint=code),
            extra={k: v for k, v in step.items() if k not in mapped},
        )
    )
    contents.files.append(
        ModuleFile(role="flowStep", path=code, name=name, extra={"descriptor": descriptor})
    )
    contents.code.append(code)


def _check_icon(files: ModuleFiles, icon: str, issues: IssueCollector) -> None:
    data = files[icon]
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 24:
        issues.add(icon, "", "is not a PNG image; the flow editor needs an 18x18 PNG")
        return
    # The IHDR chunk always comes first: width and height are its first two big-endian ints.
    size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    if size != _STEP_ICON_SIZE:
        issues.add(icon, "", f"is {size[0]}x{size[1]} pixels; the flow editor needs 18x18")


def _step_port(name: str, raw: Any, path: str, pointer: str, issues: IssueCollector) -> Port:
    definitions = raw if isinstance(raw, list) else []
    if raw is not None and not isinstance(raw, list):
        issues.add(path, pointer, "must be a list of {label, name, type} objects")
    properties: dict[str, Any] = {}
    required: list[str] = []
    choices: list[dict[str, Any]] = []
    published: list[Any] = []
    for index, item in enumerate(definitions):
        published.append(item)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            issues.add(path, f"{pointer}/{index}", "needs a name (and a label and type)")
            continue
        properties[item["name"]] = _step_value_schema(item, path, f"{pointer}/{index}", issues)
        if item.get("type") == "password":
            # A password input's default is never published, not even in the raw definitions.
            published[-1] = {k: v for k, v in item.items() if k != "defaultValue"}
        choices.append({"label": item.get("label", item["name"]), "value": item["name"]})
        if item.get("required") in (True, "true"):
            required.append(item["name"])
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return Port(
        name=name,
        json_schema=schema,
        # Out-port options list what later steps can pick from the step's result.
        options=choices if name == "out" else [],
        extra={"fields": published},
    )


_CHOICE_TYPES = ("dropDown", "choice", "buttonsGroup")


def _step_value_schema(
    item: dict[str, Any], path: str, pointer: str, issues: IssueCollector
) -> dict[str, Any]:
    kind = item.get("type")
    # Slingr's steps write the possible values under typeOptions, or under options (urlParams).
    values: list[Any] = []
    custom = False
    for key in ("typeOptions", "options"):
        holder = item.get(key)
        if isinstance(holder, dict) and isinstance(holder.get("possibleValues"), list):
            values = holder["possibleValues"]
            custom = holder.get("allowCustom") in (True, "true")
            break
    schema: dict[str, Any]
    if kind in _CHOICE_TYPES and values:
        names = [
            v["name"] for v in values if isinstance(v, dict) and isinstance(v.get("name"), str)
        ]
        schema = {"enum": names}
        if custom:
            schema = {"anyOf": [schema, {"type": "string"}]}
    elif kind == "password":
        schema = {"type": "string", "writeOnly": True}
    elif kind == "urlParams":
        labels = [
            v["label"] for v in values if isinstance(v, dict) and isinstance(v.get("label"), str)
        ]
        schema = _typed_value_schema("urlParams", labels)
    elif isinstance(kind, str) and kind in _STEP_TYPES:
        schema = dict(_STEP_TYPES[kind])
    else:
        schema = _typed_value_schema(kind, []) if isinstance(kind, str) else {}
    if item.get("multiplicity") in ("many", True):
        schema = {"type": "array", "items": schema}
    if "defaultValue" in item and kind != "password":
        default = item["defaultValue"]
        # Slingr's own steps write a single choice as a one-element list (["regular"]).
        if isinstance(default, list) and len(default) == 1 and schema.get("type") != "array":
            default = default[0]
        # Slingr's documentation itself gives a text input a number default (2000): a scalar
        # default of a text input is text to the console.
        lenient = (
            kind == "text" and isinstance(default, int | float) and not isinstance(default, bool)
        )
        error = (
            None if lenient else next(iter(Draft202012Validator(schema).iter_errors(default)), None)
        )
        if error is not None:
            issues.add(
                path,
                f"{pointer}/defaultValue",
                f"{item['defaultValue']!r} is not a value this {kind} input accepts "
                f"({error.message}); use one of its values",
            )
        else:
            schema["default"] = default
    for source, target in (("label", "title"), ("description", "description")):
        if isinstance(item.get(source), str):
            schema[target] = item[source]
    return schema


def _ui_service(
    files: ModuleFiles, folder: str, pointer: str, contents: _Contents, issues: IssueCollector
) -> None:
    descriptor, code = f"{folder}/uiService.json", f"{folder}/uiService.js"
    missing = [p for p in (descriptor, code) if p not in files]
    if missing:
        issues.add(
            DESCRIPTOR,
            pointer,
            f"UI service {folder} lacks {', '.join(missing)}; a UI service needs uiService.json "
            "and uiService.js",
        )
        return
    config = json_object(files, descriptor, issues)
    if config is None:
        return
    _check_ui_dependencies(files, folder, descriptor, config.get("dependencies"), issues)
    name = config.get("name")
    contents.files.append(
        ModuleFile(
            role="uiService",
            path=code,
            name=name if isinstance(name, str) and name else posixpath.basename(folder),
            extra={"descriptor": descriptor, "config": config},
        )
    )


def _check_ui_dependencies(
    files: ModuleFiles, folder: str, descriptor: str, raw: Any, issues: IssueCollector
) -> None:
    """A UI service's dependencies: an external URL or a file of its folder, placed in head/bottom."""
    if raw is None:
        return
    if not isinstance(raw, list):
        issues.add(descriptor, "/dependencies", "must be a list of {file, placement, places}")
        return
    for index, item in enumerate(raw):
        pointer = f"/dependencies/{index}"
        if not isinstance(item, dict) or not isinstance(item.get("file"), str):
            issues.add(descriptor, pointer, "needs a file: an external URL or a file of the folder")
            continue
        source = item["file"]
        local = posixpath.normpath(f"{folder}/{source.lstrip('/')}")
        if not _EXTERNAL_SOURCE.match(source) and local not in files:
            issues.add(
                descriptor,
                f"{pointer}/file",
                f"{source!r} is neither a URL nor a file in the archive ({local}); add the file",
            )
        if item.get("placement", "head") not in _UI_PLACEMENTS:
            issues.add(
                descriptor,
                f"{pointer}/placement",
                f"is {item.get('placement')!r}; write {' or '.join(_UI_PLACEMENTS)}",
            )


def _requirements(
    files: ModuleFiles, contents: _Contents, platform_services: dict[str, str]
) -> Requirements:
    extra: dict[str, Any] = {PLATFORM_SERVICES_KEY: platform_services} if platform_services else {}
    users = [p for p in contents.code if _STORAGE_USE.search(files[p].decode("utf-8", "replace"))]
    if not users:
        return Requirements(extra=extra)
    encrypted = any(_ENCRYPTED_STORAGE.search(files[p].decode("utf-8", "replace")) for p in users)
    return Requirements(
        storage=[STORAGE_KIND],
        extra={**extra, "storage": {"encrypted": encrypted, "used_by": users}},
    )


__all__ = ["PLACEHOLDER_PATTERN", "SlingrAdapter"]
