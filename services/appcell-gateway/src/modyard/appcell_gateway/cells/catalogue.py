"""The catalogue of one cell: what its manifest and bundled files say, in the shape the pipeline
needs, built once when the installation is created or upgraded.

Each plugin action key (``create``, ``fetchAll.Contact`` …) maps to its executions. An execution's
schemas are its own (``$payload``/``payload``), else those of the resource's RPC action of the same
name, else the resource's own when the action is one of its REST verbs (resources.json). The
plugin's ``implements`` schemas are checked against its actions here, so that a plugin missing an
action its implemented schemas require is refused at install time, not at the first request.
"""

from __future__ import annotations

import json
from typing import Any

from modyard.appcell_gateway.validation import ARCHIVE_BASE, SchemaCompileError, SchemaFiles
from modyard.common.semver import InvalidVersion, satisfies
from modyard.modules.archive import ArchiveLimits, read_archive
from modyard.modules.formats.appcell_platform import platform_schema_at
from modyard.modules.formats.base import ModuleFiles
from modyard.modules.formats.bundled_schemas import digest_bytes
from modyard.modules.manifest import CellAction, CellResource, CellSchemaRef, Manifest

PLUGIN_FILES = ("plugin.json", "plugins.json")
#: Pinned files the catalogue carries: schemas, postpayloads, and AppCell's payload templates and
#: example results (docs/formats/appcell.md), which are data, never compiled as schemas.
SCHEMA_ROLES = frozenset({"schema", "postpayload", "payload-template", "result-example"})
#: The version of AppCell's UI platform the gateway provides (``ui.json``'s Controller routes and
#: frontend slots, docs/gateway.md "UI"); a cell's ``require.ui`` range is checked against it.
UI_PLATFORM_VERSION = "1.0.0"


class CellInvalid(ValueError):
    """The module cannot be served as a cell; the message says what to fix in it."""


