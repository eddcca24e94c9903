from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The auth service id components name in ``auth.service`` (``acme:crm``).
    service: str = Field(min_length=1, max_length=255)
    #: Shown in lists; auth.js's ``accountNameFromProfileInfo`` when omitted.
    name: str | None = Field(default=None, min_length=1, max_length=255)
    #: The form's values (auth.js's ``definition.auth`` fields): stored encrypted, never shown.
    credentials: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"writeOnly": True})


class AccountOut(BaseModel):
    """An account as anyone may see it: never its credentials."""

    id: uuid.UUID
    workspace: str
    owner: str
    service: str
    type: str
    name: str
    status: str
    invalid_reason: str | None
    #: Users whose flows may run with it (they never see its credentials).
    shared_with: list[str] = Field(default_factory=list)
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AccountPage(BaseModel):
    items: list[AccountOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


class AccountTest(BaseModel):
    valid: bool
    #: The vendor's message when it refused the credentials.
    message: str | None = None
    account: AccountOut


class AuthServiceOut(BaseModel):
    """An auth service a workspace's installations provide, and the form its accounts take."""

    service: str
    type: str | None
    installation: str
    module: str
    version: str
    #: auth.js's ``definition.auth``: ``{field: {type, name, tooltip}}`` (apiKey and pwd).
    fields: dict[str, Any]


class AccountCredentials(BaseModel):
    """What a component gets as ``context.auth`` (services only)."""

    id: uuid.UUID
    service: str
    type: str
    auth: dict[str, Any]


class AccountShares(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Subjects (emails) of the workspace whose flows may use the account; replaces the list.
    subjects: list[str] = Field(max_length=200)
