"""``/v1/listeners/{ws}/{installation_id}/{path}``: a Slingr package's HTTP listeners."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from modyard.common.body_limit import body_limit
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, PayloadTooLarge
from modyard.common.request_context import current_correlation_id
from modyard.runtime.context import Context
from modyard.runtime.flows import js_lifecycle
from modyard.runtime.listeners import service

router = APIRouter(prefix="/v1/listeners", tags=["hooks"], responses=PROBLEM_RESPONSES)

WorkspaceSlug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
#: Slingr listeners' bodies, as js webhook components'.
MAX_BODY_BYTES = 10 * 1024 * 1024


_PATH = "/{ws}/{installation_id}/{path:path}"
_ANSWERED: dict[int | str, dict[str, Any]] = {
    200: {"description": "What the package's webhookSync listener answered"}
}


@router.get(_PATH, operation_id="listener_get", responses=_ANSWERED)
@router.post(_PATH, operation_id="listener_post", responses=_ANSWERED)
@router.put(_PATH, operation_id="listener_put", responses=_ANSWERED)
@router.patch(_PATH, operation_id="listener_patch", responses=_ANSWERED)
@router.delete(_PATH, operation_id="listener_delete", responses=_ANSWERED)
@body_limit(lambda _settings: MAX_BODY_BYTES)
async def listen(
    request: Request,
    ws: WorkspaceSlug,
    installation_id: uuid.UUID,
    path: str,
    session: DbSession,
    context: Context,
) -> Response:
    """A webhook for the installation's ``webhook``/``webhookSync`` listeners (no token: the
    installation's id is the secret, as the flow id is for ``/v1/hooks``)."""
    installed = await service.installation(session, ws, installation_id)
    await session.commit()  # the read is over: nothing held while the listener runs
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"A listener takes at most {MAX_BODY_BYTES} bytes.", slug="webhook-body-too-large"
            )
    content = js_lifecycle.webhook_content(
        request.method, request.headers, request.url.query, bytes(body)
    )
    return await service.answer(context, installed, path, content, current_correlation_id())
