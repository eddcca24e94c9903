from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from modyard.common.auth import CurrentPrincipal, Principal, Role, require_roles
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, Forbidden
from modyard.installer.acl import service as access
from modyard.installer.acl.rules import AclType, Subject
from modyard.installer.installations.queries import get_installation
from modyard.installer.installations.steps import INSTALLATION_SLUG_PATTERN
from modyard.installer.models import AclRule
from modyard.installer.schemas import (
    WORKSPACE_PATTERN,
    AclRuleIn,
    AclRuleOut,
    ComponentOut,
)
from modyard.installer.workspaces import service as workspaces

router = APIRouter(tags=["acl"], responses=PROBLEM_RESPONSES)
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]


def _out(rule: AclRule) -> AclRuleOut:
    return AclRuleOut.model_validate(rule, from_attributes=True)


@router.get("/v1/acl-types", response_model=list[AclType])
async def acl_types(_: CurrentPrincipal) -> list[AclType]:
    return list(AclType)


@router.get("/v1/acl/{type}", response_model=list[AclRuleOut])
async def list_rules(type: AclType, session: DbSession, _: Operator) -> list[AclRuleOut]:
    return [_out(rule) for rule in await access.list_rules(session, type)]


@router.post("/v1/acl/{type}", status_code=status.HTTP_201_CREATED, response_model=AclRuleOut)
async def add_rule(
    type: AclType, body: AclRuleIn, session: DbSession, principal: Operator
) -> AclRuleOut:
    """Add a rule: who (role, user email or email domain) may do ``action`` on ``resource``."""
    return _out(await access.add_rule(session, type, body, principal.subject))


@router.delete(
    "/v1/acl/{type}/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
async def delete_rule(
    type: AclType, rule_id: uuid.UUID, session: DbSession, _: Operator
) -> Response:
    await access.delete_rule(session, type, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/workspaces/{ws}/installations/{slug}/acl/grant-users",
    status_code=status.HTTP_201_CREATED,
    response_model=AclRuleOut,
)
async def grant_users(
    ws: Annotated[str, Path(pattern=WORKSPACE_PATTERN)],
    slug: Annotated[str, Path(pattern=INSTALLATION_SLUG_PATTERN)],
    session: DbSession,
    principal: Operator,
) -> AclRuleOut:
    """Open the installation's components to every user (the rule is shared by its module)."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    installation = await get_installation(session, workspace, slug)
    return _out(await access.grant_users(session, installation, principal.subject))


@router.get("/v1/workspaces/{ws}/components", response_model=list[ComponentOut])
async def usable_components(
    ws: Annotated[str, Path(pattern=WORKSPACE_PATTERN)],
    session: DbSession,
    principal: CurrentPrincipal,
    as_user: Annotated[
        str | None, Query(alias="as", max_length=255, description="List for this user (email)")
    ] = None,
) -> list[ComponentOut]:
    """The components of the workspace's installations that the caller, or ``?as=`` user, may use."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    if as_user is not None and as_user != principal.subject:
        if not principal.has_role(Role.operator, Role.service):
            raise Forbidden(
                "Only operators and services may list components on behalf of someone else."
            )
        subject = Subject(roles=frozenset({"user"}), email=as_user)
    else:
        subject = Subject(
            roles=frozenset(role.value for role in principal.roles), email=principal.subject
        )
    return await access.usable_components(session, workspace, subject)
