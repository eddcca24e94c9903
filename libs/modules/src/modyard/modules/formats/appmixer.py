"""Appmixer connectors (seed 000 + the public layout of Appmixer connector modules).

An Appmixer module is a folder per service (``<vendor>/<service>/``) holding ``bundle.json``,
``service.json`` (or ``module.json`` per sub-module), and one folder per component,
``<module>/<Component>/component.json`` next to ``<Component>.js``. The archive may be rooted at any
of those levels, so every file is looked up by name at any depth (``node_modules`` is ignored).

Detection: at least one ``*/component.json`` plus one of ``bundle.json``, ``service.json`` or
``module.json``.

Mapping rules (format ``appmixer``, kind ``connector``):

- **Module name**: the ``vendor.service`` pair, taken from the first of ``bundle.json`` ``name``,
  ``service.json`` ``name``, the first two segments of a ``module.json`` ``name``, or of the
  components' names; lower-cased through :func:`~modyard.modules.manifest.module_name`
  (``appmixer.trello`` stays ``appmixer.trello``). Descriptors that name it must agree, and every
  component must belong to that pair.
- **Version**: ``bundle.json`` ``version`` (else ``service.json``'s, else a ``module.json``'s), SemVer.
- **Platform**: ``bundle.json`` ``engine`` (an npm range) → ``requires.platform``.
- **Changelog**: ``bundle.json`` ``changelog`` is keyed by version with a list of changes; entries
  are sorted by version. An entry is ``breaking`` when its major version is higher than the
  previous entry's (Appmixer ships incompatible changes only as a new major version, which stops
  the flows built on the old one), when a change says ``BREAKING…``/``breaking change``, or when the
  entry is written as ``{"breaking": true, "changes": [...]}``. The first entry is never breaking:
  there is nothing before it to break.
- **label/description/icon**: ``service.json``, else the only ``module.json``, else ``bundle.json``.
  Other keys of those files are kept in ``extra`` (``service``, ``modules``, ``bundle``).
- **Auth**: ``auth.js``/``quota.js`` files become ``files`` (roles ``auth``/``quota``); the auth type
  written in ``auth.js`` (``type: 'oauth2'``…) and the auth service id (``vendor:service[:module]``)
  are listed under ``extra["auth"]``. Each component's ``auth`` object is kept as is.
- **Components**: full Appmixer name (``vendor.service.module.Component``) as ``Component.name``,
  because flows refer to components by that name. The folders must match the name's last two
  segments (the engine finds a component by its name). ``trigger: true`` or ``tick: true`` (polling)
  or a ``webhook: true`` component with no ``inPorts`` is a trigger; all others are actions.
  Polling triggers get ``polling_interval_seconds`` = :data:`DEFAULT_POLLING_INTERVAL_SECONDS`
  (60 s): Appmixer ticks polling triggers on one engine-wide, operator-configured period, and
  component.json cannot state its own, so a default is assumed.
  ``inPorts``/``outPorts`` (strings or objects) → ports with their ``schema``, ``options``; an
  in-port's ``inspector`` and any other port key go to ``Port.extra``. A port with options but no
  schema gets one derived from them (option values are dotted paths into the message), marked
  ``extra["schema_from_options"]``. ``properties.schema`` and
  ``properties.inspector`` → ``properties_schema``/``inspector``. Schemas are checked as JSON
  Schema. ``<Component>.js`` → ``Executor(type="js")``; a missing code file is an issue.
- **npm**: ``package.json`` dependencies are npm libraries the engine installs, not modyard
  modules, so they stay in ``extra["npm"]`` keyed by file.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from itertools import pairwise
from typing import Any, ClassVar

from jsonschema import Draft7Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import ValidationError

from modyard.common.semver import InvalidVersion, normalize_range, parse_version
from modyard.modules.formats.base import (
    IssueCollector,
    ManifestError,
    ModuleFiles,
    json_object,
    json_pointer,
)
from modyard.modules.manifest import (
    ChangelogEntry,
    Component,
    ComponentRole,
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

#: Appmixer ticks polling triggers on one engine-wide period that component.json cannot state; this
#: is the interval assumed for them.
DEFAULT_POLLING_INTERVAL_SECONDS = 60

BUNDLE_FILE = "bundle.json"
SERVICE_FILE = "service.json"
MODULE_FILE = "module.json"
COMPONENT_FILE = "component.json"
DESCRIPTOR_FILES = (BUNDLE_FILE, SERVICE_FILE, MODULE_FILE)

_SEGMENT = r"[A-Za-z][A-Za-z0-9_-]*"
COMPONENT_NAME = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}$")
SERVICE_NAME = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}$")
_MODULE_JSON_NAME = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}$")

# auth.js is code, not JSON: only its declared type is read, for display and for the installer.
_AUTH_TYPE = re.compile(r"""\btype\s*:\s*['"]([A-Za-z0-9_-]+)['"]""")
_BREAKING_TEXT = re.compile(r"^\s*\[?breaking\b|\bbreaking changes?\b", re.IGNORECASE)

