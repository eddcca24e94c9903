"""Per-installation key/value storage of JSON documents (Slingr ``sys.storage``, AppCell etcd).

Callers are operators, services, or the installation itself with its own storage credential
(``mys_…``), which reaches only that installation's keys.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.auth import Principal, Role
from modyard.common.errors import Forbidden, NotFound, Unauthorized
from modyard.installer.context import InstallerContext
from modyard.installer.models import Installation, StorageItem
from modyard.installer.schemas import StorageEntry

STORAGE_TOKEN_PREFIX = "mys_"  # noqa: S105 - a prefix, not a secret


async def authorize(
    session: AsyncSession,
    installation_id: uuid.UUID,
    principal: Principal | None,
    bearer: str | None,
) -> Installation:
    installation = await session.get(Installation, installation_id)
    if bearer and bearer.startswith(STORAGE_TOKEN_PREFIX):
        digest = hashlib.sha256(bearer.encode()).hexdigest()
        if installation is None or installation.storage_token_hash != digest:
            raise Forbidden("This storage credential belongs to another installation.")
        return installation
    if principal is None:
        raise Unauthorized(
            "Send an operator/service token or the installation's storage credential."
        )
    if not principal.has_role(Role.operator, Role.service):
        raise Forbidden("Only operators, services and the installation itself may use its storage.")
    if installation is None:
        raise NotFound(f"There is no installation {installation_id}.")
    return installation


def _entry(item: StorageItem, context: InstallerContext) -> StorageEntry:
    encrypted = item.encrypted_value is not None
    value = (
        context.secrets.decrypt_json(item.encrypted_value) if item.encrypted_value else item.value
    )
    return StorageEntry(key=item.key, value=value, encrypted=encrypted, updated_at=item.updated_at)


async def get_item(
    session: AsyncSession, context: InstallerContext, installation: Installation, key: str
) -> StorageEntry:
    item = await session.get(StorageItem, (installation.id, key))
    if item is None:
        raise NotFound(f"Installation {installation.slug!r} stores nothing under {key!r}.")
    return _entry(item, context)


async def list_items(
    session: AsyncSession,
    context: InstallerContext,
    installation: Installation,
    prefix: str,
    limit: int,
) -> list[StorageEntry]:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    items = (
        await session.scalars(
            select(StorageItem)
            .where(
                StorageItem.installation_id == installation.id,
                StorageItem.key.like(escaped + "%", escape="\\"),
            )
            .order_by(StorageItem.key)
            .limit(limit)
        )
    ).all()
    return [_entry(item, context) for item in items]


async def put_item(
    session: AsyncSession,
    context: InstallerContext,
    installation: Installation,
    key: str,
    value: Any,
    *,
    encrypt: bool,
) -> StorageEntry:
    item = await session.get(StorageItem, (installation.id, key))
    if item is None:
        item = StorageItem(installation_id=installation.id, key=key)
        session.add(item)
    item.value = None if encrypt else value
    item.encrypted_value = context.secrets.encrypt_json(value) if encrypt else None
    await session.flush()
    await session.refresh(item)
    return _entry(item, context)


async def delete_item(session: AsyncSession, installation: Installation, key: str) -> None:
    item = await session.get(StorageItem, (installation.id, key))
    if item is None:
        raise NotFound(f"Installation {installation.slug!r} stores nothing under {key!r}.")
    await session.delete(item)
    await session.flush()
