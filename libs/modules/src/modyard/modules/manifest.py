"""The canonical manifest: what every published module is normalised into, whatever its format.

Format adapters (``modyard.modules.formats``) map their documents into this model; the rest of the
platform (installer, runtime, gateway, deployer) reads only this. It is published as JSON Schema at
``GET /v1/schemas/manifest``. Fields a format has and this model does not name are kept under
``extra`` of the nearest object, so nothing a document says is lost.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modyard.common.semver import normalize_range, normalize_version

MODULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
_MODULE_NAME = re.compile(MODULE_NAME_PATTERN)


class ModuleFormat(StrEnum):
    native = "native"
    appmixer = "appmixer"
    slingr = "slingr"
    prismeai = "prismeai"
    appcell = "appcell"
    container = "container"


class ModuleKind(StrEnum):
    connector = "connector"
    package = "package"
    app = "app"
    cell = "cell"
    container = "container"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ChangelogEntry(_Model):
    version: str
    changes: list[str] = Field(default_factory=list)
    #: True when this version breaks compatibility (Appmixer: stops flows using the module).
    breaking: bool = False


class Dependency(_Model):
    name: str = Field(min_length=1)
    #: npm-style range, normalised (``v`` prefixes removed).
    range: str = "*"
    type: Literal["module", "service"] = "module"

    @field_validator("range")
    @classmethod
    def _valid_range(cls, value: str) -> str:
        return normalize_range(value)


class Requirements(_Model):
    #: Range of the platform/engine version the module needs.
    platform: str | None = None
    #: Storage the module needs, e.g. ``etcd`` (AppCell).
    storage: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("platform")
    @classmethod
    def _valid_platform(cls, value: str | None) -> str | None:
        return None if value is None else normalize_range(value)


class ConfigOption(_Model):
    value: Any
    label: str | None = None


class ConfigField(_Model):
    """One configuration field with the UI hints a console needs to render and check it."""

    name: str
    #: text, password, toggle, button, buttonsGroup, dropDown, number, json, fieldsGroup, …
    type: str
    label: str | None = None
    description: str | None = None
    #: ``True``/``False`` or an expression evaluated against the configuration (e.g. ``@config.x``).
    required: bool | str = False
    visibility: bool | str = True
    default: Any = None
    secret: bool = False
    multiple: bool = False
    options: list[ConfigOption] = Field(default_factory=list)
    allow_custom: bool = False
    #: Nested fields of a group (``fieldsGroup``).
    fields: list[ConfigField] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class ConfigSpec(_Model):
    """The installation's configuration: a JSON Schema plus UI fields."""

    json_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    fields: list[ConfigField] = Field(default_factory=list)


class Port(_Model):
    name: str
    label: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    options: list[dict[str, Any]] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class ExecutorType(StrEnum):
    core = "core"
    automation = "automation"
    amqp = "amqp"
    http = "http"
    js = "js"


class Executor(_Model):
    type: ExecutorType
    #: Path of the code file inside the archive, when there is one.
    entrypoint: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class ComponentRole(StrEnum):
    trigger = "trigger"
    action = "action"


class Component(_Model):
    name: str
    role: ComponentRole
    label: str | None = None
    description: str | None = None
    icon: str | None = None
    #: Polling triggers: how often they run (Appmixer's ``tick``).
    polling_interval_seconds: int | None = None
    webhook: bool = False
    private: bool = False
    in_ports: list[Port] = Field(default_factory=list)
    out_ports: list[Port] = Field(default_factory=list)
    properties_schema: dict[str, Any] | None = None
    inspector: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    quota: dict[str, Any] | None = None
    executor: Executor
    extra: dict[str, Any] = Field(default_factory=dict)


class EventSpec(_Model):
    name: str
    label: str | None = None
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    extra: dict[str, Any] = Field(default_factory=dict)