# Keys of component.json mapped onto Component fields; anything else is kept in Component.extra.
_COMPONENT_KEYS = frozenset(
    {
        "name",
        "label",
        "description",
        "icon",
        "trigger",
        "tick",
        "webhook",
        "private",
        "auth",
        "quota",
        "inPorts",
        "outPorts",
        "properties",
    }
)
_DESCRIPTOR_KEYS = frozenset({"name", "version", "label", "description", "icon"})
_BUNDLE_KEYS = frozenset({"name", "version", "engine", "changelog"})


class AppmixerAdapter:
    format: ClassVar[ModuleFormat] = ModuleFormat.appmixer

    def detect(self, files: ModuleFiles) -> bool:
        paths = _module_paths(files)
        has_component = any(_basename(path) == COMPONENT_FILE and "/" in path for path in paths)
        return has_component and any(_basename(path) in DESCRIPTOR_FILES for path in paths)

    def parse(self, files: ModuleFiles) -> Manifest:
        issues = IssueCollector()
        paths = _module_paths(files)
        bundle_path = _shallowest(paths, BUNDLE_FILE)
        service_path = _shallowest(paths, SERVICE_FILE)
        bundle = json_object(files, bundle_path, issues) if bundle_path else None
        service = json_object(files, service_path, issues) if service_path else None
        modules = {
            path: document
            for path in paths
            if _basename(path) == MODULE_FILE
            and (document := json_object(files, path, issues)) is not None
        }
        component_paths = [p for p in paths if _basename(p) == COMPONENT_FILE and "/" in p]

        descriptors = [(bundle_path, bundle), (service_path, service), *modules.items()]
        service_id = _service_id(
            [(path, doc) for path, doc in descriptors if path is not None and doc is not None],
            issues,
        )
        if service_id is None:
            service_id = _service_id_from_components(files, component_paths)
        if service_id is None:
            issues.add(
                bundle_path or BUNDLE_FILE,
                "/name",
                "is missing; add bundle.json with the module's name as vendor.service "
                "(e.g. appmixer.trello)",
            )
        version = _version(descriptors, bundle_path, issues)
        platform = _platform(bundle_path, bundle, issues)
        changelog = _changelog(bundle_path, bundle, issues) if bundle_path and bundle else []

        components = _components(files, component_paths, service_id, issues)
        root = posixpath.dirname(bundle_path or service_path or "")
        module_files, auth = _support_files(files, paths, root, service_id)
        issues.raise_if_any()
        assert service_id is not None
        assert version is not None

        about = service or (next(iter(modules.values())) if len(modules) == 1 else None) or bundle
        try:
            return Manifest(
                name=module_name(service_id),
                version=version,
                format=ModuleFormat.appmixer,
                kind=ModuleKind.connector,
                label=_optional_str(about, "label"),
                description=_optional_str(about, "description"),
                icon=_optional_str(about, "icon"),
                changelog=changelog,
                requires=Requirements(platform=platform),
                components=components,
                files=module_files,
                extra=_manifest_extra(files, paths, bundle, service, modules, auth),
            )
        except ValidationError as exc:
            for error in exc.errors():
                location = "/".join(str(part) for part in error["loc"])
                issues.add(bundle_path or BUNDLE_FILE, "", f"{location}: {error['msg']}")
            issues.raise_if_any()
            raise


