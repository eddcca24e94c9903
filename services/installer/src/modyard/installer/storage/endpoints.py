from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modyard.common.auth import Principal, TokenError, verified_tokens
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, Unauthorized
from modyard.installer.context import Context
from modyard.installer.models import Installation
from modyard.installer.schemas import StorageEntry, StorageKeys
from modyard.installer.storage import service as storage

router = APIRouter(
    prefix="/v1/installations/{installation_id}/storage",
    tags=["storage"],
    responses=PROBLEM_RESPONSES,
)
_bearer = HTTPBearer(auto_error=False)
Key = Annotated[str, Path(min_length=1, max_length=512, pattern=r"^[^\x00]+$")]


async def storage_caller(
    request: Request,
    installation_id: uuid.UUID,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Installation:
    """The installation whose storage is addressed, if the caller may reach it."""
    if credentials is None:
        raise Unauthorized(
            "Send a bearer token: a modyard JWT or the installation's storage credential."
        )
    token = credentials.credentials
    principal: Principal | None = None
    if not token.startswith(storage.STORAGE_TOKEN_PREFIX):
        try:
            principal = verified_tokens(request.app).principal(token)
        except TokenError as exc:
            raise Unauthorized(f"Send a valid bearer token: {exc}.") from exc
    return await storage.authorize(session, installation_id, principal, token)


Target = Annotated[Installation, Depends(storage_caller)]


@router.get("", response_model=StorageKeys)
async def list_keys(
    session: DbSession,
    context: Context,
    installation: Target,
    prefix: Annotated[str, Query(max_length=512)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> StorageKeys:
    return StorageKeys(
        items=await storage.list_items(session, context, installation, prefix, limit)
    )


@router.get("/{key:path}", response_model=StorageEntry)
async def get_key(
    key: Key, session: DbSession, context: Context, installation: Target
) -> StorageEntry:
    return await storage.get_item(session, context, installation, key)


@router.put("/{key:path}", response_model=StorageEntry)
async def put_key(
    key: Key,
    session: DbSession,
    context: Context,
    installation: Target,
    value: Annotated[Any, Body(description="Any JSON document")],
    encrypt: Annotated[bool, Query(description="Store it encrypted at rest")] = False,
) -> StorageEntry:
    return await storage.put_item(session, context, installation, key, value, encrypt=encrypt)


@router.delete("/{key:path}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_key(key: Key, session: DbSession, installation: Target) -> Response:
    await storage.delete_item(session, installation, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
