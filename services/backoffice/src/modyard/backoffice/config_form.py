"""The install form, generated from a module's configuration (its JSON Schema and UI fields), and
the submitted form turned back into a typed configuration.

Values that do not parse are sent as they were typed: the installer validates the configuration
and its problem names the field (``/body/config/port``), which the form then shows in words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: The installer treats these names as secrets too (see docs/installer.md).
SECRET_NAME = re.compile(r"(password|secret|token|apikey)$", re.IGNORECASE)
FIELD_PREFIX = "config."

InputKind = Literal["text", "password", "number", "integer", "checkbox", "select", "json"]


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: InputKind
    required: bool = False
    description: str | None = None
    default: Any = None
    options: list[tuple[str, str]] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name

    @property
    def input_id(self) -> str:
        return "config-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)

    @property
    def default_text(self) -> str:
        if self.default is None or self.kind == "password":
            return ""
        if self.kind == "json":
            return json.dumps(self.default)
        return str(self.default)


def _kind(schema: Mapping[str, Any], name: str, secret: bool) -> InputKind:
    types = schema.get("type")
    kind = types[0] if isinstance(types, list) and types else types
    if secret or schema.get("writeOnly") or schema.get("format") == "password":
        return "password"
    if "enum" in schema:
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind == "integer":
        return "integer"
    if kind == "number":
        return "number"
    if kind in ("object", "array"):
        return "json"
    return "password" if SECRET_NAME.search(name) else "text"


_UI_KINDS: dict[str, InputKind] = {
    "password": "password",
    "toggle": "checkbox",
    "boolean": "checkbox",
    "number": "number",
    "integer": "integer",
    "dropdownlist": "select",
    "choice": "select",
    "select": "select",
}


def form_fields(config: Mapping[str, Any] | None) -> list[FormField]:
    """One input per configuration property: the schema's properties first, then UI fields the
    schema does not describe."""
    config = config or {}
    schema = config.get("schema") or {}
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    ui = {str(item.get("name")): item for item in config.get("fields") or [] if item.get("name")}
    fields: list[FormField] = []
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        hint = ui.get(name, {})
        kind = _kind(spec, name, bool(hint.get("secret")))
        enum = [str(value) for value in spec.get("enum") or []]
        fields.append(
            FormField(
                name=name,
                label=str(hint.get("label") or spec.get("title") or name),
                kind=kind,
                required=name in required or hint.get("required") is True,
                description=spec.get("description") or hint.get("description"),
                default=spec.get("default", hint.get("default")),
                options=[(value, value) for value in enum],
            )
        )
    for name, hint in ui.items():
        if name in properties or hint.get("fields"):
            continue  # nested groups: the JSON Schema describes them, when there is one
        ui_type = str(hint.get("type") or "text").lower()
        kind = _UI_KINDS.get(ui_type, "text")
        if hint.get("secret") or (kind == "text" and SECRET_NAME.search(name)):
            kind = "password"
        options = [
            (str(option.get("value")), str(option.get("label") or option.get("value")))
            for option in hint.get("options") or []
        ]
        fields.append(
            FormField(
                name=name,
                label=str(hint.get("label") or name),
                kind="select" if options and kind != "password" else kind,
                required=hint.get("required") is True,
                description=hint.get("description"),
                default=hint.get("default"),
                options=options,
            )
        )
    return fields


def parse_config(
    fields: list[FormField], form: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The configuration from the submitted form, and local errors (JSON that does not parse)."""
    config: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for item in fields:
        raw = form.get(item.input_name)
        if item.kind == "checkbox":
            config[item.name] = raw is not None
            continue
        if raw is None or raw == "":
            continue  # only the values given are stored; defaults apply to the rest
        value: Any = raw
        if item.kind == "integer":
            try:
                value = int(raw)
            except ValueError:
                value = raw
        elif item.kind == "number":
            try:
                value = float(raw)
            except ValueError:
                value = raw
        elif item.kind == "json":
            try:
                value = json.loads(raw)
            except ValueError as exc:
                errors[item.name] = f"not valid JSON: {exc}"
                continue
        config[item.name] = value
    return config, errors
