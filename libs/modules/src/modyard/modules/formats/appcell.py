"""ApiHawk AppCell cells (format ``appcell``, kind ``cell``): their installation files
(``appcell.json``, ``plugin(s).json``, ``resources.json``, ``settings.json``, ``ui.json``, names
matched ignoring case) → the canonical manifest.

The mapping, file by file, and what real cells may do beyond AppCell's document is specified in
docs/formats/appcell.md, its one home; look-alike cells are in modyard.modules.examples. Schema
references are pinned by :mod:`modyard.modules.formats.bundled_schemas`, licenses read by
:mod:`modyard.modules.formats.licenses`. All problems are collected: when every one is about schema
references the error is :class:`UnresolvedReference` (``unresolvable-schema``), otherwise
:class:`ManifestError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import ValidationError

from modyard.common.json_pointer import json_pointer
from modyard.common.semver import InvalidVersion, normalize_range, normalize_version
from modyard.modules.formats.appcell_payload import template_problem
from modyard.modules.formats.base import (
    IssueCollector,
    ManifestError,
    ModuleFiles,
    UnresolvedReference,
    module_version,
)
from modyard.modules.formats.bundled_schemas import (
    AmbiguousReference,
    SchemaBundle,
    digest_bytes,
    is_own_file,
)
from modyard.modules.formats.licenses import LicenseError, normalize_license
from modyard.modules.manifest import (
    MODULE_NAME_PATTERN,
    CellAction,
    CellResource,
    CellSchemaRef,
    CellSpec,
    ConfigField,
    ConfigSpec,
    Dependency,
    Manifest,
    ModuleFile,
    ModuleFormat,
    ModuleKind,
    PinnedSchema,
    Requirements,
    module_name,
)

APPCELL_FILE = "appcell.json"
PLUGIN_FILES = ("plugin.json", "plugins.json")
RESOURCES_FILE = "resources.json"
SETTINGS_FILE = "settings.json"
UI_FILE = "ui.json"

CELL_TYPES = frozenset({"plugin"})
#: ``require`` keys naming a feature of the AppCell platform rather than a module: ``ui`` is the
#: platform's UI (its Controller routes and frontend slots), which the gateway provides.
PLATFORM_FEATURES = frozenset({"ui"})
SUPPORT_CHANNELS = frozenset(
    {"email", "issues", "forum", "wiki", "irc", "source", "docs", "rss", "chat"}
)
REST_VERBS = ("create", "fetch", "update", "fetchAll", "updateList", "patch", "delete")
SECURITY_LEVELS = ("protected", "public")
_RBAC = re.compile(r"^rbac::[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_MODULE_NAME = re.compile(MODULE_NAME_PATTERN)
_SCOPE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
_SECRET_SETTING = re.compile(r"pass(word)?|secret|token|api[ _-]?key|private[ _-]?key", re.I)
# Keywords that make the document's "payload": "" + sibling keywords form an inline schema.
_SCHEMA_MARKERS = frozenset({"$schema", "properties"})
_SCHEMA_KEYWORDS = frozenset(
    [
        "$schema",
        "$id",
        "$ref",
        "$defs",
        "definitions",
        "type",
        "title",
        "required",
        "properties",
        "additionalProperties",
        "patternProperties",
        "items",
        "enum",
        "const",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "default",
        "examples",
    ]
)


class AppCellAdapter:
    format: ClassVar[ModuleFormat] = ModuleFormat.appcell

    def detect(self, files: ModuleFiles) -> bool:
        return files.find(APPCELL_FILE) is not None

    def parse(self, files: ModuleFiles, *, version: str | None = None) -> Manifest:
        return _CellReader(files, version).manifest()


# -- version ranges --------------------------------------------------------------------------

_COMPARATOR_SPACE = re.compile(r"(>=|<=|!=|>|<|=|\^|~)\s+")


def appcell_range(text: str) -> str:
    """An AppCell requirement (``>=1``, ``^1.0``, ``!=1.2.0`` …) as a normalised npm range."""
    cleaned = _COMPARATOR_SPACE.sub(r"\1", text.strip()).replace(",", " ")
    alternatives: list[str] = []
    for alternative in re.split(r"\s*\|\|?\s*", cleaned):
        tokens = alternative.split()
        expanded: list[list[str]] = [[]]
        for token in tokens:
            if token.startswith("!="):
                version = _full_version(token[2:], text)
                expanded = [
                    [*kept, bound] for kept in expanded for bound in (f"<{version}", f">{version}")
                ]
            else:
                expanded = [[*kept, token] for kept in expanded]
        alternatives.extend(" ".join(tokens) for tokens in expanded)
    return normalize_range(" || ".join(alternatives))


def _full_version(partial: str, text: str) -> str:
    parts = partial.lstrip("vV").split(".")
    if not 1 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        raise InvalidVersion(f"{text!r}: '!=' needs a version such as 1.2.0, not {partial!r}")
    return ".".join([*parts, "0", "0"][:3])


def check_security(value: Any) -> str:
    """An action's security level, or :class:`ValueError` saying what is allowed."""
    if isinstance(value, str) and (value in SECURITY_LEVELS or _RBAC.match(value)):
        return value
    raise ValueError(
        f"{value!r} is not a security level; use 'protected' (the default), 'public' (the caller "
        "must own the customer product) or 'rbac::<permission>' (e.g. 'rbac::domains.transfer')"
    )