# --- files and JSON -------------------------------------------------------------------------------


def _module_paths(files: ModuleFiles) -> list[str]:
    """The archive's paths without vendored npm packages, whose files may share our names."""
    return sorted(path for path in files if "node_modules" not in path.split("/"))


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _shallowest(paths: Iterable[str], name: str) -> str | None:
    found = [path for path in paths if _basename(path) == name]
    return min(found, key=lambda path: (path.count("/"), path)) if found else None


def _optional_str(document: dict[str, Any] | None, key: str) -> str | None:
    value = document.get(key) if document else None
    return value if isinstance(value, str) and value else None


# --- module-level documents -----------------------------------------------------------------------


def _service_id(
    descriptors: list[tuple[str, dict[str, Any]]], issues: IssueCollector
) -> str | None:
    """``vendor.service`` as the descriptors spell it; when several name it, they must agree."""
    found: tuple[str, str] | None = None
    for path, document in descriptors:
        if "name" not in document:
            continue
        name = document["name"]
        is_module = _basename(path) == MODULE_FILE
        pattern = _MODULE_JSON_NAME if is_module else SERVICE_NAME
        if not isinstance(name, str) or not pattern.match(name):
            shape = (
                "vendor.service.module (e.g. appmixer.google.gmail)"
                if is_module
                else ("vendor.service (e.g. appmixer.trello)")
            )
            issues.add(path, "/name", f"is {name!r}; {_basename(path)} names {shape}")
            continue
        service_id = name.rsplit(".", 1)[0] if is_module else name
        if found is None:
            found = (service_id, path)
        elif service_id != found[0]:
            issues.add(
                path,
                "/name",
                f"is {name!r}, but {found[1]} names the module {found[0]}; make them agree",
            )
    return found[0] if found else None


def _service_id_from_components(files: ModuleFiles, component_paths: list[str]) -> str | None:
    # Last resort when no descriptor names the module: the components' common prefix. Errors in
    # these files are reported when the components themselves are parsed.
    for path in component_paths:
        try:
            document = files.json(path)
        except ManifestError:
            continue
        name = document.get("name") if isinstance(document, dict) else None
        if isinstance(name, str) and COMPONENT_NAME.match(name):
            return ".".join(name.split(".")[:2])
    return None


def _version(
    candidates: list[tuple[str | None, dict[str, Any] | None]],
    bundle_path: str | None,
    issues: IssueCollector,
) -> str | None:
    """The first version the descriptors state (bundle.json, service.json, then module.json)."""
    for path, document in candidates:
        if path is not None and document is not None and "version" in document:
            return _semver(document["version"], path, "/version", issues)
    if any(path is not None and document is None for path, document in candidates):
        return None  # a descriptor is unreadable; that issue is already recorded
    if bundle_path is None:
        issues.add(
            BUNDLE_FILE, "", "is missing; add bundle.json with the module's name and version"
        )
    else:
        issues.add(
            bundle_path, "/version", 'is missing; add the module\'s SemVer version, e.g. "1.0.0"'
        )
    return None


def _semver(value: Any, path: str, pointer: str, issues: IssueCollector) -> str | None:
    if not isinstance(value, str):
        issues.add(path, pointer, f'is {value!r}; write the version as a string, e.g. "1.0.0"')
        return None
    try:
        return str(parse_version(value))
    except InvalidVersion as exc:
        issues.add(path, pointer, str(exc))
        return None


def _platform(
    bundle_path: str | None, bundle: dict[str, Any] | None, issues: IssueCollector
) -> str | None:
    if not bundle_path or not bundle or bundle.get("engine") is None:
        return None
    engine = bundle["engine"]
    if not isinstance(engine, str):
        issues.add(bundle_path, "/engine", f'is {engine!r}; write an npm range such as ">=6.0.0"')
        return None
    try:
        return normalize_range(engine)
    except InvalidVersion as exc:
        issues.add(bundle_path, "/engine", str(exc))
        return None


