"""ACL rules: storing them, and listing the components a person may use."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common import component_refs
from modyard.common.errors import NotFound
from modyard.installer.acl.rules import (
    AclType,
    Rule,
    Subject,
    allows,
    component_resource,
    module_resources,
)
from modyard.installer.models import AclRule, Installation, Workspace
from modyard.installer.schemas import AclRuleIn, ComponentOut

USE = "use"


async def list_rules(session: AsyncSession, acl_type: AclType) -> list[AclRule]:
    return list(
        (
            await session.scalars(
                select(AclRule).where(AclRule.type == acl_type.value).order_by(AclRule.created_at)
            )
        ).all()
    )


async def add_rule(
    session: AsyncSession, acl_type: AclType, rule: AclRuleIn, actor: str
) -> AclRule:
    stored = AclRule(type=acl_type.value, created_by=actor, **rule.model_dump())
    session.add(stored)
    await session.flush()
    await session.refresh(stored)
    return stored


async def delete_rule(session: AsyncSession, acl_type: AclType, rule_id: uuid.UUID) -> None:
    rule = await session.get(AclRule, rule_id)
    if rule is None or rule.type != acl_type.value:
        raise NotFound(f"There is no {acl_type.value} rule {rule_id}.")
    await session.delete(rule)
    await session.flush()


async def grant_users(session: AsyncSession, installation: Installation, actor: str) -> AclRule:
    """The rule that opens every component of the installation's module to all users (idempotent)."""
    resource = module_resources(installation.module)
    existing = await session.scalar(
        select(AclRule).where(
            AclRule.type == AclType.components.value,
            AclRule.role == "user",
            AclRule.resource == resource,
        )
    )
    if existing is not None:
        return existing
    return await add_rule(
        session, AclType.components, AclRuleIn(role="user", resource=resource, action=USE), actor
    )


def _rule(row: AclRule) -> Rule:
    return Rule(
        resource=row.resource,
        action=row.action,
        role=row.role,
        user=row.user,
        domain=row.domain,
        attributes=row.attributes or {},
    )


async def usable_components(
    session: AsyncSession, workspace: Workspace, subject: Subject
) -> list[ComponentOut]:
    rules = [_rule(row) for row in await list_rules(session, AclType.components)]
    installations = (
        await session.scalars(
            select(Installation)
            .where(Installation.workspace_id == workspace.id)
            .order_by(Installation.slug)
        )
    ).all()
    # Every component of the workspace, visible or not: the runtime resolves a ref against all.
    refs = component_refs.refs(
        component_refs.Candidate(installation.slug, installation.module, component["name"])
        for installation in installations
        for component in installation.manifest.get("components", [])
    )
    found: list[ComponentOut] = []
    for installation in installations:
        for component in installation.manifest.get("components", []):
            resource = component_resource(installation.module, component["name"])
            attributes = {"private": component.get("private", False), "role": component["role"]}
            if allows(rules, subject, resource, USE, attributes):
                found.append(
                    ComponentOut(
                        ref=refs[
                            component_refs.Candidate(
                                installation.slug, installation.module, component["name"]
                            )
                        ],
                        resource=resource,
                        installation=installation.slug,
                        module=installation.module,
                        version=installation.version,
                        name=component["name"],
                        role=component["role"],
                        label=component.get("label"),
                        description=component.get("description"),
                    )
                )
    return found