# -- the reader ------------------------------------------------------------------------------


class _CellReader:
    """Walks the installation files of one cell, collecting every problem."""

    bundle: SchemaBundle

    def __init__(self, files: ModuleFiles, requested_version: str | None = None) -> None:
        self.files = files
        self.requested_version = requested_version
        self.issues = IssueCollector()
        # Kept apart so that a module whose only problems are schemas gets UnresolvedReference.
        self.references = IssueCollector()

    def manifest(self) -> Manifest:
        appcell = self._document((APPCELL_FILE,), required=True)
        # URLs name bundled files after the host and the cell's name, so the bundle needs it.
        self.cell_name = self._cell_name(appcell)
        self.bundle = SchemaBundle(
            self.files,
            cell_name=self.cell_name,
            issues=self.references,
            platform_schemas=True,
        )

        basics: dict[str, Any] = {}
        spec = CellSpec()
        requires = Requirements()
        dependencies: list[Dependency] = []
        if appcell is not None:
            basics, spec, requires, dependencies = self._appcell(*appcell)
        resources_file = self._document((RESOURCES_FILE,), required=False)
        spec.resources = self._resources(resources_file)
        plugins = self._document(PLUGIN_FILES, required=True)
        if plugins is not None:
            offered = None
            if resources_file is not None or self.files.find(RESOURCES_FILE) is None:
                # Without a readable resources.json (already reported) the check would only
                # repeat that problem once per action.
                offered = {
                    str(resource.extra["name"]): {*resource.rest, *resource.rpc}
                    for resource in spec.resources
                }
            self._plugins(*plugins, spec, offered)
        config = ConfigSpec()
        settings = self._document((SETTINGS_FILE,), required=False)
        if settings is not None:
            spec.settings, config = self._settings(*settings)
        module_files: list[ModuleFile] = []
        ui = self._document((UI_FILE,), required=False)
        if ui is not None:
            spec.ui = self._ui(*ui, module_files)
        module_files.extend(
            ModuleFile(role=pinned.role, path=pinned.path, extra={"digest": pinned.digest})
            for pinned in self.bundle.files
        )

        self._raise_if_any()
        try:
            return Manifest(
                **basics,
                format=ModuleFormat.appcell,
                kind=ModuleKind.cell,
                dependencies=dependencies,
                requires=requires,
                config=config,
                files=module_files,
                cell=spec,
            )
        except ValidationError as exc:
            appcell_path = appcell[0] if appcell else APPCELL_FILE
            for error in exc.errors():
                self.issues.add(appcell_path, json_pointer(*error["loc"]), error["msg"])
            self._raise_if_any()
            raise  # unreachable: pydantic reports at least one error

    def _raise_if_any(self) -> None:
        if self.issues.issues:
            raise ManifestError([*self.issues.issues, *self.references.issues])
        if self.references.issues:
            raise UnresolvedReference(self.references.issues)

    def _document(
        self, names: Iterable[str], *, required: bool
    ) -> tuple[str, dict[str, Any]] | None:
        found = [path for name in names if (path := self.files.find(name)) is not None]
        wanted = " or ".join(names)
        if not found:
            if required:
                self.issues.add(wanted, "", f"is missing; every AppCell cell ships {wanted}")
            return None
        if len(found) > 1:
            self.issues.add(
                found[1], "", f"is ambiguous next to {found[0]}; ship only one of {wanted}"
            )
        path = found[0]
        try:
            document = self.files.json(path)
        except ManifestError as exc:
            self.issues.issues.extend(exc.issues)
            return None
        if not isinstance(document, dict):
            self.issues.add(path, "", "must be a JSON object")
            return None
        return path, document

    def _cell_name(self, appcell: tuple[str, dict[str, Any]] | None) -> str | None:
        name = appcell[1].get("name") if appcell else None
        return name if isinstance(name, str) and name.strip() else None

    # -- appcell.json -------------------------------------------------------------------------

    def _appcell(
        self, path: str, document: dict[str, Any]
    ) -> tuple[dict[str, Any], CellSpec, Requirements, list[Dependency]]:
        basics: dict[str, Any] = {}
        name = document.get("name")
        if not isinstance(name, str) or not name.strip():
            self.issues.add(
                path, "/name", "is required: the cell's name, e.g. 'newResellerClubCell'"
            )
        elif not _MODULE_NAME.match(module_name(name)):
            self.issues.add(
                path, "/name", f"{name!r} gives no usable module name; use letters and digits"
            )
        else:
            basics["name"] = module_name(name)
            basics["label"] = name.strip()
        basics["version"] = self._version(path, document.get("version"))
        description = self._optional_text(path, document, "description")
        if description:
            basics["description"] = description

        spec = CellSpec(
            license=self._license(path, document),
            type=self._cell_type(path, document),
            homepage=self._optional_text(path, document, "homepage"),
            support=self._support(path, document.get("support")),
        )
        config = document.get("config")
        if config not in (None, []):
            if isinstance(config, list) and all(isinstance(item, str) for item in config):
                spec.extra["config"] = config
            else:
                self.issues.add(path, "/config", "must be a list of configuration names")
        known = {"name", "version", "description", "license", "type", "support", "homepage"}
        known |= {"config", "require"}
        spec.extra.update({key: value for key, value in document.items() if key not in known})
        requires, dependencies = self._require(path, document.get("require"))
        return basics, spec, requires, dependencies

    def _version(self, path: str, value: Any) -> str:
        written = None
        if value is not None:
            try:
                written = normalize_version(str(value))
            except InvalidVersion as exc:
                self.issues.add(path, "/version", str(exc))
                return "0.0.0"
        version = module_version(
            written,
            self.requested_version,
            path,
            "/version",
            self.issues,
            carries_none="AppCell cells carry no version",
        )
        return version or "0.0.0"

    def _optional_text(self, path: str, document: dict[str, Any], key: str) -> str | None:
        value = document.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.issues.add(path, json_pointer(key), "must be a string")
            return None
        return value.strip()

    def _license(self, path: str, document: dict[str, Any]) -> str | None:
        if "license" not in document:
            return None
        try:
            return normalize_license(document["license"])
        except LicenseError as exc:
            pointer = "/license" if exc.item is None else f"/license/{exc.item}"
            self.issues.add(path, pointer, str(exc))
            return None

    def _cell_type(self, path: str, document: dict[str, Any]) -> str | None:
        value = document.get("type")
        if value is not None and value not in CELL_TYPES:
            self.issues.add(
                path, "/type", f"{value!r} is not a cell type; AppCell supports only 'plugin'"
            )
            return None
        return value if isinstance(value, str) else None

    def _support(self, path: str, support: Any) -> dict[str, Any]:
        if support is None:
            return {}
        if not isinstance(support, dict):
            self.issues.add(path, "/support", "must be an object of support channels")
            return {}
        for channel, value in support.items():
            where = json_pointer("support", channel)
            if channel not in SUPPORT_CHANNELS:
                self.issues.add(
                    path,
                    where,
                    f"{channel!r} is not a support channel; use one of "
                    + ", ".join(sorted(SUPPORT_CHANNELS)),
                )
            elif not isinstance(value, str) or not value.strip():
                self.issues.add(path, where, "must be a non-empty string")
            elif channel == "email" and "@" not in value:
                self.issues.add(path, where, f"{value!r} is not an email address")
            elif channel == "irc" and not value.startswith("irc://"):
                self.issues.add(path, where, "must be an irc://server/channel address")
            elif channel not in ("email", "irc") and not re.match(r"^https?://", value):
                self.issues.add(path, where, "must be an http(s) URL")
        return dict(support)

    def _require(self, path: str, require: Any) -> tuple[Requirements, list[Dependency]]:
        requires = Requirements()
        dependencies: list[Dependency] = []
        if require is None:
            return requires, dependencies
        if not isinstance(require, dict):
            self.issues.add(path, "/require", "must be an object of names and version ranges")
            return requires, dependencies
        for name, value in require.items():
            where = json_pointer("require", name)
            if name == "scope":
                scope = self._scope(path, where, value)
                if scope:
                    requires.extra["scope"] = scope
                continue
            if not isinstance(value, str):
                self.issues.add(path, where, "must be a version range string such as '>=1'")
                continue
            try:
                version_range = appcell_range(value)
            except InvalidVersion as exc:
                self.issues.add(path, where, str(exc))
                continue
            if name == "appcell":
                requires.platform = version_range
            elif name == "etcd":
                # The installer provisions etcd credentials and an access prefix for the cell.
                requires.storage.append("etcd")
                requires.extra.setdefault("storage_ranges", {})["etcd"] = version_range
            elif name in PLATFORM_FEATURES:
                # A feature of the platform that runs the cell (seed 003: "the minimum required
                # versions of AppCell, the UI and the etcd storage"; MicroCell asks which of
                # "appcell, etcd, ui" a cell needs), not a module to install beside it.
                requires.capabilities.append(name)
                requires.extra.setdefault("capability_ranges", {})[name] = version_range
            else:
                dependencies.append(Dependency(name=name, range=version_range, type="service"))
        return requires, dependencies

    def _scope(self, path: str, where: str, value: Any) -> list[str]:
        """``require.scope``: the Billia data the cell reads (``customer_product``, ``email`` …),
        written as a list (MicroCell writes one) or one name."""
        listed = [value] if isinstance(value, str) else value
        if not isinstance(listed, list):
            self.issues.add(
                path, where, 'must be a list of data scopes, e.g. ["customer_product", "email"]'
            )
            return []
        scope: list[str] = []
        for index, item in enumerate(listed):
            at = where if isinstance(value, str) else f"{where}/{index}"
            if not isinstance(item, str) or not _SCOPE.match(item):
                self.issues.add(
                    path,
                    at,
                    f"{item!r} is not a scope name; use letters, digits and '_' "
                    "(e.g. 'customer_product')",
                )
            elif item not in scope:
                scope.append(item)
        return scope

    # -- plugin(s).json -----------------------------------------------------------------------

    def _plugins(
        self,
        path: str,
        document: dict[str, Any],
        spec: CellSpec,
        offered: dict[str, set[str]] | None,
    ) -> None:
        key = "plugin" if "plugin" in document else "plugins"
        plugins = document.get(key)
        if not isinstance(plugins, dict) or not plugins:
            self.issues.add(
                path, f"/{key}", "must map each plugin's name to its implements and actions"
            )
            return
        seen: set[str] = set()
        for plugin_name, plugin in plugins.items():
            base = json_pointer(key, plugin_name)
            if not isinstance(plugin, dict):
                self.issues.add(path, base, "must be an object with implements and actions")
                continue
            for pinned in self._implements(path, base, plugin.get("implements")):
                if pinned.reference not in seen:
                    seen.add(pinned.reference)
                    spec.implements.append(pinned)
            actions = plugin.get("actions", {})
            if not isinstance(actions, dict):
                self.issues.add(path, base + "/actions", "must map action names to executions")
                continue
            for action_key, executions in actions.items():
                where = base + json_pointer("actions", action_key)
                listed = executions if isinstance(executions, list) else [executions]
                for index, execution in enumerate(listed):
                    at = where + (f"/{index}" if isinstance(executions, list) else "")
                    action = self._action(path, at, plugin_name, action_key, execution)
                    if action is not None:
                        if offered is not None:
                            self._check_offered(path, at, action, offered)
                        spec.actions.append(action)
            unknown = {k: v for k, v in plugin.items() if k not in ("implements", "actions")}
            if unknown:
                spec.extra.setdefault("plugins", {})[plugin_name] = unknown
        spec.extra["plugin_names"] = list(plugins)
        if spec.actions and offered is not None and self.files.find(RESOURCES_FILE) is None:
            self.issues.add(
                RESOURCES_FILE,
                "",
                "is missing; every resource the plugin's actions use must be described in it",
            )

    def _implements(self, path: str, base: str, implements: Any) -> list[PinnedSchema]:
        if implements is None:
            return []
        if not isinstance(implements, list):
            self.issues.add(path, base + "/implements", "must be a list of schema URLs")
            return []
        pinned = [
            self.bundle.pin(reference, source_file=path, pointer=f"{base}/implements/{index}")
            for index, reference in enumerate(implements)
        ]
        return [item for item in pinned if item is not None]

    def _action(
        self, path: str, at: str, plugin: str, key: str, execution: Any
    ) -> CellAction | None:
        if not isinstance(execution, dict):
            self.issues.add(path, at, "must be an object with resource, action and schemas")
            return None
        # "fetchAll.Contact" names the action and the resource when an execution leaves them out.
        default_action, _, default_resource = key.partition(".")
        resource = execution.get("resource", default_resource or None)
        action = execution.get("action", default_action)
        valid = True
        for field, value in (("resource", resource), ("action", action)):
            if not isinstance(value, str) or not value:
                self.issues.add(path, f"{at}/{field}", f"is required: the {field}'s name")
                valid = False
        security = execution.get("security", "protected")
        try:
            check_security(security)
        except ValueError as exc:
            self.issues.add(path, f"{at}/security", str(exc))
            valid = False
        payload, template = self._plugin_document(execution, "payload", path, at)
        result, example = self._plugin_document(execution, "result", path, at)
        postpayload = self._postpayload(execution, path, at)
        if not valid:
            return None
        known = {"resource", "action", "security", "payload", "$payload", "result", "$result"}
        known |= {"postpayload", "$postpayload"}
        extra = {k: v for k, v in execution.items() if k not in known}
        if template is not None:
            extra["payload_template"] = template
        if example is not None:
            extra["result_example"] = example
        return CellAction(
            resource=str(resource),
            action=str(action),
            security=security,
            payload=payload,
            result=result,
            postpayload=postpayload,
            extra={"plugin": plugin, "key": key, **extra},
        )

    def _check_offered(
        self, path: str, at: str, action: CellAction, offered: dict[str, set[str]]
    ) -> None:
        if self.files.find(RESOURCES_FILE) is None:
            return  # reported once for the whole file
        if action.resource not in offered:
            self.issues.add(
                path,
                f"{at}/resource",
                f"{action.resource!r} is not a resource in {RESOURCES_FILE}; describe it there "
                "or fix the name",
            )
        elif action.action not in offered[action.resource]:
            # Real cells list some actions (transfer, renew …) only in the plugin file, and
            # AppCell runs them: the execution's own schemas describe them.
            action.extra["listed_in_resources"] = False

    # -- schemas --------------------------------------------------------------------------------

    def _schema_ref(
        self, holder: dict[str, Any], key: str, path: str, at: str
    ) -> CellSchemaRef | None:
        """``$key`` (a reference to pin) or ``key`` (an inline schema) of ``holder``."""
        reference, inline = holder.get("$" + key), holder.get(key)
        if reference is not None and inline not in (None, ""):
            self.issues.add(
                path, f"{at}/{key}", f"is given twice (${key} and {key}); keep one of them"
            )
            return None
        if reference is not None:
            pinned = self.bundle.pin(reference, source_file=path, pointer=f"{at}/${key}")
            return CellSchemaRef(pinned=pinned) if pinned else None
        if inline == "" and _SCHEMA_MARKERS & holder.keys():
            # The document's inline form: "payload": "" with the schema's keywords beside it.
            schema = {k: v for k, v in holder.items() if k in _SCHEMA_KEYWORDS}
            if schema.get("definitions") == []:
                schema["definitions"] = {}  # the document's example writes "definitions": []
            self.bundle.check_inline(schema, source_file=path, pointer=at)
            return CellSchemaRef(inline=schema)
        if inline is None or inline == "":
            return None
        if not isinstance(inline, dict):
            self.issues.add(
                path,
                f"{at}/{key}",
                f"must be an inline JSON Schema object; put a URL in ${key} instead",
            )
            return None
        self.bundle.check_inline(inline, source_file=path, pointer=f"{at}/{key}")
        return CellSchemaRef(inline=inline)

    def _plugin_document(
        self, holder: dict[str, Any], key: str, path: str, at: str
    ) -> tuple[CellSchemaRef | None, dict[str, Any] | None]:
        """A plugin action's ``payload``/``result``: ``(schema, None)`` when the document declares
        ``$schema`` (a JSON Schema, as cells written for modyard have), else ``(None, document)``:
        AppCell's payload template or example result (see modyard.modules.formats.appcell_payload),
        pinned with the role ``payload-template``/``result-example`` and never read as a schema;
        the resource's schemas validate the action (docs/formats/appcell.md)."""
        reference, inline = holder.get("$" + key), holder.get(key)
        role = "payload-template" if key == "payload" else "result-example"
        if reference is not None and inline not in (None, ""):
            return self._schema_ref(holder, key, path, at), None  # reports "given twice"
        if reference is not None:
            if not isinstance(reference, str) or _declares_schema(self._peek(reference)):
                return self._schema_ref(holder, key, path, at), None
            pointer = f"{at}/${key}"
            located = self.bundle.pin_document(
                reference, source_file=path, pointer=pointer, role=role
            )
            if located is None:
                return None, None
            pinned, document = located
            problem = _document_problem(key, document)
            if problem:
                self.references.add(
                    path, pointer, f"resolves to {pinned.path}, which {problem}; fix the file"
                )
                return None, None
            return None, {"pinned": pinned.model_dump()}
        if inline in (None, "") or _declares_schema(inline):
            return self._schema_ref(holder, key, path, at), None
        problem = _document_problem(key, inline)
        if problem:
            self.issues.add(path, f"{at}/{key}", problem)
            return None, None
        return None, {"inline": inline}

    def _peek(self, reference: str) -> Any:
        """The bundled document a reference names, or None (pinning then reports why)."""
        try:
            found, _ = self.bundle.resolve(reference)
        except (AmbiguousReference, ValueError):
            return None
        if found is None:
            return None
        try:
            return self.files.json(found)
        except ManifestError:
            return None

    def _postpayload(self, holder: dict[str, Any], path: str, at: str) -> CellSchemaRef | None:
        reference, inline = holder.get("$postpayload"), holder.get("postpayload")
        if reference is not None and inline is not None:
            self.issues.add(
                path, f"{at}/postpayload", "is given twice ($postpayload and postpayload); keep one"
            )
            return None
        if reference is not None:
            located = self.bundle.pin_document(
                reference, source_file=path, pointer=f"{at}/$postpayload", role="postpayload"
            )
            if located is None:
                return None
            pinned, document = located
            problem = _postpayload_problem(document)
            if problem:
                self.references.add(
                    path, f"{at}/$postpayload", f"resolves to {pinned.path}, which {problem}"
                )
                return None
            return CellSchemaRef(pinned=pinned)
        if inline is None:
            return None
        problem = _postpayload_problem(inline)
        if problem:
            self.issues.add(path, f"{at}/postpayload", problem)
            return None
        return CellSchemaRef(inline=inline)

    # -- resources.json -------------------------------------------------------------------------

    def _resources(self, found: tuple[str, dict[str, Any]] | None) -> list[CellResource]:
        if found is None:
            return []
        path, document = found
        resources = document.get("resources")
        if not isinstance(resources, dict):
            self.issues.add(path, "/resources", "must map each resource's name to its definition")
            return []
        mapped: list[CellResource] = []
        for name, definition in resources.items():
            at = json_pointer("resources", name)
            if not isinstance(definition, dict):
                self.issues.add(path, at, "must be an object with identifier, schemas and rest")
                continue
            resource = self._resource(path, at, name, definition)
            if resource is not None:
                mapped.append(resource)
        return mapped

    def _resource(
        self, path: str, at: str, name: str, definition: dict[str, Any]
    ) -> CellResource | None:
        identifier = definition.get("identifier")
        if not isinstance(identifier, str) or not identifier:
            self.issues.add(
                path, f"{at}/identifier", "is required: the field that identifies one resource"
            )
        payload = self._schema_ref(definition, "payload", path, at)
        result = self._schema_ref(definition, "result", path, at)
        rest = self._rest(path, at, definition.get("rest", []))
        rpc, rpc_schemas = self._rpc(path, at, definition.get("actions", {}))
        if not isinstance(identifier, str) or not identifier:
            return None
        inline_form = definition.get("payload") == "" and bool(_SCHEMA_MARKERS & definition.keys())
        known = {"identifier", "payload", "$payload", "result", "$result", "rest", "actions"}
        extra: dict[str, Any] = {"name": name}
        extra.update(
            (k, v)
            for k, v in definition.items()
            if k not in known and not (inline_form and k in _SCHEMA_KEYWORDS)
        )
        if rpc_schemas:
            extra["actions"] = rpc_schemas
        return CellResource(
            identifier=identifier, payload=payload, result=result, rest=rest, rpc=rpc, extra=extra
        )

    def _rest(self, path: str, at: str, rest: Any) -> list[str]:
        if not isinstance(rest, list) or not all(isinstance(verb, str) for verb in rest):
            self.issues.add(
                path, f"{at}/rest", f"must be a list of REST verbs ({', '.join(REST_VERBS)})"
            )
            return []
        for index, verb in enumerate(rest):
            if verb not in REST_VERBS:
                self.issues.add(
                    path,
                    f"{at}/rest/{index}",
                    f"{verb!r} is not a REST verb; use {', '.join(REST_VERBS)}, or declare it "
                    "under actions (RPC)",
                )
        return list(dict.fromkeys(verb for verb in rest if verb in REST_VERBS))

    def _rpc(self, path: str, at: str, actions: Any) -> tuple[list[str], dict[str, dict[str, Any]]]:
        if isinstance(actions, list) and all(isinstance(name, str) for name in actions):
            return list(actions), {}
        if not isinstance(actions, dict):
            self.issues.add(path, f"{at}/actions", "must map RPC action names to their schemas")
            return [], {}
        schemas: dict[str, dict[str, Any]] = {}
        for name, definition in actions.items():
            where = f"{at}/actions{json_pointer(name)}"
            # The document writes actions without schemas as an empty list.
            if definition in ([], {}, None):
                continue
            if not isinstance(definition, dict):
                self.issues.add(path, where, "must be an object of schemas or an empty list")
                continue
            described: dict[str, Any] = {}
            for key in ("payload", "result"):
                ref = self._schema_ref(definition, key, path, where)
                if ref is not None:
                    described[key] = ref.model_dump(exclude_none=True)
            known = {"payload", "$payload", "result", "$result"}
            described.update((k, v) for k, v in definition.items() if k not in known)
            schemas[name] = described
        return list(actions), schemas

    # -- settings.json --------------------------------------------------------------------------

    def _settings(self, path: str, document: dict[str, Any]) -> tuple[dict[str, Any], ConfigSpec]:
        settings = document.get("settings", {})
        if not isinstance(settings, dict):
            self.issues.add(path, "/settings", "must be an object of setting names and defaults")
            settings = {}
        local = document.get("settings.local")
        if local is not None and not isinstance(local, dict):
            self.issues.add(path, "/settings.local", "must be an object (the cell's etcd data)")
        self._keyed_list(path, document.get("fields"), "fields", "field_key")
        self._keyed_list(path, document.get("options"), "options", "key")
        for index, option in enumerate(document.get("options") or []):
            if not isinstance(option, dict):
                continue
            for flag in ("required", "identifier"):
                if flag in option and not isinstance(option[flag], bool):
                    self.issues.add(path, f"/options/{index}/{flag}", "must be true or false")
        return dict(document), _settings_config(settings)

    def _keyed_list(self, path: str, items: Any, name: str, key: str) -> None:
        if items is None:
            return
        if not isinstance(items, list):
            self.issues.add(path, f"/{name}", f"must be a list of objects with {key!r}")
            return
        seen: set[str] = set()
        for index, item in enumerate(items):
            value = item.get(key) if isinstance(item, dict) else None
            if not isinstance(value, str) or not value:
                self.issues.add(path, f"/{name}/{index}", f"must be an object with a {key!r}")
            elif value in seen:
                self.issues.add(path, f"/{name}/{index}/{key}", f"{value!r} is used twice")
            else:
                seen.add(value)

    # -- ui.json --------------------------------------------------------------------------------

    def _ui(self, path: str, document: dict[str, Any], files: list[ModuleFile]) -> dict[str, Any]:
        ui: dict[str, Any] = {k: v for k, v in document.items() if not k.endswith("Modules")}
        for kind, lists in (
            ("backendModules", ()),
            ("frontendModules", ("deps", "slots", "slotFilters")),
        ):
            modules = document.get(kind, [])
            # The document shows both a list of modules and a single module object.
            listed = modules if isinstance(modules, list) else [modules]
            ui[kind] = []
            for index, module in enumerate(listed):
                at = f"/{kind}" + (f"/{index}" if isinstance(modules, list) else "")
                if not isinstance(module, dict) or not isinstance(module.get("url"), str):
                    self.issues.add(path, at, "must be an object with a 'url'")
                    continue
                for key in lists:
                    value = module.get(key, [])
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        self.issues.add(path, f"{at}/{key}", "must be a list of strings")
                ui[kind].append(self._ui_module(path, f"{at}/url", kind, module, files))
        bases = [m.get("urlBase") for m in ui["backendModules"] if m.get("urlBase") is not None]
        if len(bases) != len(set(bases)):
            self.issues.add(path, "/backendModules", "urlBase values must be unique per plugin")
        return ui

    def _ui_module(
        self, path: str, at: str, kind: str, module: dict[str, Any], files: list[ModuleFile]
    ) -> dict[str, Any]:
        """A module the archive bundles is pinned like a schema (also when its URL names the cell
        this one was renamed from); another URL is a remote module browsers load."""
        url = module["url"]
        try:
            bundled, tried = self.bundle.resolve(url)
        except AmbiguousReference as exc:
            self.issues.add(path, at, f"{url!r} {exc}")
            return dict(module)
        except ValueError:
            bundled, tried = None, []
        if bundled is None:
            if is_own_file(url, cell_name=self.cell_name):
                self.issues.add(
                    path,
                    at,
                    f"{url!r} names a file of this cell, which the archive lacks (tried: "
                    f"{', '.join(tried) or url}); bundle the UI module or fix the URL",
                )
            return dict(module)
        digest = digest_bytes(self.files[bundled])
        role = "ui-backend" if kind == "backendModules" else "ui-frontend"
        files.append(ModuleFile(role=role, path=bundled, extra={"digest": digest}))
        return {**module, "path": bundled, "digest": digest}


