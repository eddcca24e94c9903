"""Token revocation, and the denials every service follows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, status

from modyard.common.auth import CurrentPrincipal, Principal, Role, require_roles, token_denials
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.installer.models import TokenRevocation
from modyard.installer.schemas import DenialsOut, RevocationIn, RevocationOut, RevocationPage
from modyard.installer.tokens import revocations

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], responses=PROBLEM_RESPONSES)
Privileged = Annotated[Principal, Depends(require_roles(Role.service))]


def _out(row: TokenRevocation) -> RevocationOut:
    return RevocationOut(
        jti=row.jti,
        subject=row.subject,
        expires_at=row.expires_at,
        revoked_by=row.revoked_by,
        revoked_at=row.revoked_at,
    )


@router.post("/revocations", status_code=status.HTTP_201_CREATED, response_model=RevocationOut)
async def revoke_token(
    body: RevocationIn, request: Request, session: DbSession, principal: CurrentPrincipal
) -> RevocationOut:
    """Revoke a token: its own subject by sending it, operators any (also by `jti`). Every
    service refuses it (401) within `MODYARD_TOKEN_DENIALS_POLL_SECONDS`; idempotent."""
    row = await revocations.revoke(
        session, request.app.state.settings, token_denials(request.app), principal, body
    )
    return _out(row)


@router.get("/revocations", response_model=RevocationPage)
async def list_revocations(session: DbSession, _: Privileged) -> RevocationPage:
    """Revocations of tokens that have not expired yet (operators)."""
    rows = await revocations.active_revocations(session)
    return RevocationPage(items=[_out(row) for row in rows])


@router.get(
    "/denials",
    response_model=DenialsOut,
    responses={status.HTTP_304_NOT_MODIFIED: {"description": "Unchanged since that ETag"}},
)
async def denials(
    session: DbSession,
    _: Privileged,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Any:
    """Revoked token ids and workspace removals, as every service polls them (services and
    operators; `ETag`/`If-None-Match`)."""
    body = revocations.denials_to_json(await revocations.current_denials(session))
    tag = revocations.etag(body)
    if if_none_match == tag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
    return Response(
        content=DenialsOut.model_validate(body).model_dump_json(),
        media_type="application/json",
        headers={"ETag": tag, "Cache-Control": "no-cache"},
    )