class Automation(_Model):
    """A Prisme.ai automation (apps)."""

    slug: str
    name: str | None = None
    description: str | None = None
    private: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)
    when: dict[str, Any] = Field(default_factory=dict)
    do: list[Any] = Field(default_factory=list)
    output: Any = None
    extra: dict[str, Any] = Field(default_factory=dict)


class AppImport(_Model):
    """A nested app instance an app declares (Prisme.ai ``imports``)."""

    slug: str
    app: str
    version: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    #: A config written as something other than a mapping (Prisme.ai takes any value, typically a
    #: template such as ``'{{config}}'`` evaluated in the importing app's context), as written;
    #: ``config`` is then empty.
    config_expression: Any = None


class PinnedSchema(_Model):
    """A JSON Schema resolved at publish time to a file bundled in the archive."""

    #: The reference as written (URL or relative path).
    reference: str
    #: Path of the bundled file inside the archive (of the platform's file when ``source`` says so).
    path: str
    #: ``sha256:<hex>`` of the file's bytes.
    digest: str
    #: ``platform``: a schema modyard ships as the platform (AppCell's ``core/`` interfaces), which
    #: the archive need not carry.
    source: Literal["archive", "platform"] = "archive"


class CellSchemaRef(_Model):
    """An inline schema, or a reference pinned to a bundled file."""

    inline: dict[str, Any] | None = None
    pinned: PinnedSchema | None = None


class CellAction(_Model):
    resource: str
    action: str
    #: ``protected``, ``public`` or ``rbac::<permission>``.
    security: str = "protected"
    payload: CellSchemaRef | None = None
    result: CellSchemaRef | None = None
    postpayload: CellSchemaRef | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class CellResource(_Model):
    identifier: str
    payload: CellSchemaRef | None = None
    result: CellSchemaRef | None = None
    #: REST verbs the resource offers (``get``, ``post``, …) and RPC actions.
    rest: list[str] = Field(default_factory=list)
    rpc: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class CellSpec(_Model):
    license: str | None = None
    type: str | None = None
    homepage: str | None = None
    support: dict[str, Any] = Field(default_factory=dict)
    implements: list[PinnedSchema] = Field(default_factory=list)
    actions: list[CellAction] = Field(default_factory=list)
    resources: list[CellResource] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    ui: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


class EnvVar(_Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str | None = None
    required: bool = False
    secret: bool = False
    default: str | None = None


class ContainerSpec(_Model):
    #: The repository, ``host[:port]/path`` (no tag, no digest).
    image: str = Field(min_length=1)
    #: None when the image is pinned by ``digest`` alone.
    default_tag: str | None = "latest"
    #: ``sha256:<hex>`` (or sha512) when the reference pins the content (``…@sha256:…``).
    digest: str | None = None
    env: list[EnvVar] = Field(default_factory=list)
    ports: list[int] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class ModuleFile(_Model):
    """A file of the archive that the module's metadata names (script, listener, flow step, …)."""

    role: str
    path: str
    name: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Manifest(_Model):
    name: str = Field(pattern=MODULE_NAME_PATTERN)
    version: str
    format: ModuleFormat
    kind: ModuleKind
    label: str | None = None
    description: str | None = None
    icon: str | None = None
    changelog: list[ChangelogEntry] = Field(default_factory=list)
    dependencies: list[Dependency] = Field(default_factory=list)
    requires: Requirements = Field(default_factory=Requirements)
    config: ConfigSpec = Field(default_factory=ConfigSpec)
    components: list[Component] = Field(default_factory=list)
    events: list[EventSpec] = Field(default_factory=list)
    automations: list[Automation] = Field(default_factory=list)
    imports: list[AppImport] = Field(default_factory=list)
    files: list[ModuleFile] = Field(default_factory=list)
    cell: CellSpec | None = None
    container: ContainerSpec | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        return normalize_version(value)


def module_name(text: str) -> str:
    """A format's own name turned into a module name (lower case, ``[a-z0-9._-]``)."""
    candidate = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-.")
    return candidate


def manifest_json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://modyard.dev/schemas/manifest.json"
    return schema