def _changelog(path: str, bundle: dict[str, Any], issues: IssueCollector) -> list[ChangelogEntry]:
    raw = bundle.get("changelog")
    if raw is None:
        return []
    if not isinstance(raw, dict):
        issues.add(
            path,
            "/changelog",
            'must be an object keyed by version, e.g. {"1.0.0": ["Initial version"]}',
        )
        return []
    entries: list[ChangelogEntry] = []
    for key, value in raw.items():
        pointer = json_pointer("changelog", key)
        version = _semver(key, path, pointer, issues)
        if version is None:
            continue
        changes, flagged = _changelog_changes(value, path, pointer, issues)
        entries.append(ChangelogEntry(version=version, changes=changes, breaking=flagged))
    entries.sort(key=lambda entry: parse_version(entry.version))
    # A new major version is Appmixer's way of shipping incompatible changes.
    for previous, entry in pairwise(entries):
        if parse_version(entry.version).major > parse_version(previous.version).major:
            entry.breaking = True
    return entries


def _changelog_changes(
    value: Any, path: str, pointer: str, issues: IssueCollector
) -> tuple[list[str], bool]:
    """The entry's changes and whether it says itself that it breaks compatibility."""
    flagged = False
    if isinstance(value, dict):
        flagged = value.get("breaking") is True
        value = value.get("changes", [])
        pointer += "/changes"
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        issues.add(path, pointer, "must be a list of changes (strings)")
        return [], flagged
    return value, flagged or any(_BREAKING_TEXT.search(change) for change in value)


def _support_files(
    files: ModuleFiles, paths: list[str], root: str, service_id: str | None
) -> tuple[list[ModuleFile], list[dict[str, Any]]]:
    """``auth.js``/``quota.js`` as module files, and what each auth file declares."""
    module_files: list[ModuleFile] = []
    auth: list[dict[str, Any]] = []
    for path in paths:
        role = {"auth.js": "auth", "quota.js": "quota"}.get(_basename(path))
        if role is None:
            continue
        service = _auth_service(path, root, service_id)
        module_files.append(ModuleFile(role=role, path=path, name=service))
        if role == "auth":
            try:
                found = _AUTH_TYPE.search(files.text(path))
            except ManifestError:
                found = None
            auth.append({"path": path, "service": service, "type": found and found.group(1)})
    return module_files, auth


def _auth_service(path: str, root: str, service_id: str | None) -> str | None:
    """The id components use in ``auth.service``: ``vendor:service`` or ``vendor:service:module``."""
    if service_id is None:
        return None
    folder = posixpath.dirname(path)
    base = service_id.replace(".", ":")
    if folder == root:
        return base
    if posixpath.dirname(folder) == root:
        return f"{base}:{posixpath.basename(folder)}"
    return None


