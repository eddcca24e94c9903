"""``account.invalid``: the installer recorded that a provider refused to refresh an account's
tokens (``modyard.installer.account.invalidated``); the runtime tells the system webhooks."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.envelope import CloudEvent
from modyard.contracts.events import parse
from modyard.contracts.events.installer import AccountInvalidated
from modyard.runtime.webhooks.payloads import ACCOUNT_INVALID, AccountInvalidData, AccountRef
from modyard.runtime.webhooks.service import notify


async def on_account_invalidated(session: AsyncSession, event: CloudEvent) -> None:
    data = parse(AccountInvalidated, event.data)
    if data is None:
        return
    await notify(
        session,
        ACCOUNT_INVALID,
        AccountInvalidData(
            workspace=data.workspace,
            owner=data.owner,
            account=AccountRef(id=data.account_id, name=data.name, service=data.service),
            reason=data.reason,
        ),
    )
