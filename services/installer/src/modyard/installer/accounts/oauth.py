"""OAuth 2 accounts (authorization code with PKCE): see the rest of this module."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.installer.accounts.models import Account
from modyard.installer.context import InstallerContext
from modyard.installer.models import Workspace


async def fresh_tokens(
    session: AsyncSession, context: InstallerContext, workspace: Workspace, account: Account
) -> dict[str, Any]:
    tokens: dict[str, Any] = context.secrets.decrypt_json(account.secrets)
    return tokens