def _manifest_extra(
    files: ModuleFiles,
    paths: list[str],
    bundle: dict[str, Any] | None,
    service: dict[str, Any] | None,
    modules: dict[str, dict[str, Any]],
    auth: list[dict[str, Any]],
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if bundle and (rest := {k: v for k, v in bundle.items() if k not in _BUNDLE_KEYS}):
        extra["bundle"] = rest
    if service and (rest := {k: v for k, v in service.items() if k not in _DESCRIPTOR_KEYS}):
        extra["service"] = rest
    if modules:
        extra["modules"] = dict(modules)
    if auth:
        extra["auth"] = auth
    npm: dict[str, Any] = {}
    for path in paths:
        if _basename(path) != "package.json":
            continue
        try:
            document = files.json(path)
        except ManifestError:
            continue  # an npm manifest is not ours to judge; the engine's npm install will be
        if isinstance(document, dict) and isinstance(document.get("dependencies"), dict):
            npm[path] = document["dependencies"]
    if npm:
        extra["npm"] = npm
    return extra


# --- components -----------------------------------------------------------------------------------


def _components(
    files: ModuleFiles, paths: list[str], service_id: str | None, issues: IssueCollector
) -> list[Component]:
    components: list[Component] = []
    seen: dict[str, str] = {}
    for path in paths:
        component = _component(files, path, service_id, issues)
        if component is None:
            continue
        if component.name in seen:
            issues.add(
                path, "/name", f"{component.name!r} is also the name of {seen[component.name]}"
            )
            continue
        seen[component.name] = path
        components.append(component)
    return components


def _component(
    files: ModuleFiles, path: str, service_id: str | None, issues: IssueCollector
) -> Component | None:
    document = json_object(files, path, issues)
    if document is None:
        return None
    folder = posixpath.dirname(path)
    name = document.get("name")
    if isinstance(name, str) and COMPONENT_NAME.match(name):
        _check_component_name(name, path, service_id, issues)
        code_stem = name.rsplit(".", 1)[1]
    else:
        issues.add(
            path,
            "/name",
            f"is {name!r}; a component is named vendor.service.module.Component "
            "(e.g. appmixer.trello.list.NewCard)",
        )
        code_stem = posixpath.basename(folder)
        name = None

    code_path = f"{folder}/{code_stem}.js"
    if code_path not in files:
        issues.add(
            path,
            "/name",
            f"the component's code file {code_path} is missing; add it next to component.json "
            "(Appmixer runs <Component>.js)",
        )

    in_ports = _ports(document.get("inPorts"), path, "/inPorts", issues)
    out_ports = _ports(document.get("outPorts"), path, "/outPorts", issues)
    flags = {
        key: _flag(document, key, path, issues) for key in ("trigger", "tick", "webhook", "private")
    }
    properties = _properties(document.get("properties"), path, issues)
    auth = _mapping(document, "auth", path, issues)
    quota = _mapping(document, "quota", path, issues)
    if name is None:
        return None

    is_trigger = flags["trigger"] or flags["tick"] or (flags["webhook"] and not in_ports)
    extra = {key: value for key, value in document.items() if key not in _COMPONENT_KEYS}
    if properties.get("extra"):
        extra["properties"] = properties["extra"]
    return Component(
        name=name,
        role=ComponentRole.trigger if is_trigger else ComponentRole.action,
        label=_optional_str(document, "label"),
        description=_optional_str(document, "description"),
        icon=_optional_str(document, "icon"),
        polling_interval_seconds=DEFAULT_POLLING_INTERVAL_SECONDS if flags["tick"] else None,
        webhook=flags["webhook"],
        private=flags["private"],
        in_ports=in_ports,
        out_ports=out_ports,
        properties_schema=properties.get("schema"),
        inspector=properties.get("inspector"),
        auth=auth,
        quota=quota,
        executor=Executor(type=ExecutorType.js, entrypoint=code_path),
        extra=extra,
    )


def _check_component_name(
    name: str, path: str, service_id: str | None, issues: IssueCollector
) -> None:
    vendor, service, module, component = name.split(".")
    if service_id is not None and f"{vendor}.{service}" != service_id:
        issues.add(
            path,
            "/name",
            f"{name!r} belongs to {vendor}.{service}, but this module is {service_id}; "
            f"name it {service_id}.{module}.{component}",
        )
    # The engine finds a component by its name, so <module>/<Component>/ must match it.
    folders = posixpath.dirname(path).split("/")
    if len(folders) < 2 or folders[-2:] != [module, component]:
        issues.add(
            path,
            "/name",
            f"{name!r} must sit at {module}/{component}/component.json, not {path}; "
            "rename the folders or the component",
        )


def _flag(document: dict[str, Any], key: str, path: str, issues: IssueCollector) -> bool:
    value = document.get(key, False)
    if isinstance(value, bool):
        return value
    issues.add(path, json_pointer(key), f"is {value!r}; write true or false")
    return False


def _mapping(
    document: dict[str, Any], key: str, path: str, issues: IssueCollector
) -> dict[str, Any] | None:
    value = document.get(key)
    if value is None or isinstance(value, dict):
        return value
    issues.add(path, json_pointer(key), f"must be an object, not {type(value).__name__}")
    return None


def _properties(raw: Any, path: str, issues: IssueCollector) -> dict[str, Any]:
    """``properties`` split into its schema, its inspector and whatever else it holds."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        issues.add(path, "/properties", "must be an object with schema and inspector")
        return {}
    result: dict[str, Any] = {}
    if "schema" in raw:
        result["schema"] = _schema(raw["schema"], path, "/properties/schema", issues)
    if "inspector" in raw:
        inspector = raw["inspector"]
        if isinstance(inspector, dict):
            result["inspector"] = inspector
        else:
            issues.add(path, "/properties/inspector", 'must be an object (e.g. {"inputs": {}})')
    result["extra"] = {k: v for k, v in raw.items() if k not in ("schema", "inspector")}
    return result


def _ports(raw: Any, path: str, pointer: str, issues: IssueCollector) -> list[Port]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        issues.add(path, pointer, 'must be a list of ports (names or {"name": ...} objects)')
        return []
    ports: list[Port] = []
    for index, item in enumerate(raw):
        here = f"{pointer}/{index}"
        port = _port(item, path, here, issues)
        if port is None:
            continue
        if any(existing.name == port.name for existing in ports):
            issues.add(path, f"{here}/name", f"port {port.name!r} is declared twice")
            continue
        ports.append(port)
    return ports


def _port(item: Any, path: str, pointer: str, issues: IssueCollector) -> Port | None:
    if isinstance(item, str) and item:
        return Port(name=item)
    if not isinstance(item, dict):
        issues.add(path, pointer, "must be a port name or an object with a name")
        return None
    name = item.get("name")
    if not isinstance(name, str) or not name:
        issues.add(path, f"{pointer}/name", 'is missing; every port needs a name (e.g. "in")')
        return None
    schema = (
        _schema(item["schema"], path, f"{pointer}/schema", issues) if "schema" in item else None
    )
    options = item.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
        issues.add(path, f"{pointer}/options", 'must be a list of {"label", "value"} objects')
        options = []
    for index, option in enumerate(options):
        if "schema" in option:
            _schema(option["schema"], path, f"{pointer}/options/{index}/schema", issues)
    extra = {k: v for k, v in item.items() if k not in ("name", "label", "schema", "options")}
    if "schema" not in item and (derived := _schema_from_options(options)):
        # Out-ports usually describe their message only through options; the runtime and the
        # console still want one schema per port, so it is derived and marked as such.
        schema = derived
        extra["schema_from_options"] = True
    return Port(
        name=name,
        label=_optional_str(item, "label"),
        json_schema=schema,
        options=options,
        extra=extra,
    )


def _schema_from_options(options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An object schema whose properties are the options' values (dotted paths into the message)."""
    root: dict[str, Any] = {"type": "object", "properties": {}}
    for option in options:
        value = option.get("value")
        if not isinstance(value, str) or not value:
            continue
        node = root
        *parents, leaf = value.split(".")
        for part in parents:
            node = node["properties"].setdefault(part, {})
            node.setdefault("type", "object")
            node.setdefault("properties", {})
        described = dict(option["schema"]) if isinstance(option.get("schema"), dict) else {}
        if isinstance(option.get("label"), str):
            described.setdefault("title", option["label"])
        node["properties"].setdefault(leaf, {}).update(described)
    return root if root["properties"] else None


def _schema(raw: Any, path: str, pointer: str, issues: IssueCollector) -> dict[str, Any] | None:
    """A JSON Schema checked against its meta-schema (draft-07, as Appmixer's engine uses)."""
    if not isinstance(raw, dict):
        issues.add(path, pointer, "must be a JSON Schema object")
        return None
    try:
        validator_for(raw, default=Draft7Validator).check_schema(raw)
    except SchemaError as exc:
        issues.add(
            path,
            pointer + json_pointer(*exc.absolute_path),
            f"is not a valid JSON Schema: {exc.message}",
        )
        return None
    return raw


__all__ = ["DEFAULT_POLLING_INTERVAL_SECONDS", "AppmixerAdapter"]