def schema_spec(ref: CellSchemaRef | dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"inline": schema}`` or ``{"path", "reference"}`` (bundled), or None."""
    if ref is None:
        return None
    if isinstance(ref, dict):
        ref = CellSchemaRef.model_validate(ref)
    if ref.inline is not None:
        return {"inline": ref.inline}
    if ref.pinned is not None:
        return {"path": ref.pinned.path, "reference": ref.pinned.reference}
    return None


def bundled_documents(manifest: Manifest, archive: bytes) -> tuple[dict[str, Any], ModuleFiles]:
    """Every schema file the manifest pins, checked against its digest."""
    files = read_archive(archive, ArchiveLimits())
    documents: dict[str, Any] = {}
    for item in manifest.files:
        if item.role not in SCHEMA_ROLES:
            continue
        found = files.find(item.path)
        if found is None:
            raise CellInvalid(f"the archive lacks {item.path}, which the manifest pins")
        data = files[found]
        if item.extra.get("digest") and digest_bytes(data) != item.extra["digest"]:
            raise CellInvalid(f"{item.path} does not match the digest the registry pinned")
        documents[item.path] = json.loads(data.decode("utf-8"))
    return documents, files


def build_catalogue(manifest: Manifest, archive: bytes) -> dict[str, Any]:
    """The catalogue stored for the installation; raises :class:`CellInvalid`."""
    cell = manifest.cell
    if cell is None:
        raise CellInvalid(f"{manifest.name} is not a cell (kind {manifest.kind.value})")
    _check_platform_features(manifest)
    documents, files = bundled_documents(manifest, archive)
    schema_files = SchemaFiles(documents, cell_name=manifest.label)
    resources = {_resource_name(resource): _resource(resource) for resource in cell.resources}
    plugins: dict[str, dict[str, Any]] = {}
    for action in cell.actions:
        plugin = str(action.extra.get("plugin") or manifest.name)
        key = str(action.extra.get("key") or action.action)
        entry = plugins.setdefault(plugin, {"implements": [], "actions": {}})
        entry["actions"].setdefault(key, []).append(
            _execution(action, resources.get(action.resource), schema_files)
        )
    for pin in cell.implements:
        if pin.source == "platform":
            # AppCell's core/ interfaces are modyard's own (the archive need not carry them).
            shipped = platform_schema_at(pin.path)
            if shipped is None:
                raise CellInvalid(
                    f"{pin.reference} was a platform schema when published but modyard no longer "
                    "ships it; publish the cell again"
                )
            documents[pin.path] = shipped.document
    implemented = _implements_by_plugin(files, [pin.reference for pin in cell.implements])
    for name, entry in plugins.items():
        references = implemented.get(name, [pin.reference for pin in cell.implements])
        entry["implements"] = [
            {"reference": pin.reference, "path": pin.path}
            for pin in cell.implements
            if pin.reference in references
        ]
    catalogue = {
        "name": manifest.name,
        "label": manifest.label,
        "plugins": plugins,
        "resources": resources,
        "settings": cell.settings,
        "ui": cell.ui,
        "files": documents,
    }
    check_catalogue(catalogue)
    return catalogue


def _check_platform_features(manifest: Manifest) -> None:
    """``require.ui`` (a range on AppCell's UI platform, ``requires.capability_ranges``) must
    admit the UI the gateway provides."""
    ranges = manifest.requires.extra.get("capability_ranges") or {}
    wanted = ranges.get("ui") if isinstance(ranges, dict) else None
    if "ui" in manifest.requires.capabilities and isinstance(wanted, str):
        try:
            admitted = satisfies(UI_PLATFORM_VERSION, wanted)
        except InvalidVersion:
            admitted = False
        if not admitted:
            raise CellInvalid(
                f"appcell.json requires ui {wanted}, but this platform provides AppCell's UI "
                f"{UI_PLATFORM_VERSION}; require a range that admits it (e.g. '^1.0')"
            )


def check_catalogue(catalogue: dict[str, Any]) -> None:
    """Every schema compiles and every plugin provides what its ``implements`` require."""
    files = SchemaFiles(catalogue["files"], cell_name=catalogue.get("label"))
    problems: list[str] = []
    for plugin, entry in catalogue["plugins"].items():
        for key, executions in entry["actions"].items():
            for execution in executions:
                for part in ("payload", "result"):
                    spec = execution.get(part)
                    if spec is None:
                        continue
                    try:
                        files.compile(spec)
                    except SchemaCompileError as exc:
                        problems.append(
                            f"plugin {plugin!r} action {key!r}: the {part} schema {exc}"
                        )
        for implemented in entry["implements"]:
            try:
                schema = files.compile({"path": implemented["path"], "reference": ""})
            except SchemaCompileError as exc:
                problems.append(f"plugin {plugin!r}: {implemented['reference']} {exc}")
                continue
            violations = schema.violations(entry["actions"])
            if violations:
                what = "; ".join(
                    (f"{v.pointer}: " if v.pointer else "") + v.message for v in violations
                ).replace(" is a required property", "")
                problems.append(
                    f"plugin {plugin!r} implements {implemented['reference']} but lacks what it "
                    f"requires: {what}; add the action(s) to plugin.json or drop the schema from "
                    "'implements'"
                )
    if problems:
        raise CellInvalid(". ".join(problems))


def _implements_by_plugin(files: ModuleFiles, known: list[str]) -> dict[str, list[str]]:
    """Which plugin implements what: the manifest keeps one de-duplicated list for the cell."""
    for name in PLUGIN_FILES:
        path = files.find(name)
        if path is None:
            continue
        try:
            document = json.loads(files[path].decode("utf-8"))
        except ValueError:
            return {}
        plugins = document.get("plugin") if isinstance(document, dict) else None
        if not isinstance(plugins, dict):
            return {}
        return {
            str(plugin): [ref for ref in (body.get("implements") or []) if ref in known]
            for plugin, body in plugins.items()
            if isinstance(body, dict)
        }
    return {}


def _resource_name(resource: CellResource) -> str:
    return str(resource.extra.get("name") or resource.identifier)


def _resource(resource: CellResource) -> dict[str, Any]:
    rpc_schemas = resource.extra.get("actions") or {}
    return {
        "identifier": resource.identifier,
        "payload": schema_spec(resource.payload),
        "result": schema_spec(resource.result),
        "rest": list(resource.rest),
        "rpc": list(resource.rpc),
        "actions": {
            name: {
                "payload": schema_spec(schemas.get("payload")),
                "result": schema_spec(schemas.get("result")),
            }
            for name, schemas in rpc_schemas.items()
            if isinstance(schemas, dict)
        },
    }


def _execution(
    action: CellAction, resource: dict[str, Any] | None, files: SchemaFiles
) -> dict[str, Any]:
    def effective(part: str) -> dict[str, Any] | None:
        # An action's own payload/result is a schema only when it declares $schema; a template or
        # an example (extra) leaves the resource's schemas to validate it.
        own = schema_spec(getattr(action, part))
        if own is not None or resource is None:
            return own
        rpc: dict[str, Any] | None = resource["actions"].get(action.action)
        if rpc is not None:
            found: dict[str, Any] | None = rpc.get(part)
            return found
        if action.action in resource["rest"]:
            inherited: dict[str, Any] | None = resource.get(part)
            return inherited
        return None

    template = _document(action.extra.get("payload_template"), files)
    if template is not None and not isinstance(template, dict):
        raise CellInvalid(
            f"the payload template of {action.resource}.{action.action} is not an object of fields"
        )
    postpayload: Any = None
    if action.postpayload is not None:
        if action.postpayload.inline is not None:
            postpayload = action.postpayload.inline
        elif action.postpayload.pinned is not None:
            postpayload = files.document(ARCHIVE_BASE + action.postpayload.pinned.path)
    return {
        "resource": action.resource,
        "action": action.action,
        "security": action.security,
        "payload": effective("payload"),
        "result": effective("result"),
        "postpayload": postpayload,
        # AppCell's template: the gateway compiles the payload from it and the request's data,
        # then validates that against the resource's schema field by field (pipeline step 3).
        "payload_template": template,
        "result_example": _document(action.extra.get("result_example"), files),
    }


def _document(spec: Any, files: SchemaFiles) -> Any:
    """A template or example as the manifest keeps it (``{"inline": …}`` or ``{"pinned": …}``)."""
    if not isinstance(spec, dict):
        return None
    if "inline" in spec:
        return spec["inline"]
    pinned = spec.get("pinned")
    if isinstance(pinned, dict) and isinstance(pinned.get("path"), str):
        return files.document(ARCHIVE_BASE + pinned["path"])
    return None
