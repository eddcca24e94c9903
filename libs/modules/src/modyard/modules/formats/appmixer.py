"""Appmixer connectors (the public layout of Appmixer connector modules) → the canonical manifest.

The mapping (detection, names and layout, version, engine, changelog, components and ports, auth,
code and npm files) is specified in docs/formats/appmixer.md, its one home; each rule there has a
look-alike module in libs/modules/tests/fixtures/appmixer/. Code-level notes sit where they apply.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar

from jsonschema import Draft7Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import ValidationError

from modyard.common.json_pointer import json_pointer
from modyard.common.semver import InvalidVersion, normalize_range, parse_version, satisfies
from modyard.modules.formats.base import IssueCollector, ManifestError, ModuleFiles, json_object
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

#: The Appmixer engine level whose component contract modyard provides (context API, ports,
#: inspector, auth modules, quota, plugins, routes and jobs as in Appmixer 6.4). A bundle's
#: ``engine`` range must accept it.
APPMIXER_ENGINE_VERSION = "6.4.0"

BUNDLE_FILE = "bundle.json"
SERVICE_FILE = "service.json"
MODULE_FILE = "module.json"
COMPONENT_FILE = "component.json"
DESCRIPTOR_FILES = (BUNDLE_FILE, SERVICE_FILE, MODULE_FILE)

_SEGMENT = r"[A-Za-z][A-Za-z0-9_-]*"
COMPONENT_NAME = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}$")
SERVICE_NAME = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}$")
BUNDLE_NAME = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}(\.{_SEGMENT})?$")
_MODULE_JSON_NAME = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}$")
_AUTH_SERVICE = re.compile(rf"^{_SEGMENT}:{_SEGMENT}(:{_SEGMENT})?$")

# auth.js is code, not JSON: only its declared type is read, for display and for the installer.
_AUTH_TYPE = re.compile(r"""\btype\s*:\s*['"]([A-Za-z0-9_-]+)['"]""")
_BREAKING_TEXT = re.compile(r"^\s*\[?breaking\b|\bbreaking changes?\b", re.IGNORECASE)
# One dot-separated step of an option value: a property name, then any number of [n] / [].
_PATH_STEP = re.compile(r"^([^.\[\]]*)((?:\[\d*\])*)$")

# Files the engine loads by name, and the role they get in the manifest.
_FILE_ROLES = {
    "auth.js": "auth",
    "quota.js": "quota",
    "plugin.js": "plugin",
    "routes.js": "routes",
    "jobs.js": "jobs",
    "package.json": "npm-package",
    "package-lock.json": "npm-lock",
}
# auth.js and quota.js serve a connector or a module, never a single component.
_SERVICE_ROLES = frozenset({"auth", "quota"})
_NPM_ROLES = frozenset({"npm-package", "npm-lock"})

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


