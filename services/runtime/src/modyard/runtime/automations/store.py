"""Saving and reading a workspace's automations and app settings (the service layer's DB side)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.errors import Conflict, InvalidParam, NotFound, ValidationFailed
from modyard.common.json_pointer import escape_token
from modyard.common.secrets import SecretBox
from modyard.runtime.automations.definitions import (
    Automation,
    DefinitionError,
    compile_automation,
)
from modyard.runtime.automations.models import AutomationWorkspace, StoredAutomation
from modyard.runtime.automations.secret_config import MASK, seal, secret_fields


def checked(slug: str, definition: Mapping[str, Any], *, pointer: str = "/body") -> Automation:
    """``definition`` compiled, or a 422 whose pointers say what to change."""
    try:
        return compile_automation(slug, definition)
    except DefinitionError as exc:
        raise ValidationFailed(
            f"Automation {slug!r} cannot run as written: fix the fields listed in errors.",
            errors=[
                InvalidParam(pointer=f"{pointer}{where}", detail=reason)
                for where, reason in exc.problems
            ],
        ) from None


async def workspace_settings(session: AsyncSession, workspace: str) -> AutomationWorkspace:
    """The workspace's row, created empty on first use (locked for the transaction)."""
    await session.execute(
        pg_insert(AutomationWorkspace)
        .values(workspace=workspace, config_schema={}, config_value={}, revision=1)
        .on_conflict_do_nothing(index_elements=["workspace"])
    )
    row = await session.scalar(
        select(AutomationWorkspace)
        .where(AutomationWorkspace.workspace == workspace)
        .with_for_update()
    )
    assert row is not None
    return row


async def touch(session: AsyncSession, workspace: str) -> None:
    """Tell caches the workspace changed."""
    await workspace_settings(session, workspace)
    await session.execute(
        update(AutomationWorkspace)
        .where(AutomationWorkspace.workspace == workspace)
        .values(revision=AutomationWorkspace.revision + 1)
    )


async def save_automation(
    session: AsyncSession, workspace: str, slug: str, definition: Mapping[str, Any]
) -> tuple[Automation, bool]:
    """Create or replace; returns the compiled automation and whether it is new."""
    automation = checked(slug, definition)
    endpoint = automation.endpoint
    if endpoint is not None:
        for other in await list_automations(session, workspace):
            if other.slug != slug and _endpoint_of(other) == endpoint:
                raise Conflict(
                    f"Automation {other.slug!r} already serves endpoint {endpoint!r}; give this "
                    "one another name with 'when: {endpoint: <name>}'.",
                    slug="endpoint-taken",
                )
    created = await _put_automation(session, workspace, slug, automation)
    await touch(session, workspace)
    await session.flush()
    return automation, created


async def _put_automation(
    session: AsyncSession, workspace: str, slug: str, automation: Automation
) -> bool:
    """Store ``automation`` under ``slug``, replacing any; returns whether it is new."""
    existing = await session.get(StoredAutomation, (workspace, slug))
    if existing is None:
        session.add(
            StoredAutomation(workspace=workspace, slug=slug, definition=automation.source())
        )
    else:
        existing.definition = automation.source()
    return existing is None


def _endpoint_of(row: StoredAutomation) -> str | None:
    endpoint = (row.definition.get("when") or {}).get("endpoint")
    if endpoint is True:
        return row.slug
    return endpoint if isinstance(endpoint, str) and endpoint else None


async def list_automations(session: AsyncSession, workspace: str) -> list[StoredAutomation]:
    rows = await session.scalars(
        select(StoredAutomation)
        .where(StoredAutomation.workspace == workspace)
        .order_by(StoredAutomation.slug)
    )
    return list(rows)


async def get_automation(session: AsyncSession, workspace: str, slug: str) -> StoredAutomation:
    found = await session.get(StoredAutomation, (workspace, slug))
    if found is None:
        raise NotFound(
            f"Workspace {workspace!r} has no automation {slug!r}; list them with "
            f"GET /v1/workspaces/{workspace}/automations."
        )
    return found


