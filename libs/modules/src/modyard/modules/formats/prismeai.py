"""Prisme.ai apps (format ``prismeai``, kind ``app``): a workspace, exported split or as one YAML
document, published as an app → the canonical manifest.

The mapping (layouts, detection, names, version, config, automations and their components, imports,
pages and events, what is dropped) is specified in docs/formats/prismeai.md, its one home; look-alike
workspaces are in libs/modules/tests/fixtures/prismeai/. Code-level notes sit where they apply.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import yaml
from pydantic import ValidationError

from modyard.common.json_pointer import json_pointer
from modyard.common.localized_text import localized_text, plain_schema
from modyard.common.semver import InvalidVersion, normalize_range, normalize_version
from modyard.modules.formats import safe_yaml
from modyard.modules.formats.base import (
    IssueCollector,
    ManifestError,
    ModuleFiles,
    UnsafeYaml,
    module_version,
    yaml_problem,
)
from modyard.modules.formats.bundled_schemas import schema_problem
from modyard.modules.manifest import (
    MODULE_NAME_PATTERN,
    AppImport,
    Automation,
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
    module_name,
)

INDEX_FILES = ("index.yml", "index.yaml")
YAML_SUFFIXES = (".yml", ".yaml")
NATIVE_MANIFESTS = frozenset({"modyard.yml", "modyard.yaml"})
#: The instructions modyard's runtime runs (``modyard.runtime.automations.definitions``
#: ``INSTRUCTIONS``: the two lists must agree, a test says so); any other key is a call.
NATIVE_INSTRUCTIONS = frozenset(
    {
        "emit",
        "fetch",
        "set",
        "delete",
        "conditions",
        "repeat",
        "break",
        "wait",
        "all",
        "comment",
        "try",
    }
)
#: Prisme.ai instructions the runtime does not run: refused when the app is packed, by name,
#: rather than published and failing at run time as a call to a missing automation.
UNSUPPORTED_INSTRUCTIONS = frozenset(
    {"rateLimit", "createUserTopic", "joinUserTopic", "runWorkflow", "run", "auth"}
)
#: Endpoint names the runtime serves (``when.endpoint``, at most 128 characters): segments of
#: ``[A-Za-z0-9_.-]`` joined by ``/``, a segment ``:id`` or a last ``*rest`` a path parameter
#: (the runtime's ``ENDPOINT``: the two patterns must agree, a test says so).
ENDPOINT_NAME = re.compile(
    r"(?:[A-Za-z0-9_.-]+|:[A-Za-z_][A-Za-z0-9_]*)(?:/(?:[A-Za-z0-9_.-]+|:[A-Za-z_][A-Za-z0-9_]*))*"
    r"(?:/\*[A-Za-z_][A-Za-z0-9_]*)?"
)
AUTOMATION_KEYS = frozenset(
    {"slug", "name", "description", "private", "arguments", "when", "do", "output"}
)
WORKSPACE_KEYS = frozenset(
    {"name", "slug", "version", "description", "photo", "config", "automations", "imports"}
)
# Never copied: a workspace's git repositories carry credentials.
SECRET_WORKSPACE_KEYS = frozenset({"repositories"})
_MODULE_NAME = re.compile(MODULE_NAME_PATTERN)
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,#LW-]+$")


class PrismeAiAdapter:
    format: ClassVar[ModuleFormat] = ModuleFormat.prismeai

    def detect(self, files: ModuleFiles) -> bool:
        return bool(_workspace_files(files)) or _split_index(files) is not None

    def parse(self, files: ModuleFiles, *, version: str | None = None) -> Manifest:
        return _WorkspaceReader(files, version).manifest()


# -- YAML ------------------------------------------------------------------------------------


class _Yaml12Loader(safe_yaml.BoundedSafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans, as Prisme.ai (js-yaml) reads its files, and
    the alias budget of :mod:`safe_yaml`.

    YAML 1.1 would read ``repeat: {on: ...}`` as ``{True: ...}`` and ``value: no`` as ``False``.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(files: ModuleFiles, path: str) -> Any:
    """A YAML file of the archive, read with YAML 1.2 booleans."""
    text = files.text(path)
    try:
        return safe_yaml.load(text, _Yaml12Loader)
    except yaml.YAMLError as exc:
        raise yaml_problem(path, exc) from exc


# -- detection -------------------------------------------------------------------------------


def _top_level_yaml(files: ModuleFiles) -> list[str]:
    return sorted(
        path
        for path in files
        if "/" not in path
        and path.lower().endswith(YAML_SUFFIXES)
        and path.lower() not in NATIVE_MANIFESTS
    )


def _load_quietly(files: ModuleFiles, path: str) -> Any:
    """The document, or None when it is not YAML (then it is simply not a workspace)."""
    try:
        return load_yaml(files, path)
    except UnsafeYaml:
        raise  # an alias bomb is refused by name, not passed over as "some other format"
    except ManifestError:
        return None


def _is_workspace(document: Any) -> bool:
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        return False
    config = document.get("config")
    return (
        isinstance(document.get("automations"), dict)
        or isinstance(document.get("imports"), dict)
        or (isinstance(config, dict) and ("schema" in config or "value" in config))
    )


def _workspace_files(files: ModuleFiles) -> list[str]:
    """Top-level YAML files that are workspace documents on their own."""
    return [path for path in _top_level_yaml(files) if _is_workspace(_load_quietly(files, path))]


def _split_index(files: ModuleFiles) -> str | None:
    """``index.yml`` of an exported workspace whose automations are separate files."""
    index = next((found for name in INDEX_FILES if (found := files.find(name))), None)
    if index is None or not any(_in_folder(path, "automations") for path in files):
        return None
    document = _load_quietly(files, index)
    return index if isinstance(document, dict) and isinstance(document.get("name"), str) else None


def _in_folder(path: str, folder: str) -> bool:
    head, _, name = path.partition("/")
    return head == folder and "/" not in name and name.lower().endswith(YAML_SUFFIXES)


# -- the reader ------------------------------------------------------------------------------


class _WorkspaceReader:
    def __init__(self, files: ModuleFiles, requested_version: str | None = None) -> None:
        self.files = files
        self.requested_version = requested_version
        self.issues = IssueCollector()
        self.events: dict[str, EventSpec] = {}
        self.dynamic_events: list[dict[str, Any]] = []

    def manifest(self) -> Manifest:
        path, workspace = self._workspace()
        fields: dict[str, Any] = {}
        name = self._name(path, workspace)
        app_slug = workspace.get("slug") if isinstance(workspace.get("slug"), str) else name
        fields["version"] = self._version(path, workspace.get("version"))
        label = workspace.get("name")
        description, localized = self._description(path, workspace.get("description"))
        photo = workspace.get("photo")
        config, config_value = self._config(path, workspace.get("config"), app_slug or "")
        automations = self._automations(path, workspace)
        imports = self._imports(path, workspace)
        dependencies = _dependencies(imports)

        prismeai: dict[str, Any] = {"slug": app_slug}
        if config_value:
            prismeai["config_value"] = config_value
        if app_slug:
            prismeai["config_env_prefix"] = f"APP_CONFIG_{app_slug}_"
        if localized:
            prismeai["description"] = localized
        if self.dynamic_events:
            prismeai["dynamic_events"] = self.dynamic_events
        rest = {
            k: v
            for k, v in workspace.items()
            if k not in WORKSPACE_KEYS and k not in SECRET_WORKSPACE_KEYS
        }
        if rest:
            prismeai["workspace"] = rest

        carried = self._carried_files()  # pages name events: before the events are listed
        self.issues.raise_if_any()
        try:
            return Manifest(
                name=name or "",
                label=label,
                description=description,
                icon=photo if isinstance(photo, str) else None,
                format=ModuleFormat.prismeai,
                kind=ModuleKind.app,
                dependencies=dependencies,
                config=config,
                automations=automations,
                components=_automation_components(automations),
                imports=imports,
                events=list(self.events.values()),
                files=carried,
                extra={"prismeai": prismeai},
                **fields,
            )
        except ValidationError as exc:
            for error in exc.errors():
                self.issues.add(path, json_pointer(*error["loc"]), error["msg"])
            self.issues.raise_if_any()
            raise  # unreachable: pydantic reports at least one error

    def _workspace(self) -> tuple[str, dict[str, Any]]:
        index = next((found for name in INDEX_FILES if (found := self.files.find(name))), None)
        candidates = [index] if index else _workspace_files(self.files)
        if len(candidates) != 1:
            found = ", ".join(candidates) or "none"
            self.issues.add(
                "index.yml",
                "",
                f"one workspace YAML is needed (found: {found}); ship index.yml, or a single "
                "top-level workspace YAML",
            )
            self.issues.raise_if_any()
        path = candidates[0]
        document = load_yaml(self.files, path)
        if not isinstance(document, dict):
            self.issues.add(path, "", "must be a mapping of workspace fields (name, config …)")
            self.issues.raise_if_any()
        return path, document

    def _name(self, path: str, workspace: dict[str, Any]) -> str | None:
        for key in ("slug", "name"):
            value = workspace.get(key)
            if isinstance(value, str) and value.strip():
                name = module_name(value)
                if _MODULE_NAME.match(name):
                    return name
                self.issues.add(path, f"/{key}", f"{value!r} gives no usable module name")
                return None
        self.issues.add(path, "/name", "is required: the app's name")
        return None

    def _version(self, path: str, value: Any) -> str:
        try:
            written = _prismeai_version(value)
        except InvalidVersion as exc:
            self.issues.add(path, "/version", str(exc))
            return "0.0.0"
        version = module_version(
            written,
            self.requested_version,
            path,
            "/version",
            self.issues,
            carries_none="exported Prisme.ai workspaces and apps carry no version: Prisme.ai "
            "numbers them when it publishes",
        )
        return version or "0.0.0"

    def _description(
        self, path: str, value: Any, pointer: str = "/description"
    ) -> tuple[str | None, dict[str, str] | None]:
        if value is None or isinstance(value, str):
            return value or None, None
        text = localized_text(value)
        if text is not None:
            return text, dict(value)
        self.issues.add(path, pointer, "must be a string or a map of language → text")
        return None, None

    # -- config ---------------------------------------------------------------------------------

    def _config(self, path: str, config: Any, app_slug: str) -> tuple[ConfigSpec, dict[str, Any]]:
        if config is None:
            return ConfigSpec(), {}
        if not isinstance(config, dict):
            self.issues.add(path, "/config", "must be a mapping with schema and value")
            return ConfigSpec(), {}
        schema = config.get("schema") or {}
        value = config.get("value") or {}
        if not isinstance(schema, dict):
            self.issues.add(path, "/config/schema", "must map each config field to its schema")
            schema = {}
        if not isinstance(value, dict):
            self.issues.add(path, "/config/value", "must be a mapping of config values")
            value = {}
        properties: dict[str, Any] = {}
        fields: list[ConfigField] = []
        for name, field_schema in schema.items():
            at = json_pointer("config", "schema", name)
            if not self._argument_schema(path, at, field_schema):
                continue
            secret = _is_secret(field_schema)
            if field_schema.get("ui:widget") == "password" and field_schema.get("type") not in (
                None,
                "string",
            ):
                self.issues.add(
                    path,
                    at + "/type",
                    f"is {field_schema.get('type')!r} but ui:widget password holds text; make it "
                    "type: string, or use another widget",
                )
                continue
            prop = plain_schema(field_schema)
            if secret:
                prop["writeOnly"] = True
            if name in value and not secret:
                prop["default"] = value[name]
            properties[name] = prop
            field = _config_field(name, field_schema, None if secret else value.get(name))
            field.extra["env"] = f"APP_CONFIG_{app_slug}_{name}"
            fields.append(field)
        secrets = {name for name, s in schema.items() if isinstance(s, dict) and _is_secret(s)}
        defaults = {k: v for k, v in value.items() if k not in secrets}
        return ConfigSpec(
            json_schema={"type": "object", "properties": properties}, fields=fields
        ), (defaults)

    def _argument_schema(self, path: str, at: str, schema: Any) -> bool:
        problem = schema_problem(plain_schema(schema) if isinstance(schema, dict) else schema)
        if problem is not None:
            self.issues.add(path, at, f"is not a valid JSON Schema: {problem}")
            return False
        return True

    # -- automations ----------------------------------------------------------------------------

    def _automations(self, path: str, workspace: dict[str, Any]) -> list[Automation]:
        found: dict[str, tuple[str, str, Any]] = {}
        inline = workspace.get("automations")
        if inline is not None and not isinstance(inline, dict):
            self.issues.add(path, "/automations", "must map automation slugs to automations")
        elif inline:
            for slug, document in inline.items():
                found[str(slug)] = (path, json_pointer("automations", slug), document)
        for file in sorted(p for p in self.files if _in_folder(p, "automations")):
            document = self._yaml(file)
            slug = document.get("slug") if isinstance(document, dict) else None
            slug = str(slug) if slug else _stem(file)
            if slug in found:
                self.issues.add(
                    file, "", f"defines automation {slug!r} again (also in {found[slug][0]})"
                )
                continue
            found[slug] = (file, "", document)
        mapped = [self._automation(slug, *where) for slug, where in found.items()]
        return [automation for automation in mapped if automation is not None]

    def _automation(self, slug: str, file: str, at: str, document: Any) -> Automation | None:
        if not isinstance(document, dict):
            self.issues.add(file, at, "must be a mapping (name, when, do, output …)")
            return None
        ok = True
        name, localized_name = self._description(file, document.get("name"), f"{at}/name")
        if document.get("name") is not None and name is None:
            ok = False
        private = document.get("private", False)
        if not isinstance(private, bool):
            self.issues.add(file, f"{at}/private", "must be true or false")
            ok = False
        arguments = document.get("arguments") or {}
        if not isinstance(arguments, dict):
            self.issues.add(file, f"{at}/arguments", "must map argument names to JSON Schemas")
            ok = False
        else:
            for argument, schema in arguments.items():
                where = f"{at}/arguments{json_pointer(argument)}"
                ok = self._argument_schema(file, where, schema) and ok
        when = document.get("when") or {}
        ok = self._when(file, f"{at}/when", when) and ok
        if "do" not in document:
            self.issues.add(
                file,
                f"{at}/do",
                "is required: the automation's instructions (write 'do: []' for none)",
            )
            return None
        do = document["do"]
        emitted: list[str] = []
        calls: list[str] = []
        ok = self._instructions(file, f"{at}/do", do, slug, emitted, calls) and ok
        if not ok:
            return None
        extra = {k: v for k, v in document.items() if k not in AUTOMATION_KEYS}
        for flag in ("disabled", "validateArguments"):
            if flag in extra and not isinstance(extra[flag], bool | None):
                self.issues.add(file, f"{at}/{flag}", "must be true or false")
                return None
        if localized_name:
            # Prisme.ai's ``name: {fr, en}``: the manifest's name is the English one.
            extra["localized_name"] = localized_name
        if calls:
            extra["calls"] = sorted(set(calls))
        if emitted:
            extra["emits"] = list(dict.fromkeys(emitted))
        description, _ = self._description(file, document.get("description"), f"{at}/description")
        return Automation(
            slug=slug,
            name=name,
            description=description,
            private=private,
            arguments=arguments,
            when=dict(when) if isinstance(when, dict) else {},
            do=do,
            output=document.get("output"),
            extra=extra,
        )

    def _when(self, file: str, at: str, when: Any) -> bool:
        if not isinstance(when, dict):
            self.issues.add(file, at, "must be a mapping of events, endpoint and schedules")
            return False
        ok = True
        events = when.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
            self.issues.add(file, f"{at}/events", "must be a list of event names")
            ok = False
        endpoint = when.get("endpoint", False)
        if not isinstance(endpoint, bool) and not (
            isinstance(endpoint, str) and len(endpoint) <= 128 and ENDPOINT_NAME.fullmatch(endpoint)
        ):
            self.issues.add(
                file,
                f"{at}/endpoint",
                "must be true/false or an endpoint path of at most 128 characters: segments of "
                "[A-Za-z0-9_.-] joined by '/', a segment ':id' or a last '*rest' a path "
                "parameter (v1/users/:id)",
            )
            ok = False
        schedules = when.get("schedules", [])
        if not isinstance(schedules, list):
            self.issues.add(file, f"{at}/schedules", "must be a list of cron expressions")
            return False
        for index, schedule in enumerate(schedules):
            if not _is_cron(schedule):
                self.issues.add(
                    file,
                    f"{at}/schedules/{index}",
                    f"{schedule!r} is not a cron expression of 5 fields, e.g. '0 5 * * *' (UTC)",
                )
                ok = False
        return ok

    def _instructions(
        self,
        file: str,
        at: str,
        instructions: Any,
        slug: str,
        emitted: list[str],
        calls: list[str],
    ) -> bool:
        if not isinstance(instructions, list):
            self.issues.add(file, at, "must be a list of instructions")
            return False
        ok = True
        for index, instruction in enumerate(instructions):
            where = f"{at}/{index}"
            if not isinstance(instruction, dict) or len(instruction) != 1:
                self.issues.add(file, where, "must be one instruction: a mapping with a single key")
                ok = False
                continue
            ((name, arguments),) = instruction.items()
            inner = where + json_pointer(name)
            for nested_at, nested in _nested_instructions(name, arguments, inner):
                ok = self._instructions(file, nested_at, nested, slug, emitted, calls) and ok
            if name == "emit":
                ok = self._emit(file, inner, arguments, slug, emitted) and ok
            elif name in UNSUPPORTED_INSTRUCTIONS:
                self.issues.add(
                    file,
                    inner,
                    f"the Prisme.ai instruction {name!r} is not supported by modyard's runtime "
                    f"(it runs {', '.join(sorted(NATIVE_INSTRUCTIONS))} and calls); remove it "
                    "or replace it with an automation of your own",
                )
                ok = False
            elif name not in NATIVE_INSTRUCTIONS:
                calls.append(str(name))
        return ok

    def _emit(self, file: str, at: str, arguments: Any, slug: str, emitted: list[str]) -> bool:
        event = arguments.get("event") if isinstance(arguments, dict) else None
        if not isinstance(event, str) or not event:
            self.issues.add(file, f"{at}/event", "is required: the name of the emitted event")
            return False
        emitted.append(event)
        if "{{" in event:
            # Computed at run time: only the template and its autocomplete hints are known.
            dynamic: dict[str, Any] = {"automation": slug, "event": event}
            if isinstance(arguments.get("autocomplete"), dict):
                dynamic["autocomplete"] = arguments["autocomplete"]
            self.dynamic_events.append(dynamic)
            return True
        spec = self.events.setdefault(event, EventSpec(name=event))
        emitted_by = spec.extra.setdefault("emitted_by", [])
        if slug not in emitted_by:
            emitted_by.append(slug)
        if arguments.get("private") is True:
            spec.extra["private"] = True
        return True

    # -- imports --------------------------------------------------------------------------------

    def _imports(self, path: str, workspace: dict[str, Any]) -> list[AppImport]:
        found: dict[str, tuple[str, str, Any]] = {}
        inline = workspace.get("imports")
        if inline is not None and not isinstance(inline, dict):
            self.issues.add(path, "/imports", "must map app instance slugs to imports")
        elif inline:
            for slug, document in inline.items():
                found[str(slug)] = (path, json_pointer("imports", slug), document)
        for file in sorted(p for p in self.files if _in_folder(p, "imports")):
            document = self._yaml(file)
            slug = document.get("slug") if isinstance(document, dict) else None
            slug = str(slug) if slug else _stem(file)
            if slug in found:
                self.issues.add(file, "", f"imports {slug!r} again (also in {found[slug][0]})")
                continue
            found[slug] = (file, "", document)
        mapped = [self._import(slug, *where) for slug, where in found.items()]
        return [item for item in mapped if item is not None]

    def _import(self, slug: str, file: str, at: str, document: Any) -> AppImport | None:
        if not isinstance(document, dict):
            self.issues.add(file, at, "must be a mapping with appSlug, appVersion and config")
            return None
        app = document.get("appSlug")
        if not isinstance(app, str) or not _MODULE_NAME.match(module_name(app)):
            self.issues.add(file, f"{at}/appSlug", "is required: the slug of the imported app")
            return None
        try:
            version = _import_range(document.get("appVersion"))
        except InvalidVersion as exc:
            self.issues.add(file, f"{at}/appVersion", str(exc))
            return None
        config = document.get("config")
        if config is None or isinstance(config, dict):
            return AppImport(slug=slug, app=module_name(app), version=version, config=config or {})
        # Any value is an import's config in Prisme.ai, e.g. '{{config}}': the importing app's
        # whole config, evaluated when the instance runs.
        return AppImport(slug=slug, app=module_name(app), version=version, config_expression=config)

    # -- files ----------------------------------------------------------------------------------

    def _yaml(self, path: str) -> Any:
        try:
            return load_yaml(self.files, path)
        except ManifestError as exc:
            self.issues.issues.extend(exc.issues)
            return None

    def _carried_files(self) -> list[ModuleFile]:
        carried = [
            ModuleFile(role="page", path=path, name=_stem(path))
            for path in sorted(self.files)
            if _in_folder(path, "pages")
        ]
        for page in carried:
            self._page_events(page.path)
        security = next(
            (
                found
                for name in ("security.yml", "security.yaml")
                if (found := self.files.find(name))
            ),
            None,
        )
        if security:
            carried.append(ModuleFile(role="security", path=security))
        return carried

    def _page_events(self, path: str) -> None:
        document = self._yaml(path)
        if document is None:
            return
        if not isinstance(document, dict):
            self.issues.add(path, "", "must be a mapping (name, slug, blocks …)")
            return
        slug = document.get("slug") if isinstance(document.get("slug"), str) else _stem(path)
        for at, key, value in _page_event_keys(document, ""):
            event = value.get("event") if isinstance(value, dict) else value
            if not isinstance(event, str) or not event.strip():
                self.issues.add(
                    path,
                    at,
                    f"is {value!r}; {key} names an event: write its name, e.g. {key}: "
                    "formSubmitted (or {event: formSubmitted})",
                )
                continue
            place = {"page": slug, "file": path, "pointer": at, "on": key}
            if "{{" in event:
                self.dynamic_events.append({**place, "event": event})
                continue
            spec = self.events.setdefault(event, EventSpec(name=event))
            spec.extra.setdefault("pages", []).append(
                {**place, "listens" if key in PAGE_LISTENS else "emits": True}
            )


# -- helpers ---------------------------------------------------------------------------------


#: Page and block keys that name events: the page listens to ``updateOn`` and emits the others.
PAGE_LISTENS = frozenset({"updateOn"})
PAGE_EMITS = frozenset({"onInit", "onSubmit", "onChange"})


def _page_event_keys(node: Any, at: str) -> Iterator[tuple[str, str, Any]]:
    """Every event-naming key of a page, its blocks and their nested blocks, with its pointer."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = at + json_pointer(str(key))
            if key in PAGE_LISTENS or key in PAGE_EMITS:
                yield here, str(key), value
            else:
                yield from _page_event_keys(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _page_event_keys(item, f"{at}/{index}")


def _is_secret(schema: dict[str, Any]) -> bool:
    return schema.get("secret") is True or schema.get("ui:widget") == "password"


def _nested_instructions(name: str, arguments: Any, at: str) -> Iterator[tuple[str, Any]]:
    """The instruction lists inside ``conditions``, ``repeat``, ``try`` and ``all``."""
    if name == "conditions" and isinstance(arguments, dict):
        for condition, branch in arguments.items():
            yield at + json_pointer(condition), branch
    elif name == "repeat" and isinstance(arguments, dict) and "do" in arguments:
        yield at + "/do", arguments["do"]
    elif name == "try" and isinstance(arguments, dict):
        for key in ("do", "catch"):
            if arguments.get(key) is not None:
                yield f"{at}/{key}", arguments[key]
    elif name == "all":
        yield at, arguments


def _automation_components(automations: list[Automation]) -> list[Component]:
    """Public automations as flow components, run by the runtime's ``automation`` executor."""
    return [
        Component(
            name=automation.slug,
            role=ComponentRole.action,
            label=automation.name,
            description=automation.description,
            in_ports=[Port(name="in")],
            out_ports=[Port(name="out")],
            properties_schema={
                "type": "object",
                # Localized titles read in English: a flow editor shows JSON Schema strings.
                "properties": {
                    name: plain_schema(schema) if isinstance(schema, dict) else schema
                    for name, schema in automation.arguments.items()
                },
            }
            if automation.arguments
            else None,
            executor=Executor(type=ExecutorType.automation, extra={"automation": automation.slug}),
        )
        for automation in automations
        if not automation.private
    ]


def _prismeai_version(value: Any) -> str | None:
    """SemVer, or Prisme.ai's publish number ``N`` as ``N.0.0``; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidVersion(f"{value!r} is not a version; use SemVer such as 1.0.0")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        return f"{int(value)}.0.0"
    return normalize_version(str(value))


def _import_range(value: Any) -> str | None:
    """``appVersion``: a publish number or SemVer pins that version; an npm range is kept."""
    if value is None or value == "" or value == "latest":
        return None
    if isinstance(value, bool):
        raise InvalidVersion(f"{value!r} is not a version; use a version such as '5' or '1.2.0'")
    text = str(value).strip()
    if isinstance(value, int) or text.isdigit():
        return f"{int(text)}.0.0"
    return normalize_range(text)


def _dependencies(imports: list[AppImport]) -> list[Dependency]:
    unique = dict.fromkeys((item.app, item.version or "*") for item in imports)
    return [Dependency(name=app, range=version, type="module") for app, version in unique]


def _is_cron(schedule: Any) -> bool:
    if not isinstance(schedule, str):
        return False
    parts = schedule.split()
    return len(parts) == 5 and all(_CRON_FIELD.match(part) for part in parts)


def _config_field(name: str, schema: dict[str, Any], default: Any) -> ConfigField:
    plain = plain_schema(schema)
    secret = _is_secret(schema)
    nested = plain.get("properties") if isinstance(plain.get("properties"), dict) else None
    options = [ConfigOption(value=value) for value in plain.get("enum", [])]
    return ConfigField(
        name=name,
        type=_field_type(plain, secret=secret, nested=nested is not None, options=bool(options)),
        label=plain.get("title") or name,
        description=plain.get("description"),
        default=default,
        secret=secret,
        multiple=plain.get("type") == "array",
        options=options,
        fields=[
            _config_field(child, child_schema, None)
            for child, child_schema in (nested or {}).items()
            if isinstance(child_schema, dict)
        ],
        extra={k: v for k, v in schema.items() if k.startswith("ui:")},
    )


def _field_type(schema: dict[str, Any], *, secret: bool, nested: bool, options: bool) -> str:
    widget = schema.get("ui:widget")
    if isinstance(widget, str):
        return widget
    if secret:
        return "password"
    if options:
        return "dropDown"
    kind = schema.get("type")
    if kind == "object":
        return "fieldsGroup" if nested else "json"
    if kind == "array":
        # A list of scalars is a multiple field of the item's type; anything else is raw JSON.
        items = schema.get("items")
        kind = items.get("type") if isinstance(items, dict) else None
        if kind not in _SCALAR_FIELD_TYPES:
            return "json"
    return _SCALAR_FIELD_TYPES.get(str(kind), "text")


_SCALAR_FIELD_TYPES = {
    "string": "text",
    "boolean": "toggle",
    "number": "number",
    "integer": "number",
}


def _stem(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


__all__ = ["PrismeAiAdapter", "load_yaml"]