@dataclass
class _Layout:
    """Where the bundle sits in the archive, so every file can be placed at its level."""

    #: The bundle's full name: ``vendor.service`` or ``vendor.service.module``.
    name: str
    #: The folder holding bundle.json (or service.json); None when only module.json files exist.
    root: str | None
    #: Component folder → component name, filled while components are parsed.
    components: dict[str, str] = field(default_factory=dict)

    @property
    def is_single_module(self) -> bool:
        return self.name.count(".") == 2

    def relative(self, folder: str) -> str | None:
        if self.root is None:
            return None
        if not self.root:
            return folder
        if folder == self.root:
            return ""
        prefix = self.root + "/"
        return folder[len(prefix) :] if folder.startswith(prefix) else None

    def component_folder(self, module: str, component: str) -> str:
        """Where the engine looks for ``<bundle>.<module>.<Component>``."""
        relative = component if self.is_single_module else f"{module}/{component}"
        return f"{self.root}/{relative}" if self.root else relative

    def level(self, folder: str) -> tuple[str, str] | None:
        """(``connector``/``module``/``component``, dotted name) of a folder the engine loads
        files from, or None for any other folder."""
        if folder in self.components:
            return "component", self.components[folder]
        relative = self.relative(folder)
        if relative == "":
            return ("module" if self.is_single_module else "connector"), self.name
        if relative and "/" not in relative and not self.is_single_module:
            return "module", f"{self.name}.{relative}"
        return None


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
        name = _bundle_name(
            [(path, doc) for path, doc in descriptors if path is not None and doc is not None],
            issues,
        )
        if name is None:
            name = _service_id_from_components(files, component_paths)
        if name is None:
            issues.add(
                bundle_path or BUNDLE_FILE,
                "/name",
                "is missing; add bundle.json with the module's name as vendor.service "
                "(e.g. appmixer.trello) or vendor.service.module (e.g. appmixer.google.gmail)",
            )
        version = _version(descriptors, bundle_path, issues)
        engine = _engine(bundle_path, bundle, issues)
        changelog = (
            _changelog(bundle_path, bundle, version, issues) if bundle_path and bundle else []
        )

        layout = None
        if name is not None:
            layout = _Layout(name, _root(bundle_path or service_path, modules))
        components = _components(files, component_paths, layout, issues)
        module_files, auth = (
            _support_files(files, paths, layout, components, issues) if layout else ([], [])
        )
        issues.raise_if_any()
        assert name is not None
        assert version is not None

        about = service or (next(iter(modules.values())) if len(modules) == 1 else None) or bundle
        requires = Requirements()
        if engine is not None:
            requires.extra = {
                "appmixer_engine": engine,
                "appmixer_engine_provided": APPMIXER_ENGINE_VERSION,
            }
        try:
            return Manifest(
                name=module_name(name),
                version=version,
                format=ModuleFormat.appmixer,
                kind=ModuleKind.connector,
                label=_optional_str(about, "label"),
                description=_optional_str(about, "description"),
                icon=_optional_str(about, "icon"),
                changelog=changelog,
                requires=requires,
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


def _root(descriptor_path: str | None, modules: dict[str, dict[str, Any]]) -> str | None:
    """The bundle's folder: that of bundle.json/service.json, else the parent of the module
    folders (a connector shipped as module.json files only)."""
    if descriptor_path is not None:
        return posixpath.dirname(descriptor_path)
    if modules:
        shallowest = min(modules, key=lambda path: (path.count("/"), path))
        return posixpath.dirname(posixpath.dirname(shallowest))
    return None


# --- module-level documents -----------------------------------------------------------------------


def _bundle_name(
    descriptors: list[tuple[str, dict[str, Any]]], issues: IssueCollector
) -> str | None:
    """The bundle's full name as the descriptors spell it; the others must agree with it."""
    found: tuple[str, str] | None = None
    for path, document in descriptors:
        if "name" not in document:
            continue
        name = document["name"]
        kind = _basename(path)
        pattern = {BUNDLE_FILE: BUNDLE_NAME, SERVICE_FILE: SERVICE_NAME}.get(
            kind, _MODULE_JSON_NAME
        )
        if not isinstance(name, str) or not pattern.match(name):
            shape = {
                BUNDLE_FILE: "vendor.service or vendor.service.module "
                "(e.g. appmixer.trello or appmixer.google.gmail)",
                SERVICE_FILE: "vendor.service (e.g. appmixer.trello)",
            }.get(kind, "vendor.service.module (e.g. appmixer.google.gmail)")
            issues.add(path, "/name", f"is {name!r}; {kind} names {shape}")
            continue
        if found is None:
            # With neither bundle.json nor service.json, module.json files describe a connector.
            found = (name.rsplit(".", 1)[0] if kind == MODULE_FILE else name, path)
        elif not _agrees(kind, name, found[0]):
            issues.add(
                path,
                "/name",
                f"is {name!r}, but {found[1]} names the module {found[0]}; make them agree",
            )
    return found[0] if found else None


def _agrees(kind: str, name: str, bundle: str) -> bool:
    if kind == SERVICE_FILE:
        return name == ".".join(bundle.split(".")[:2])
    if kind == MODULE_FILE:
        return name == bundle or name.rsplit(".", 1)[0] == bundle
    return name == bundle


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


def _engine(
    bundle_path: str | None, bundle: dict[str, Any] | None, issues: IssueCollector
) -> str | None:
    """The Appmixer engine range the bundle needs, refused when modyard's engine is outside it."""
    if not bundle_path or not bundle or bundle.get("engine") is None:
        return None
    engine = bundle["engine"]
    if not isinstance(engine, str):
        issues.add(bundle_path, "/engine", f'is {engine!r}; write an npm range such as ">=6.0.0"')
        return None
    try:
        normalized = normalize_range(engine)
    except InvalidVersion as exc:
        issues.add(bundle_path, "/engine", str(exc))
        return None
    if not satisfies(APPMIXER_ENGINE_VERSION, normalized):
        issues.add(
            bundle_path,
            "/engine",
            f"is {engine!r}, but modyard provides the Appmixer engine {APPMIXER_ENGINE_VERSION}; "
            f"publish a version of the module whose engine range {APPMIXER_ENGINE_VERSION} "
            'satisfies (e.g. ">=6.0")',
        )
        return None
    return normalized


def _changelog(
    path: str, bundle: dict[str, Any], version: str | None, issues: IssueCollector
) -> list[ChangelogEntry]:
    raw = bundle.get("changelog")
    if raw is None:
        return []
    if isinstance(raw, list):
        return _changelog_list(path, raw, version, issues)
    if not isinstance(raw, dict):
        issues.add(
            path,
            "/changelog",
            'must be an object keyed by version, e.g. {"1.0.0": ["Initial version"]}, '
            "or a list of changes",
        )
        return []
    return _changelog_map(
        path, [(json_pointer("changelog", key), key, value) for key, value in raw.items()], issues
    )


def _is_version(text: Any) -> bool:
    try:
        parse_version(str(text))
    except InvalidVersion:
        return False
    return True


def _changelog_map(
    path: str, raw: list[tuple[str, str, Any]], issues: IssueCollector
) -> list[ChangelogEntry]:
    """Entries keyed by version (pointer, version, changes), in version order; a new major
    version is breaking."""
    entries: list[ChangelogEntry] = []
    for pointer, key, value in raw:
        entry_version = _semver(key, path, pointer, issues)
        if entry_version is None:
            continue
        changes, flagged = _changelog_changes(value, path, pointer, issues)
        entries.append(ChangelogEntry(version=entry_version, changes=changes, breaking=flagged))
    entries.sort(key=lambda entry: parse_version(entry.version))
    # A new major version is Appmixer's way of shipping incompatible changes.
    for previous, entry in pairwise(entries):
        if parse_version(entry.version).major > parse_version(previous.version).major:
            entry.breaking = True
    return entries


def _changelog_list(
    path: str, raw: list[Any], version: str | None, issues: IssueCollector
) -> list[ChangelogEntry]:
    """A list of changes. Plain strings are the notes of the version being published; real
    bundles also mix in version-keyed objects (``["Initial version", {"1.0.2": [...]}]``), which
    are entries of their own. Once a list names versions, its loose strings are history without a
    version (usually the first release's "Initial version"), which the manifest does not carry."""
    loose: list[str] = []
    keyed: list[tuple[str, str, Any]] = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            loose.append(item)
        elif isinstance(item, dict) and item and all(_is_version(key) for key in item):
            keyed += [(json_pointer("changelog", index, k), k, v) for k, v in item.items()]
        else:
            issues.add(
                path,
                json_pointer("changelog", index),
                f"is {item!r}; write each change as a string, or the changes of a version as "
                '{"1.0.2": ["..."]}',
            )
    if keyed:
        return _changelog_map(path, keyed, issues)
    if version is None or not loose:
        return []
    breaking = any(_BREAKING_TEXT.search(change) for change in loose)
    return [ChangelogEntry(version=version, changes=loose, breaking=breaking)]


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
    files: ModuleFiles,
    paths: list[str],
    layout: _Layout,
    components: list[Component],
    issues: IssueCollector,
) -> tuple[list[ModuleFile], list[dict[str, Any]]]:
    """The files the engine loads by name, at the level it loads them from, and what each auth
    file declares and serves."""
    module_files: list[ModuleFile] = []
    auth: list[dict[str, Any]] = []
    used = _auth_services_used(components)
    for path in paths:
        role = _FILE_ROLES.get(_basename(path))
        level = layout.level(posixpath.dirname(path)) if role else None
        if role is None or level is None or (role in _SERVICE_ROLES and level[0] == "component"):
            continue
        kind, dotted = level
        name = _auth_service(dotted, layout, used) if role in _SERVICE_ROLES else dotted
        if role in _NPM_ROLES:
            _check_npm_file(files, path, issues)
        module_files.append(ModuleFile(role=role, path=path, name=name, extra={"level": kind}))
        if role == "auth":
            try:
                found = _AUTH_TYPE.search(files.text(path))
            except ManifestError:
                found = None
            auth.append(
                {
                    "path": path,
                    "service": name,
                    "type": found and found.group(1),
                    "components": sorted(used.get(name, [])),
                }
            )
    return module_files, auth