async def delete_automation(session: AsyncSession, workspace: str, slug: str) -> None:
    await get_automation(session, workspace, slug)
    await session.execute(
        delete(StoredAutomation).where(
            StoredAutomation.workspace == workspace, StoredAutomation.slug == slug
        )
    )
    await touch(session, workspace)


async def save_settings(
    session: AsyncSession,
    workspace: str,
    box: SecretBox,
    *,
    label: str | None,
    description: str | None,
    photo: str | None,
    config_schema: dict[str, Any],
    config_value: dict[str, Any],
) -> AutomationWorkspace:
    row = await workspace_settings(session, workspace)
    row.label, row.description, row.photo = label, description, photo
    secrets = secret_fields(config_schema)
    previous = row.config_value or {}
    # Only a value sealed as a secret before is kept for a mask: a plain field's value that merely
    # looks sealed must not become a secret the runtime would decrypt.
    was_secret = secret_fields(row.config_schema or {})
    sealed: dict[str, Any] = {}
    for name, value in config_value.items():
        if name in secrets and value == MASK and name in previous and name in was_secret:
            sealed[name] = previous[name]  # the masked value sent back: unchanged
        elif name in secrets:
            sealed[name] = seal(value, box)
        else:
            sealed[name] = value
    row.config_schema, row.config_value = config_schema, sealed
    row.revision += 1
    await session.flush()
    return row


async def import_source(
    session: AsyncSession, workspace: str, document: Mapping[str, Any], box: SecretBox
) -> list[str]:
    """Replace the workspace's settings and automations with a Prisme.ai workspace document
    (``name``, ``description``, ``photo``, ``config: {schema, value}``, ``automations``);
    automations it does not name are deleted. Every problem is reported at once (422)."""
    automations = document.get("automations") or {}
    problems: list[InvalidParam] = []
    if not isinstance(automations, Mapping):
        raise ValidationFailed(
            "automations must map slugs to automations.",
            errors=[InvalidParam(pointer="/body/automations", detail="must be a mapping")],
        )
    compiled: dict[str, Automation] = {}
    for slug, definition in automations.items():
        at = f"/body/automations/{escape_token(str(slug))}"
        try:
            compiled[str(slug)] = compile_automation(str(slug), definition)
        except DefinitionError as exc:
            problems += [InvalidParam(pointer=f"{at}{w}", detail=r) for w, r in exc.problems]
    endpoints: dict[str, str] = {}
    for slug, automation in compiled.items():
        endpoint = automation.endpoint
        if endpoint is not None and endpoint in endpoints:
            problems.append(
                InvalidParam(
                    pointer=f"/body/automations/{escape_token(slug)}/when/endpoint",
                    detail=f"endpoint {endpoint!r} is served by {endpoints[endpoint]!r} already",
                )
            )
        elif endpoint is not None:
            endpoints[endpoint] = slug
    config = document.get("config") or {}
    schema = config.get("schema") if isinstance(config, Mapping) else None
    value = config.get("value") if isinstance(config, Mapping) else None
    if not isinstance(schema or {}, Mapping) or not isinstance(value or {}, Mapping):
        problems.append(
            InvalidParam(pointer="/body/config", detail="must be {schema: {...}, value: {...}}")
        )
    if problems:
        raise ValidationFailed(
            f"The workspace source of {workspace!r} cannot be used as it is: fix the fields "
            "listed in errors.",
            errors=problems,
        )
    description = document.get("description")
    if isinstance(description, Mapping):  # Prisme.ai's {en: …, fr: …}
        description = description.get("en") or next(iter(description.values()), None)
    await save_settings(
        session,
        workspace,
        box,
        label=str(document["name"]) if document.get("name") else None,
        description=str(description) if description else None,
        photo=str(document["photo"]) if document.get("photo") else None,
        config_schema=dict(schema or {}),
        config_value=dict(value or {}),
    )
    await session.execute(
        delete(StoredAutomation).where(
            StoredAutomation.workspace == workspace, StoredAutomation.slug.not_in(list(compiled))
        )
    )
    for slug, automation in compiled.items():
        await _put_automation(session, workspace, slug, automation)
    await touch(session, workspace)
    await session.flush()
    return sorted(compiled)
