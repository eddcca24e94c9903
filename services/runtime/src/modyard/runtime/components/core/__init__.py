"""The built-in components that are not triggers: ``core.http``, ``core.transform``,
``core.condition``, ``core.delay``, ``core.emit`` and ``core.log`` (one module each; the triggers
belong to the engine).

Every one takes messages on its ``in`` port, has a JSON Schema for its properties and the output
ports it may send to. :func:`check_core_properties` adds, at flow start and after the schema, what
a schema cannot say (templates and expressions that do not parse, a fixed URL that is not http).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modyard.runtime.components.base import Component
from modyard.runtime.components.core._shared import IN_PORT, CoreComponent
from modyard.runtime.components.core.condition import ConditionComponent
from modyard.runtime.components.core.delay import DelayComponent
from modyard.runtime.components.core.emit import EmitComponent
from modyard.runtime.components.core.http import HttpComponent
from modyard.runtime.components.core.log import LogComponent
from modyard.runtime.components.core.transform import TransformComponent

_CORE: Final[dict[str, CoreComponent]] = {
    component.name: component
    for component in (
        HttpComponent(),
        TransformComponent(),
        ConditionComponent(),
        DelayComponent(),
        EmitComponent(),
        LogComponent(),
    )
}

#: Name (``core.transform``) → the component's single instance.
CORE_COMPONENTS: Final[dict[str, Component]] = dict(_CORE)


def core_component(name: str) -> Component | None:
    """The built-in component called ``name``, or ``None``."""
    return CORE_COMPONENTS.get(name)


def check_core_properties(name: str, properties: Mapping[str, Any]) -> None:
    """Raise ``TemplateError`` (a ``ValueError`` with a ``pointer`` relative to the properties)
    when the properties of a ``name`` node, already valid for its schema, cannot run."""
    component = _CORE.get(name)
    if component is None:
        raise ValueError(f"there is no core component {name!r}")
    component.check(properties)


async def aclose_core_components() -> None:
    """Release what the components hold (the HTTP client); for the runtime's shutdown."""
    for component in _CORE.values():
        if isinstance(component, HttpComponent):
            await component.aclose()


__all__ = [
    "CORE_COMPONENTS",
    "IN_PORT",
    "ConditionComponent",
    "DelayComponent",
    "EmitComponent",
    "HttpComponent",
    "LogComponent",
    "TransformComponent",
    "aclose_core_components",
    "check_core_properties",
    "core_component",
]
