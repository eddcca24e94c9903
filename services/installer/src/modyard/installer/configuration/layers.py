"""Defaults and the merge rule of the layers: instance over environment over defaults."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from modyard.installer.configuration.declared import MISSING, Setting, spec_settings
from modyard.modules.manifest import ConfigSpec


def _own_default(setting: Setting) -> Any:
    if setting.ui is not None and setting.ui.default is not None:
        return setting.ui.default
    if setting.schema is not None and setting.schema.get("default") is not None:
        return setting.schema["default"]
    return MISSING


def default_values(settings: Mapping[str, Setting]) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for name, setting in settings.items():
        own = _own_default(setting)
        if setting.is_group and not setting.multiple:
            members = default_values(setting.members)
            if own is MISSING:
                if members:
                    defaults[name] = members
                continue
            if isinstance(own, Mapping):
                defaults[name] = _merge(members, own, setting.members)
                continue
        if own is not MISSING:
            defaults[name] = copy.deepcopy(own)
    return defaults


def _merge(lower: Any, higher: Any, members: Mapping[str, Setting] | None) -> Any:
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


def _fill_elements(value: Any, settings: Mapping[str, Setting]) -> Any:
    """Each element of a multiple group gets its members' defaults (recursively)."""
    if not isinstance(value, dict):
        return value
    for name, setting in settings.items():
        item = value.get(name)
        if not setting.is_group:
            continue
        if setting.multiple and isinstance(item, list):
            defaults = default_values(setting.members)
            value[name] = [
                _fill_elements(_merge(defaults, element, setting.members), setting.members)
                if isinstance(element, Mapping)
                else element
                for element in item
            ]
        elif isinstance(item, dict):
            _fill_elements(item, setting.members)
    return value


def layered(settings: Mapping[str, Setting], layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:  # lowest first
        merged = _merge(merged, layer, settings)
    result: dict[str, Any] = _fill_elements(merged, settings)
    return result


def module_defaults(spec: ConfigSpec) -> dict[str, Any]:
    """The configuration a module gives when nothing is set."""
    settings = spec_settings(spec)
    return layered(settings, [default_values(settings)])


def apply_defaults(spec: ConfigSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` over the module's defaults (the package docstring's merge rule)."""
    settings = spec_settings(spec)
    return layered(settings, [default_values(settings), values])
