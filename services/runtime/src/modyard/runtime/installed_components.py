"""What is installed where, as the runtime knows it from the installer's events.

Event-carried state: the installer's ``installation.*`` events hold each installation's components
(role, executor, ports, properties schema), so the runtime validates and runs flows without calling
the installer for every message. Removal keeps the rows with ``present = false``: a flow that uses a
removed module then fails in a way that says what is missing, and recovers when it comes back.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common import component_refs
from modyard.contracts.events.installer import InstallationEvent
from modyard.runtime.models import InstalledComponent


class AmbiguousComponent(ValueError):
    """A reference that names several installed components (see :mod:`component_refs`)."""


async def apply_installation_event(
    session: AsyncSession, data: InstallationEvent, *, removed: bool
) -> None:
    workspace, slug = data.workspace, data.slug
    if removed:
        await session.execute(
            update(InstalledComponent)
            .where(InstalledComponent.workspace == workspace, InstalledComponent.slug == slug)
            .values(present=False)
        )
        return
    components = data.components
    names = [component.name for component in components]
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
            "component": component.name,
            "installation_id": uuid.UUID(data.installation_id),
            "module": data.module,
            "version": data.version,
            "role": component.role,
            "executor": component.executor,
            # The module's format too: a Slingr package's requests name its installation
            # instead of carrying its configuration (executors.py JsExecutor).
            "spec": {**component.model_dump(mode="json"), "format": data.format},
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


async def find(session: AsyncSession, workspace: str, reference: str) -> InstalledComponent | None:
    """The installed component a flow node's ``component`` names in ``workspace``, if any.

    Slugs and component names may both contain dots, so the reference is matched against the rows
    of every slug it could start with (the grammar is :mod:`modyard.common.component_refs`). A
    component that is present wins over one that was removed; two present ones are ambiguous.
    """
    slugs = component_refs.candidate_slugs(reference)
    if not slugs:
        return None
    rows = (
        await session.scalars(
            select(InstalledComponent).where(
                InstalledComponent.workspace == workspace, InstalledComponent.slug.in_(slugs)
            )
        )
    ).all()
    found = [
        row
        for row in rows
        if component_refs.accepts(
            reference, component_refs.Candidate(row.slug, row.module, row.component)
        )
    ]
    present = [row for row in found if row.present]
    if len(present) > 1:
        raise AmbiguousComponent(
            component_refs.ambiguity_detail(
                reference,
                [component_refs.Candidate(row.slug, row.module, row.component) for row in present],
            )
        )
    if present:
        return present[0]
    return found[0] if found else None