def _auth_services_used(components: list[Component]) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for component in components:
        service = (component.auth or {}).get("service")
        if isinstance(service, str):
            used.setdefault(service, []).append(component.name)
    return used


def _auth_service(dotted: str, layout: _Layout, used: dict[str, list[str]]) -> str:
    """The id components use in ``auth.service`` for an auth.js/quota.js serving ``dotted``."""
    service = dotted.replace(".", ":")
    if dotted == layout.name and layout.is_single_module and service not in used:
        # A single module whose auth.js is the service's (the components say vendor:service).
        parent = service.rsplit(":", 1)[0]
        if parent in used:
            return parent
    return service


def _check_npm_file(files: ModuleFiles, path: str, issues: IssueCollector) -> None:
    """npm installs these files; a broken one would fail the installation, so it is refused now."""
    document = json_object(files, path, issues)
    if document is None:
        return
    for key in ("dependencies", "devDependencies", "optionalDependencies"):
        value = document.get(key)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            issues.add(
                path,
                json_pointer(key),
                'must be an object of npm package names and ranges, e.g. {"axios": "^1.7.0"}',
            )


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
            continue  # only the npm files the engine loads are checked (see _check_npm_file)
        if isinstance(document, dict) and isinstance(document.get("dependencies"), dict):
            npm[path] = document["dependencies"]
    if npm:
        extra["npm"] = npm
    return extra


