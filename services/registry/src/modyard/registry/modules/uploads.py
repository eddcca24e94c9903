"""Reading an upload from the request with the size cap enforced while it streams in.

The cap applies to the bytes on the wire, before anything is parsed or spooled to disk, so an
oversized upload costs us at most the cap in memory and never reaches the zip reader. The route
declares :func:`upload_body_limit` as its body cap, and its publisher check runs before the body
is read: an unauthenticated upload is answered 401 with none of it read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from modyard.common.body_limit import RequestBodyTooLarge
from modyard.common.errors import BadRequest, PayloadTooLarge, ValidationFailed
from modyard.registry.settings import RegistrySettings

# Room for the multipart boundaries and part headers around the archive itself.
MULTIPART_OVERHEAD = 64 * 1024
ARCHIVE_FIELD = "archive"
VERSION_FIELD = "version"


def upload_body_limit(settings: RegistrySettings) -> int:
    """The publishing route's body cap (``modyard.common.body_limit``): the largest archive with
    its multipart wrapping, or the largest container manifest."""
    return max(
        settings.max_archive_bytes + MULTIPART_OVERHEAD, settings.max_container_manifest_bytes
    )


@dataclass(frozen=True)
class Upload:
    data: bytes
    #: ``zip`` for archives, ``json`` for container manifests.
    kind: str
    filename: str | None = None
    #: The multipart ``version`` field: the version of a module whose files carry none.
    version: str | None = None


async def read_capped_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received = bytearray()
    try:
        async for chunk in request.stream():
            received.extend(chunk)
            if len(received) > limit:
                raise _too_large(limit)
    except RequestBodyTooLarge:  # the route's cap: said in this route's words
        raise _too_large(limit) from None
    return bytes(received)


async def read_upload(request: Request, *, archive_limit: int, json_limit: int) -> Upload:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return Upload(await read_capped_body(request, json_limit), "json")
    if content_type in (
        "application/zip",
        "application/x-zip-compressed",
        "application/octet-stream",
    ):
        return Upload(await read_capped_body(request, archive_limit), "zip")
    if content_type == "multipart/form-data":
        body = await read_capped_body(request, archive_limit + MULTIPART_OVERHEAD)
        return await _archive_from_multipart(request, body, archive_limit)
    raise ValidationFailed(
        "Send the module as multipart/form-data with the zip in the field 'archive', as an "
        "application/zip body, or (container modules) as an application/json manifest.",
        slug="unsupported-media-type",
    )


async def _archive_from_multipart(request: Request, body: bytes, limit: int) -> Upload:
    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, replay(), max_files=1, max_fields=10)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(
            f"The multipart body cannot be read: {exc.message}.", slug="invalid-multipart"
        ) from exc
    part = form.get(ARCHIVE_FIELD)
    if not isinstance(part, UploadFile):
        raise ValidationFailed(
            f"Put the zip archive in the multipart file field {ARCHIVE_FIELD!r}.",
            slug="missing-archive",
        )
    data = await part.read()
    version = form.get(VERSION_FIELD)
    await form.close()
    if len(data) > limit:
        raise _too_large(limit)
    return Upload(data, "zip", part.filename, version if isinstance(version, str) else None)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than {limit} bytes. Leave out what the module does not need "
        "(node_modules, tests, build output).",
        slug="archive-too-large",
    )
