"""Revoking tokens, and the denials snapshot every service follows
(:mod:`modyard.common.token_denials`): revoked token ids and workspace removals.

A token is revoked by its id (``jti``). Its own subject may revoke it by presenting the token
(``modyard token revoke <token>``); operators may revoke any token, also by its bare id. A
revocation is kept until the token expires (for a bare id, until any token could have: the longest
TTL the settings allow), then dropped, so the list every service holds stays small.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.auth import Principal, TokenDenials, TokenError, decode_token
from modyard.common.db.database import Database
from modyard.common.errors import Forbidden, ValidationFailed
from modyard.common.settings import CommonSettings
from modyard.common.token_denials import denials_to_json
from modyard.common.tokens import CLOCK_LEEWAY_SECONDS, Denials
from modyard.installer.models import TokenRevocation, WorkspaceExclusion
from modyard.installer.schemas import RevocationIn


async def revoke(
    session: AsyncSession,
    settings: CommonSettings,
    denials: TokenDenials,
    principal: Principal,
    body: RevocationIn,
) -> TokenRevocation:
    if body.token is not None:
        try:
            # Signature, issuer and TTL checked, denials not: revoking twice is no error.
            revoked = decode_token(settings, body.token.get_secret_value())
        except TokenError as exc:
            raise ValidationFailed(
                f"'token' cannot be revoked: {exc} (an expired token needs no revocation)."
            ) from exc
        if not principal.is_operator and revoked.subject != principal.subject:
            raise Forbidden(
                "You may revoke only your own tokens (this one is another subject's); "
                "ask an operator."
            )
        jti, subject = str(revoked.token_id), revoked.subject
        expires_at = datetime.fromtimestamp(revoked.expires_at or 0, UTC)
    else:
        jti = str(body.jti)
        if not principal.is_operator and jti != principal.token_id:
            raise Forbidden(
                "Only operators revoke a token by its id alone; send the token itself "
                "('token') to revoke one of your own."
            )
        subject = principal.subject if jti == principal.token_id else (body.subject or "")
        longest = max(settings.token_max_ttl_seconds, settings.operator_token_max_ttl_seconds)
        expires_at = datetime.now(UTC) + timedelta(seconds=longest)
    now = datetime.now(UTC)
    # Revocations of expired tokens guard nothing any more.
    await session.execute(
        delete(TokenRevocation).where(
            TokenRevocation.expires_at < now - timedelta(seconds=CLOCK_LEEWAY_SECONDS)
        )
    )
    await session.execute(
        insert(TokenRevocation)
        .values(jti=jti, subject=subject, expires_at=expires_at, revoked_by=principal.subject)
        .on_conflict_do_nothing(index_elements=["jti"])
    )
    row = await session.get(TokenRevocation, jti)
    assert row is not None
    # Refused here at once; the other services (and replicas) within a poll interval.
    denials.revoke(jti, int(row.expires_at.timestamp()))
    return row


async def active_revocations(session: AsyncSession) -> list[TokenRevocation]:
    cutoff = datetime.now(UTC) - timedelta(seconds=CLOCK_LEEWAY_SECONDS)
    return list(
        (
            await session.scalars(
                select(TokenRevocation)
                .where(TokenRevocation.expires_at >= cutoff)
                .order_by(TokenRevocation.revoked_at)
            )
        ).all()
    )


async def current_denials(session: AsyncSession) -> Denials:
    revoked = {
        row.jti: int(row.expires_at.timestamp()) for row in await active_revocations(session)
    }
    excluded: dict[str, set[str]] = {}
    for row in (await session.scalars(select(WorkspaceExclusion))).all():
        excluded.setdefault(row.subject, set()).add(row.workspace)
    return Denials(
        revoked=revoked,
        excluded={subject: frozenset(workspaces) for subject, workspaces in excluded.items()},
    )


def etag(body: dict[str, object]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    return f'"{digest}"'


async def exclude(session: AsyncSession, workspace: str, subject: str) -> None:
    """``subject`` was removed from ``workspace``: their tokens naming it stop reaching it."""
    await session.execute(
        insert(WorkspaceExclusion)
        .values(workspace=workspace, subject=subject)
        .on_conflict_do_nothing(index_elements=["workspace", "subject"])
    )


async def readmit(session: AsyncSession, workspace: str, subjects: Iterable[str]) -> None:
    """``subjects`` are members of ``workspace`` (again): their tokens naming it reach it."""
    subjects = list(subjects)
    if subjects:
        await session.execute(
            delete(WorkspaceExclusion).where(
                WorkspaceExclusion.workspace == workspace, WorkspaceExclusion.subject.in_(subjects)
            )
        )


async def is_excluded(session: AsyncSession, workspace: str, subject: str) -> bool:
    return (
        await session.get(WorkspaceExclusion, {"workspace": workspace, "subject": subject})
        is not None
    )


class DatabaseDenials:
    """The installer's own source of denials (its tables; other services ask its API)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def fetch(self) -> Denials | None:
        async with self._database.transaction() as session:
            return await current_denials(session)

    async def close(self) -> None:
        return None


__all__ = [
    "DatabaseDenials",
    "active_revocations",
    "current_denials",
    "denials_to_json",
    "etag",
    "exclude",
    "is_excluded",
    "readmit",
    "revoke",
]
