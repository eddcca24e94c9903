"""Tables of accounts, operators' OAuth clients and OAuth connections in progress."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from modyard.installer.models import Base


class Account(Base):
    """One user's credentials for one auth service, in one workspace."""

    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    #: The token subject the account belongs to.
    owner: Mapped[str] = mapped_column(String(255), index=True)
    #: The auth service id components name in ``auth.service`` (``acme:crm``).
    service: Mapped[str] = mapped_column(String(255), index=True)
    #: ``apiKey``, ``pwd`` or ``oauth2`` (auth.js's ``type``).
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    #: The credentials (the form's values, or the OAuth tokens), encrypted with MultiFernet.
    secrets: Mapped[str] = mapped_column(Text)
    #: ``valid`` or ``invalid`` (a refresh or a test failed; ``invalid_reason`` says why).
    status: Mapped[str] = mapped_column(String(16), default="valid")
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    #: When the OAuth access token expires (null: never, or not OAuth).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Other users of the workspace whose flows may run with this account (never see it).
    shared_with: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    #: How many times the tokens were refreshed (shown to operators; the tests count on it).
    refreshes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class AuthServiceClient(Base):
    """An operator's OAuth client for one auth service (the vendor's app registration)."""

    __tablename__ = "auth_service_clients"

    service: Mapped[str] = mapped_column(String(255), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(512))
    #: Encrypted with MultiFernet.
    client_secret: Mapped[str] = mapped_column(Text)
    #: Endpoints and scopes that override auth.js's (``authUrl``, ``tokenUrl``, ``scope``).
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class OAuthConnect(Base):
    """An authorization-code flow in progress: what the callback needs, bound to the user."""

    __tablename__ = "oauth_connects"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    owner: Mapped[str] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(255))
    #: The PKCE code verifier, encrypted (it never leaves the installer).
    code_verifier: Mapped[str] = mapped_column(Text)
    redirect_uri: Mapped[str] = mapped_column(Text)
    #: Where the user's browser goes once the account is stored.
    return_to: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
