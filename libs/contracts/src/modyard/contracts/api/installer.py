"""The installer's answers: installations, workspaces, ACL rules, components, revocations."""

from __future__ import annotations

from typing import Any

from modyard.contracts.api import ApiModel, Timestamp


class InstallationOut(ApiModel):
    id: str
    workspace: str
    slug: str
    module: str
    version: str
    format: str
    kind: str
    pinned: bool
    #: Slug of the installation this one belongs to.
    parent: str | None
    installed_as_dependency: bool
    #: Secret values are masked.
    config: dict[str, Any]
    lock: dict[str, Any]
    #: Slugs this installation needs, and slugs that need it.
    dependencies: list[str]
    dependents: list[str]
    created_at: Timestamp
    updated_at: Timestamp


class InstallResult(InstallationOut):
    #: Other installations this request created (its missing dependencies), by slug.
    also_installed: list[str]


class Member(ApiModel):
    subject: str
    role: str
    added_at: Timestamp


class WorkspaceOut(ApiModel):
    slug: str
    name: str
    created_at: Timestamp
    members: list[Member]


class AclRuleOut(ApiModel):
    #: Exactly one of role, user (an email) or domain.
    role: str | None = None
    user: str | None = None
    domain: str | None = None
    resource: str
    action: str
    attributes: dict[str, Any]
    id: str
    type: str
    created_by: str
    created_at: Timestamp


class ComponentOut(ApiModel):
    #: What a flow node's ``component`` says to use this component.
    ref: str
    resource: str
    installation: str
    module: str
    version: str
    name: str
    role: str
    label: str | None
    description: str | None


class RevocationOut(ApiModel):
    jti: str
    subject: str
    expires_at: Timestamp
    revoked_by: str
    revoked_at: Timestamp
