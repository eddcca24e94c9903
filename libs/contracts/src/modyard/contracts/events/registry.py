"""The registry's events: a module version published or yanked."""

from __future__ import annotations

from typing import Final

from modyard.contracts.events import EventData

MODULE_PUBLISHED: Final = "modyard.registry.module.published"
MODULE_YANKED: Final = "modyard.registry.module.yanked"


class ModuleVersionEvent(EventData):
    """``data`` of :data:`MODULE_PUBLISHED` and :data:`MODULE_YANKED`."""

    name: str
    version: str
    format: str
    kind: str
    digest: str
    yanked: bool
    reason: str | None
