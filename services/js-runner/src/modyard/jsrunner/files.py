"""Files of a workspace: ``context.saveFileStream(name, buffer|stream)``,
``context.getFileReadStream(fileId)``, ``context.loadFile(fileId)``,
``context.getFileInfo(fileId)``.

The bytes travel between the child and here in chunks (base64 in frames of at most
``FILE_CHUNK_BYTES``), and are stored as such (``file_chunks``, bytea) so that neither side holds
a whole file. A file is capped at ``MODYARD_JS_RUNNER_FILE_MAX_BYTES``; one that is not finished
when its call ends is removed. A file id names a file in its workspace only.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from modyard.common.db.database import Database
from modyard.jsrunner.context_errors import ContextError
from modyard.jsrunner.tables import file_chunks, files

if TYPE_CHECKING:
    from modyard.jsrunner.context_api import CallScope, ContextApi, Method

#: Largest chunk a frame carries (before base64); the child's files.js cuts at the same size.
FILE_CHUNK_BYTES = 256 * 1024


def _file_id(args: dict[str, Any], member: str) -> str:
    value = args.get("fileId")
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ContextError(f"{member}(fileId): fileId must be a file id string", "ERR_BAD_OPTION")
    return value


def _info(row: Any) -> dict[str, Any]:
    return {
        "fileId": row.id,
        "filename": row.filename,
        "contentType": row.content_type,
        "length": row.length,
        "chunkSize": FILE_CHUNK_BYTES,
        "uploadDate": row.created_at.isoformat(),
    }


async def _ready(api: ContextApi, scope: CallScope, file_id: str, member: str) -> Any:
    async with api.database.transaction() as session:
        row = (
            await session.execute(
                sa.select(files).where(
                    files.c.id == file_id,
                    files.c.workspace == scope.workspace,
                    files.c.status == "ready",
                )
            )
        ).first()
    if row is None:
        raise ContextError(
            f"{member}({file_id!r}): there is no such file in this workspace", "ERR_FILE_NOT_FOUND"
        )
    return row


async def _begin(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("saveFileStream")
    filename = args.get("filename")
    if not isinstance(filename, str) or not filename or len(filename) > 1024:
        raise ContextError(
            "saveFileStream(name, …): name must be a non-empty string", "ERR_BAD_OPTION"
        )
    content_type = str(args.get("contentType") or "application/octet-stream")[:255]
    file_id = uuid.uuid4().hex
    async with api.database.transaction() as session:
        await session.execute(
            sa.insert(files).values(
                id=file_id,
                workspace=scope.workspace,
                filename=filename,
                content_type=content_type,
                length=0,
                status="writing",
            )
        )
    scope.uploads.add(file_id)
    return {"fileId": file_id}


async def _chunk(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    file_id = _file_id(args, "saveFileStream")
    if file_id not in scope.uploads:
        raise ContextError("saveFileStream: this call is not writing that file", "ERR_BAD_OPTION")
    try:
        data = base64.b64decode(str(args.get("data") or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ContextError("saveFileStream: a chunk that is not base64", "ERR_BAD_OPTION") from exc
    if len(data) > FILE_CHUNK_BYTES:
        raise ContextError("saveFileStream: a chunk larger than the runner takes", "ERR_BAD_OPTION")
    async with api.database.transaction() as session:
        length = await session.scalar(
            sa.update(files)
            .where(files.c.id == file_id, files.c.workspace == scope.workspace)
            .values(length=files.c.length + len(data))
            .returning(files.c.length)
        )
        if length is None:
            raise ContextError("saveFileStream: the file is gone", "ERR_FILE_NOT_FOUND")
        if length > api.settings.file_max_bytes:
            # Raising rolls this chunk back; the file is removed when the call ends.
            raise ContextError(
                f"saveFileStream: the file is larger than {api.settings.file_max_bytes} bytes, the "
                "most a file may hold (MODYARD_JS_RUNNER_FILE_MAX_BYTES)",
                "ERR_CONTEXT_LIMIT",
            )
        seq = await session.scalar(
            sa.select(sa.func.coalesce(sa.func.max(file_chunks.c.seq), -1) + 1).where(
                file_chunks.c.file_id == file_id
            )
        )
        await session.execute(sa.insert(file_chunks).values(file_id=file_id, seq=seq, data=data))
    return None


async def _end(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    file_id = _file_id(args, "saveFileStream")
    if file_id not in scope.uploads:
        raise ContextError("saveFileStream: this call is not writing that file", "ERR_BAD_OPTION")
    async with api.database.transaction() as session:
        await session.execute(
            sa.update(files)
            .where(files.c.id == file_id, files.c.workspace == scope.workspace)
            .values(status="ready")
        )
    scope.uploads.discard(file_id)
    return _info(await _ready(api, scope, file_id, "saveFileStream"))


async def _read_info(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("getFileInfo")
    return _info(await _ready(api, scope, _file_id(args, "getFileInfo"), "getFileInfo"))


async def _read(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    """One chunk of a ready file: ``{data (base64), last}``."""
    scope.require_workspace("getFileReadStream")
    file_id = _file_id(args, "getFileReadStream")
    seq = args.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ContextError("getFileReadStream: seq must be a whole number", "ERR_BAD_OPTION")
    if seq == 0:
        await _ready(api, scope, file_id, "getFileReadStream")
    async with api.database.transaction() as session:
        rows = (
            await session.execute(
                sa.select(file_chunks.c.seq, file_chunks.c.data)
                .join(files, files.c.id == file_chunks.c.file_id)
                .where(
                    file_chunks.c.file_id == file_id,
                    files.c.workspace == scope.workspace,
                    files.c.status == "ready",
                    file_chunks.c.seq >= seq,
                )
                .order_by(file_chunks.c.seq)
                .limit(2)
            )
        ).all()
    if not rows:
        return {"data": None, "last": True}
    return {"data": base64.b64encode(rows[0].data).decode(), "last": len(rows) == 1}


async def discard(database: Database, workspace: str, ids: set[str]) -> None:
    async with database.transaction() as session:
        await session.execute(
            sa.delete(files).where(
                files.c.id.in_(list(ids)),
                files.c.workspace == workspace,
                files.c.status == "writing",
            )
        )


METHODS: dict[str, Method] = {
    "file.begin": _begin,
    "file.chunk": _chunk,
    "file.end": _end,
    "file.info": _read_info,
    "file.read": _read,
}