# --- components -----------------------------------------------------------------------------------


def _components(
    files: ModuleFiles, paths: list[str], layout: _Layout | None, issues: IssueCollector
) -> list[Component]:
    components: list[Component] = []
    seen: dict[str, str] = {}
    for path in paths:
        component = _component(files, path, layout, issues)
        if component is None:
            continue
        if component.name in seen:
            issues.add(
                path, "/name", f"{component.name!r} is also the name of {seen[component.name]}"
            )
            continue
        seen[component.name] = path
        if layout is not None:
            layout.components[posixpath.dirname(path)] = component.name
        components.append(component)
    return components


def _component(
    files: ModuleFiles, path: str, layout: _Layout | None, issues: IssueCollector
) -> Component | None:
    document = json_object(files, path, issues)
    if document is None:
        return None
    folder = posixpath.dirname(path)
    name = document.get("name")
    if isinstance(name, str) and COMPONENT_NAME.match(name):
        _check_component_name(name, path, layout, issues)
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
    if auth is not None:
        _check_auth_service(auth, document.get("name"), path, issues)
    quota = _mapping(document, "quota", path, issues)
    if name is None:
        return None

    # Nothing can send a message to a component without in ports, so a public one starts flows
    # (Appmixer's OnStart, Timer, Scheduler); a private one is a helper the inspector calls.
    starts_flows = not in_ports and (flags["webhook"] or not flags["private"])
    is_trigger = flags["trigger"] or flags["tick"] or starts_flows
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
    name: str, path: str, layout: _Layout | None, issues: IssueCollector
) -> None:
    vendor, service, module, component = name.split(".")
    if layout is not None:
        owner = f"{vendor}.{service}.{module}" if layout.is_single_module else f"{vendor}.{service}"
        if owner != layout.name:
            wanted = (
                f"{layout.name}.{component}"
                if layout.is_single_module
                else f"{layout.name}.{module}.{component}"
            )
            issues.add(
                path,
                "/name",
                f"{name!r} belongs to {owner}, but this module is {layout.name}; name it {wanted}",
            )
            return
    # The engine finds a component by its name, so its folder must match it.
    folder = posixpath.dirname(path)
    if layout is not None and layout.root is not None:
        expected = layout.component_folder(module, component)
        matches = folder == expected
    else:
        expected = f"{module}/{component}"
        matches = folder.split("/")[-2:] == [module, component]
    if not matches:
        issues.add(
            path,
            "/name",
            f"{name!r} must sit at {expected}/component.json, not {path}; "
            "rename the folders or the component",
        )


