"""What is installed where, as the runtime knows it from the installer's events.

Event-carried state: the installer's ``installation.*`` events hold each installation's components
(role, executor, ports, properties schema), so the runtime validates and runs flows without calling
the installer for every message. Removal keeps the rows with ``present = false``: a flow that uses a
removed module then fails in a way that says what is missing, and recovers when it comes back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.runtime.models import InstalledComponent


@dataclass(frozen=True)
class ComponentRef:
    """A node's ``component``: ``core.<name>`` or ``<installation slug>.<component>``."""

    slug: str
    component: str

    @property
    def is_core(self) -> bool:
        return self.slug == "core"

    @classmethod
    def parse(cls, text: str) -> ComponentRef:
        slug, _, component = text.partition(".")
        if not slug or not component:
            raise ValueError(f"{text!r} is not '<installation>.<component>' or 'core.<name>'")
        return cls(slug, component)


async def apply_installation_event(
    session: AsyncSession, data: Mapping[str, Any], *, removed: bool
) -> None:
    workspace, slug = str(data["workspace"]), str(data["slug"])
    if removed:
        await session.execute(
            update(InstalledComponent)
            .where(InstalledComponent.workspace == workspace, InstalledComponent.slug == slug)
            .values(present=False)
        )
        return
    components = list(data.get("components") or [])
    names = [str(component["name"]) for component in components]
    # Components the new version no longer has are gone, like a removal of just those.
    await session.execute(
        update(InstalledComponent)
        .where(
            InstalledComponent.workspace == workspace,
            InstalledComponent.slug == slug,
            InstalledComponent.component.not_in(names),
        )
        .values(present=False)
    )
    for component in components:
        values = {
            "workspace": workspace,
            "slug": slug,
            "component": str(component["name"]),
            "installation_id": uuid.UUID(str(data["installation_id"])),
            "module": str(data["module"]),
            "version": str(data["version"]),
            "role": str(component["role"]),
            "executor": component.get("executor"),
            "spec": dict(component),
            "present": True,
        }
        await session.execute(
            pg_insert(InstalledComponent)
            .values(**values)
            .on_conflict_do_update(
                index_elements=["workspace", "slug", "component"],
                set_={
                    key: value
                    for key, value in values.items()
                    if key not in ("workspace", "slug", "component")
                },
            )
        )


async def find(
    session: AsyncSession, workspace: str, ref: ComponentRef
) -> InstalledComponent | None:
    found: InstalledComponent | None = await session.scalar(
        select(InstalledComponent).where(
            InstalledComponent.workspace == workspace,
            InstalledComponent.slug == ref.slug,
            InstalledComponent.component == ref.component,
        )
    )
    return found
