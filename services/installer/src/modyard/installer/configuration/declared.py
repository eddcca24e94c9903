"""The settings a module's ``ConfigSpec`` declares, from its JSON Schema and its UI fields."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from modyard.modules.manifest import ConfigField, ConfigSpec

#: A setting's location by names (lists are walked through: see the package docstring).
Path: TypeAlias = tuple[str, ...]

#: Field types that show something but store nothing.
NOT_STORED_TYPES: Final = frozenset({"label", "info", "button"})

MISSING: Final = object()


@dataclass
class Setting:
    """A stored setting, from the schema's property and/or the UI field of the same name."""

    name: str
    ui: ConfigField | None = None
    schema: dict[str, Any] | None = None
    members: dict[str, Setting] = field(default_factory=dict)

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


def declared_settings(schema: Any, fields: Sequence[ConfigField]) -> dict[str, Setting]:
    settings: dict[str, Setting] = {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    for name, prop in (properties or {}).items():
        settings[name] = Setting(name, schema=prop if isinstance(prop, dict) else {})
    for config_field in fields:
        if config_field.type in NOT_STORED_TYPES:
            continue
        setting = settings.setdefault(config_field.name, Setting(config_field.name))
        setting.ui = config_field
    for name, setting in list(settings.items()):
        member_fields = [] if setting.ui is None else setting.ui.fields
        setting.members = declared_settings(setting.object_schema, member_fields)
        ui = setting.ui
        stores_nothing = ui is not None and ui.type == "fieldsGroup" and not setting.members
        if stores_nothing and setting.schema is None:
            del settings[name]  # a group of labels and buttons stores nothing
    return settings


def spec_settings(spec: ConfigSpec) -> dict[str, Setting]:
    return declared_settings(spec.json_schema, spec.fields)