def _check_auth_service(auth: dict[str, Any], name: Any, path: str, issues: IssueCollector) -> None:
    service = auth.get("service")
    if isinstance(service, str) and _AUTH_SERVICE.match(service):
        return
    vendor, service_name, module = (
        name.split(".")[:3]
        if isinstance(name, str) and COMPONENT_NAME.match(name)
        else ("vendor", "service", "module")
    )
    issues.add(
        path,
        "/auth/service",
        ("is missing" if service is None else f"is {service!r}")
        + "; name the auth service the component uses, e.g. "
        + f'"{vendor}:{service_name}" or "{vendor}:{service_name}:{module}"',
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
        value = option.get("value")
        if isinstance(value, str) and value and _path_steps(value) is None:
            issues.add(
                path,
                f"{pointer}/options/{index}/value",
                f"is {value!r}; write a path into the message: property names joined by dots, "
                'array items as [0] (e.g. "lines[0].sku")',
            )
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


#: A step into an array's items in a parsed option path.
_ITEMS = None


def _path_steps(value: str) -> list[str | None] | None:
    """``a.b[0].c`` as ``["a", "b", _ITEMS, "c"]``, or None when it is not such a path."""
    steps: list[str | None] = []
    for index, part in enumerate(value.split(".")):
        match = _PATH_STEP.match(part)
        if match is None or not part:
            return None
        name, brackets = match.groups()
        if name:
            steps.append(name)
        elif index == 0:
            return None  # the message itself is an object, never an array
        steps.extend(_ITEMS for _ in range(brackets.count("[")))
    return steps


def _schema_from_options(options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An object schema whose properties are the options' values (paths into the message).

    Option schemas are deep-copied: the options are kept in the manifest as written, and a later
    option reaching into an earlier one's schema must not write into it.
    """
    root: dict[str, Any] = {"type": "object", "properties": {}}
    for option in options:
        value = option.get("value")
        steps = _path_steps(value) if isinstance(value, str) and value else None
        if not steps:
            continue
        node = root
        for position, step in enumerate(steps):
            node = _child(node, step)
            if position + 1 < len(steps):  # a step on the way holds the next one
                node.setdefault("type", "array" if steps[position + 1] is _ITEMS else "object")
        described = (
            copy.deepcopy(option["schema"]) if isinstance(option.get("schema"), dict) else {}
        )
        if isinstance(option.get("label"), str):
            described.setdefault("title", option["label"])
        for key, item in described.items():
            # An earlier option may have described deeper paths already: properties merge.
            if key == "properties" and isinstance(item, dict):
                properties = node.setdefault("properties", {})
                for inner, inner_schema in item.items():
                    properties.setdefault(inner, inner_schema)
            else:
                node[key] = item
    return root if root["properties"] else None


def _child(node: dict[str, Any], step: str | None) -> dict[str, Any]:
    if step is _ITEMS:
        items = node.setdefault("items", {})
        return items if isinstance(items, dict) else {}
    properties = node.setdefault("properties", {})
    return properties.setdefault(step, {}) if isinstance(properties, dict) else {}


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


__all__ = ["APPMIXER_ENGINE_VERSION", "DEFAULT_POLLING_INTERVAL_SECONDS", "AppmixerAdapter"]
