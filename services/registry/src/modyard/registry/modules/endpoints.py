from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from modyard.common.auth import CurrentPrincipal, Principal, Role, require_roles
from modyard.common.body_limit import body_limit
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.modules.manifest import MODULE_NAME_PATTERN, ModuleFormat, ModuleKind
from modyard.registry.context import Context
from modyard.registry.modules import catalogue
from modyard.registry.modules.publishing import (
    JSON_MEDIA_TYPE,
    ZIP_MEDIA_TYPE,
    archive_to_publish,
    check_requested_version,
    json_to_publish,
    publish,
    requested_version,
)
from modyard.registry.modules.uploads import read_upload, upload_body_limit
from modyard.registry.schemas import (
    ModuleDetail,
    ModuleIndex,
    ModulePage,
    PublishedVersion,
    PublishResult,
    StoredWithout,
)

router = APIRouter(prefix="/v1/modules", tags=["modules"], responses=PROBLEM_RESPONSES)

Publisher = Annotated[Principal, Depends(require_roles(Role.operator, Role.service))]
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
ModuleName = Annotated[str, Path(pattern=MODULE_NAME_PATTERN, description="Module name")]
VersionText = Annotated[str, Path(max_length=128, description="SemVer version, e.g. 1.2.0")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PublishResult,
    responses={
        200: {"model": PublishResult, "description": "The same archive was already published"}
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "archive": {"type": "string", "format": "binary"},
                            "version": {
                                "type": "string",
                                "description": "The version, for modules whose files carry "
                                "none (Slingr, Prisme.ai, AppCell); a leading v is allowed",
                            },
                        },
                        "required": ["archive"],
                    }
                },
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {
                    "schema": {"type": "object", "description": "A container module manifest"}
                },
            },
            "required": True,
        }
    },
)
@body_limit(upload_body_limit)
async def publish_module(
    request: Request,
    response: Response,
    session: DbSession,
    context: Context,
    principal: Publisher,
    version_query: Annotated[
        str | None,
        Query(
            alias="version",
            max_length=128,
            description="The version, for modules whose files carry none (Slingr packages, "
            "Prisme.ai apps, AppCell cells), e.g. v1.2.0; a version in the files must agree",
        ),
    ] = None,
) -> PublishResult:
    """Publish a module version: a zip archive in any supported format, or a container manifest."""
    settings = context.settings
    upload = await read_upload(
        request,
        archive_limit=settings.max_archive_bytes,
        json_limit=settings.max_container_manifest_bytes,
    )
    requested = requested_version(version_query, upload.version)
    if upload.kind == "json":
        prepared = json_to_publish(upload.data, settings, version=requested)
        check_requested_version(prepared.manifest, requested)
        media_type = JSON_MEDIA_TYPE
    else:
        # Unzipping and parsing is CPU-bound (seconds for a large archive): in a thread, so the
        # event loop goes on answering /healthz and every other request meanwhile.
        prepared = await asyncio.to_thread(
            archive_to_publish, upload.data, settings, version=requested
        )
        media_type = ZIP_MEDIA_TYPE
    manifest = prepared.manifest
    stored_module, version, created = await publish(
        session,
        settings,
        data=prepared.data,
        media_type=media_type,
        manifest=manifest,
        published_by=principal.subject,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/modules/{manifest.name}/versions/{version.version}"
    return PublishResult(
        **catalogue.published_version(stored_module, version).model_dump(),
        created=created,
        secret_defaults_removed=[
            StoredWithout(file=item.file, pointer=item.pointer) for item in prepared.removed
        ],
    )


@router.get("", response_model=ModulePage)
async def list_modules(
    session: DbSession,
    context: Context,
    _: CurrentPrincipal,
    q: Annotated[
        str | None, Query(max_length=200, description="Search name, label and description")
    ] = None,
    format: ModuleFormat | None = None,
    kind: ModuleKind | None = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> ModulePage:
    """Modules by name, filtered and paginated with an opaque cursor."""
    return await catalogue.search(
        session,
        q=q,
        format=format,
        kind=kind,
        cursor=cursor,
        limit=limit or context.settings.default_page_size,
    )


@router.get("/{name}", response_model=ModuleDetail)
async def get_module(name: ModuleName, session: DbSession, _: CurrentPrincipal) -> ModuleDetail:
    """A module and all its versions, newest first (yanked ones marked)."""
    return await catalogue.module_detail(session, name)


@router.get("/{name}/index", response_model=ModuleIndex)
async def get_index(name: ModuleName, session: DbSession, _: CurrentPrincipal) -> ModuleIndex:
    """Every version with its dependencies and platform range, for dependency resolvers."""
    return await catalogue.module_index(session, name)


@router.get("/{name}/versions/{version}", response_model=PublishedVersion)
async def get_version(
    name: ModuleName, version: VersionText, session: DbSession, _: CurrentPrincipal
) -> PublishedVersion:
    """One version's canonical manifest: components, config schema, dependencies."""
    module, found = await catalogue.get_version(session, name, version)
    return catalogue.published_version(module, found)


@router.get("/{name}/versions/{version}/archive", response_class=Response)
async def download_archive(
    request: Request,
    name: ModuleName,
    version: VersionText,
    session: DbSession,
    _: CurrentPrincipal,
) -> Response:
    """The archive as published (yanked versions too); ``ETag`` is its digest."""
    module, found = await catalogue.get_version(session, name, version)
    etag = f'"{found.archive_digest}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    archive = await catalogue.archive_of(session, found)
    extension = "zip" if archive.media_type == ZIP_MEDIA_TYPE else "json"
    return Response(
        archive.content,
        media_type=archive.media_type,
        headers={
            "ETag": etag,
            "Content-Disposition": f'attachment; filename="{module.name}-{found.version}.{extension}"',
            "Cache-Control": "public, max-age=31536000, immutable",
        },
    )


@router.get("/{name}/versions/{version}/files/{path:path}", response_class=Response)
async def download_file(
    name: ModuleName, version: VersionText, path: str, session: DbSession, _: CurrentPrincipal
) -> Response:
    """One file bundled in the archive, e.g. a pinned schema."""
    _module, found = await catalogue.get_version(session, name, version)
    content = await catalogue.bundled_file(session, found, path)
    media_type, headers = catalogue.file_headers(path)
    return Response(content, media_type=media_type, headers=headers)


@router.delete("/{name}/versions/{version}", response_model=PublishedVersion)
async def yank_version(
    context: Context,
    name: ModuleName,
    version: VersionText,
    session: DbSession,
    _: Operator,
    reason: Annotated[
        str | None, Query(max_length=1000, description="Why it was withdrawn")
    ] = None,
) -> PublishedVersion:
    """Yank a version: no longer offered for new installs, still downloadable. Idempotent."""
    module, found = await catalogue.yank(
        session, name, version, reason=reason, source=context.settings.source
    )
    return catalogue.published_version(module, found)
