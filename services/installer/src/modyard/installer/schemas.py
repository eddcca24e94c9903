"""What the installer's HTTP API takes and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from modyard.modules.manifest import MODULE_NAME_PATTERN

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
WORKSPACE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceCreate(_Body):
    slug: str = Field(pattern=WORKSPACE_PATTERN, description="URL name of the workspace")
    name: str = Field(min_length=1, max_length=255)
    members: list[str] = Field(default_factory=list, description="Subjects (emails) to add")


class MemberUpdate(_Body):
    #: ``publisher``: a member who may also publish the workspace as an app (the runtime asks).
    role: Literal["owner", "publisher", "member"] = "member"


class Member(BaseModel):
    subject: str
    role: str
    added_at: datetime


class WorkspaceOut(BaseModel):
    slug: str
    name: str
    created_at: datetime
    members: list[Member]


class WorkspacePage(BaseModel):
    items: list[WorkspaceOut]


class InstallRequest(_Body):
    # The registry's own grammar: a name it would refuse is the caller's mistake (422 here), not
    # the registry's failure (it answered 422 and that became a 503).
    module: str = Field(min_length=1, max_length=128, pattern=MODULE_NAME_PATTERN)
    version: str | None = Field(
        default=None,
        description="Exact version, npm range (^1.2.0, ~1.2, >=1 <3) or omitted (newest)",
    )
    slug: str | None = Field(
        default=None, pattern=SLUG_PATTERN, description="Defaults to the module name"
    )
    config: dict[str, Any] = Field(default_factory=dict)
    pinned: bool = Field(default=False, description="Never follow new versions automatically")


class ConfigPatch(_Body):
    """A JSON merge patch (RFC 7396) of the configuration; masked secrets sent back are kept."""

    config: dict[str, Any]


class UpgradeRequest(_Body):
    version: str | None = Field(
        default=None, description="Exact version or range; newest when omitted"
    )
    accept_breaking: bool = Field(
        default=False, description="Required to move to a new major version"
    )


class LockedModule(BaseModel):
    name: str
    version: str
    digest: str
    type: str
    required_by: list[str]


class InstallationOut(BaseModel):
    id: uuid.UUID
    workspace: str
    slug: str
    module: str
    version: str
    format: str
    kind: str
    pinned: bool
    parent: str | None = Field(description="Slug of the installation this one belongs to")
    installed_as_dependency: bool
    config: dict[str, Any] = Field(description="Secret values are masked")
    lock: dict[str, Any]
    dependencies: list[str] = Field(description="Slugs this installation needs")
    dependents: list[str] = Field(description="Slugs that need this installation")
    created_at: datetime
    updated_at: datetime


class InstallResult(InstallationOut):
    #: Other installations this request created (its missing dependencies), by slug.
    also_installed: list[str]


class InstallationPage(BaseModel):
    items: list[InstallationOut]


class EffectiveConfig(BaseModel):
    installation_id: uuid.UUID
    slug: str
    config: dict[str, Any] = Field(description="Plain values: for the runtime only")
    storage_token: str | None = Field(description="The installation's own storage credential")


class AclRuleIn(_Body):
    role: str | None = None
    user: str | None = Field(default=None, description="An email")
    domain: str | None = Field(default=None, description="An email domain, e.g. example.com")
    resource: str = Field(min_length=1, max_length=512, description="Wildcards: *")
    action: str = Field(default="*", min_length=1, max_length=64)
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_subject(self) -> AclRuleIn:
        named = [name for name in ("role", "user", "domain") if getattr(self, name)]
        if len(named) != 1:
            raise ValueError("name exactly one of role, user or domain")
        return self


class AclRuleOut(AclRuleIn):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    type: str
    created_by: str
    created_at: datetime


class ComponentOut(BaseModel):
    ref: str = Field(description="What a flow node's `component` says to use this component")
    resource: str
    installation: str
    module: str
    version: str
    name: str
    role: str
    label: str | None
    description: str | None


class StorageEntry(BaseModel):
    key: str
    value: Any
    encrypted: bool
    updated_at: datetime


class StorageKeys(BaseModel):
    items: list[StorageEntry]


class RevocationIn(_Body):
    """Which token to revoke: the token itself, or (operators) its id."""

    token: SecretStr | None = Field(
        default=None, description="The token to revoke (its own subject or an operator)"
    )
    jti: str | None = Field(
        default=None, min_length=1, max_length=128, description="A token id (operators only)"
    )
    subject: str | None = Field(
        default=None, max_length=255, description="Whose token `jti` is, for the record"
    )

    @model_validator(mode="after")
    def _one_of_token_or_jti(self) -> RevocationIn:
        if (self.token is None) == (self.jti is None):
            raise ValueError("send exactly one of 'token' (the token itself) or 'jti' (its id)")
        return self


class RevocationOut(BaseModel):
    jti: str
    subject: str
    expires_at: datetime
    revoked_by: str
    revoked_at: datetime


class RevocationPage(BaseModel):
    items: list[RevocationOut]


class RevokedToken(BaseModel):
    jti: str
    expires_at: int = Field(description="When the token expires anyway (Unix seconds)")


class Exclusion(BaseModel):
    subject: str
    workspace: str


class DenialsOut(BaseModel):
    """What every service refuses beyond a token's signature (polled with If-None-Match)."""

    revoked: list[RevokedToken]
    excluded: list[Exclusion]