def _declares_schema(document: Any) -> bool:
    return isinstance(document, dict) and "$schema" in document


def _document_problem(key: str, document: Any) -> str | None:
    """Why a payload template cannot be compiled (an example result is any JSON)."""
    if key != "payload":
        return None
    if not isinstance(document, dict):
        return (
            "must be an object of the payload's fields, a template such as "
            '{"domain": "{{product.option.domain}}"}'
        )
    problem = template_problem(document)
    return None if problem is None else f"is a payload template that cannot be compiled: {problem}"


def _postpayload_problem(document: Any) -> str | None:
    """Why a postpayload is not ``{"type": "<what Billia does>", "data": {...}}``, if it is not."""
    if not isinstance(document, dict):
        return "must be an object with 'type' (e.g. 'overwrite') and 'data'"
    if not isinstance(document.get("type"), str) or not document["type"]:
        return "needs a 'type' saying what Billia does with 'data' (e.g. 'overwrite')"
    if "data" in document and not isinstance(document["data"], dict):
        return "has a 'data' that is not an object of fields to write"
    return None


def _settings_config(settings: dict[str, Any]) -> ConfigSpec:
    """The installation's configuration from ``settings``: one property per vendor setting."""
    properties: dict[str, Any] = {}
    fields: list[ConfigField] = []
    for name, value in settings.items():
        secret = bool(_SECRET_SETTING.search(name))
        json_type, field_type = _setting_types(value)
        prop: dict[str, Any] = {"type": json_type, "title": name}
        default = None if value in ("", None) else value
        # A secret's default would be readable by everyone who can read the module.
        if default is not None and not secret:
            prop["default"] = default
        if secret:
            prop["writeOnly"] = True
        properties[name] = prop
        fields.append(
            ConfigField(
                name=name,
                type="password" if secret else field_type,
                label=name,
                default=None if secret else default,
                secret=secret,
            )
        )
    return ConfigSpec(json_schema={"type": "object", "properties": properties}, fields=fields)


def _setting_types(value: Any) -> tuple[str, str]:
    if isinstance(value, bool):
        return "boolean", "toggle"
    if isinstance(value, int | float):
        return "number", "number"
    if isinstance(value, dict | list):
        return ("object" if isinstance(value, dict) else "array"), "json"
    return "string", "text"


__all__ = ["AppCellAdapter", "appcell_range", "check_security", "normalize_license"]
