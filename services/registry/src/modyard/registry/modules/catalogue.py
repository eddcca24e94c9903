"""Reading the registry: search, module and version details, the resolver index, archives, files,
and yanking (the one change a published version allows)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import mimetypes
import posixpath
import zipfile
from datetime import UTC, datetime
from urllib.parse import quote

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from modyard.common.bus.outbox import record_event
from modyard.common.errors import BadRequest, NotFound
from modyard.common.semver import InvalidVersion, normalize_version, parse_version
from modyard.modules.manifest import Manifest, ModuleFormat, ModuleKind
from modyard.registry.events import MODULE_YANKED, module_event
from modyard.registry.models import Archive, Module, ModuleVersion
from modyard.registry.modules.publishing import refresh_latest
from modyard.registry.schemas import (
    IndexEntry,
    ModuleDetail,
    ModuleIndex,
    ModulePage,
    ModuleSummary,
    PublishedVersion,
    VersionSummary,
)


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(
            "The cursor is not one this API gave out; start again without ?cursor=.",
            slug="invalid-cursor",
        ) from exc


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(
    session: AsyncSession,
    *,
    q: str | None,
    format: ModuleFormat | None,
    kind: ModuleKind | None,
    cursor: str | None,
    limit: int,
) -> ModulePage:
    query: Select[tuple[Module]] = select(Module).order_by(Module.name).limit(limit + 1)
    if q:
        pattern = f"%{_escape_like(q)}%"
        query = query.where(
            or_(
                Module.name.ilike(pattern, escape="\\"),
                Module.label.ilike(pattern, escape="\\"),
                Module.description.ilike(pattern, escape="\\"),
            )
        )
    if format is not None:
        query = query.where(Module.format == format.value)
    if kind is not None:
        query = query.where(Module.kind == kind.value)
    if cursor:
        query = query.where(Module.name > decode_cursor(cursor))
    modules = list((await session.scalars(query)).all())
    page, more = modules[:limit], len(modules) > limit
    return ModulePage(
        items=[_summary(module) for module in page],
        next_cursor=encode_cursor(page[-1].name) if more and page else None,
    )


async def get_module(session: AsyncSession, name: str) -> Module:
    module = await session.scalar(select(Module).where(Module.name == name))
    if module is None:
        raise NotFound(f"No module is named {name!r}; search with GET /v1/modules?q=.")
    return module


async def module_versions(session: AsyncSession, module: Module) -> list[ModuleVersion]:
    versions = (
        await session.scalars(select(ModuleVersion).where(ModuleVersion.module_id == module.id))
    ).all()
    return sorted(versions, key=lambda v: parse_version(v.version), reverse=True)


async def module_detail(session: AsyncSession, name: str) -> ModuleDetail:
    module = await get_module(session, name)
    versions = await module_versions(session, module)
    return ModuleDetail(
        **_summary(module).model_dump(), versions=[version_summary(v) for v in versions]
    )


async def get_version(
    session: AsyncSession, name: str, version: str
) -> tuple[Module, ModuleVersion]:
    module = await get_module(session, name)
    try:
        wanted = normalize_version(version)
    except InvalidVersion as exc:
        raise NotFound(f"{version!r} is not a version; versions look like 1.2.3.") from exc
    found = await session.scalar(
        select(ModuleVersion).where(
            ModuleVersion.module_id == module.id, ModuleVersion.version == wanted
        )
    )
    if found is None:
        raise NotFound(
            f"{name} has no version {wanted}; GET /v1/modules/{name} lists its versions."
        )
    return module, found


def published_version(module: Module, version: ModuleVersion) -> PublishedVersion:
    return PublishedVersion(
        name=module.name,
        manifest=Manifest.model_validate(version.manifest),
        **version_summary(version).model_dump(),
    )


async def module_index(session: AsyncSession, name: str) -> ModuleIndex:
    module = await get_module(session, name)
    entries = []
    for version in await module_versions(session, module):
        manifest = version.manifest
        entries.append(
            IndexEntry(
                version=version.version,
                yanked=version.yanked,
                digest=version.archive_digest,
                dependencies=manifest.get("dependencies", []),
                platform=(manifest.get("requires") or {}).get("platform"),
            )
        )
    return ModuleIndex(name=module.name, versions=entries)


async def archive_of(session: AsyncSession, version: ModuleVersion) -> Archive:
    archive = await session.scalar(
        select(Archive)
        .where(Archive.digest == version.archive_digest)
        .options(undefer(Archive.content))
    )
    assert archive is not None  # the foreign key guarantees it
    return archive


async def bundled_file(session: AsyncSession, version: ModuleVersion, path: str) -> bytes:
    archive = await archive_of(session, version)
    if archive.media_type != "application/zip":
        raise NotFound(
            "This module was published as a manifest without an archive; it has no files."
        )
    # Unzipping is CPU work: off the event loop, as publishing does.
    return await asyncio.to_thread(_read_bundled, archive.content, path)


def _read_bundled(content: bytes, path: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        names = {name.rstrip("/"): name for name in bundle.namelist()}
        # Archives made by zipping a folder hold everything under one top folder.
        tops = {name.split("/", 1)[0] for name in names}
        prefix = next(iter(tops)) + "/" if len(tops) == 1 and all("/" in n for n in names) else ""
        stored = names.get(prefix + path.strip("/"))
        if stored is None or stored.endswith("/"):
            raise NotFound(f"The archive holds no file {path!r}.")
        return bundle.read(stored)


#: Types a browser only displays (it runs nothing in them): served inline. Every other type
#: (HTML, SVG, JavaScript, XML, PDF …) is an attachment, so that a module author's file opened
#: from a registry link cannot run script in the registry's origin.
INLINE_TYPES = frozenset(
    {
        "application/json",
        "application/schema+json",
        "text/plain",
        "text/markdown",
        "text/csv",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    }
)


def file_headers(path: str) -> tuple[str, dict[str, str]]:
    """The media type and headers a bundled file is served with (see :data:`INLINE_TYPES`)."""
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        # Never guess another type from the content (a .txt holding HTML stays text).
        "X-Content-Type-Options": "nosniff",
        # Opened anyway (a download viewed in place), the file gets no script and no origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if media_type not in INLINE_TYPES:
        headers["Content-Disposition"] = _attachment(posixpath.basename(path.rstrip("/")))
    return media_type, headers


def _attachment(name: str) -> str:
    """RFC 6266: an ASCII fallback and the exact UTF-8 name (RFC 8187)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    return f"attachment; filename=\"{fallback or 'file'}\"; filename*=UTF-8''{quote(name, safe='')}"


async def yank(
    session: AsyncSession, name: str, version_text: str, *, reason: str | None, source: str
) -> tuple[Module, ModuleVersion]:
    """Withdraw a version from new installs; it stays downloadable. Idempotent."""
    module, version = await get_version(session, name, version_text)
    if version.yanked:
        return module, version
    version.yanked = True
    version.yanked_at = datetime.now(UTC)
    version.yanked_reason = reason
    await session.flush()
    await refresh_latest(session, module)
    await record_event(session, module_event(MODULE_YANKED, source, module.name, version))
    return module, version


def version_summary(version: ModuleVersion) -> VersionSummary:
    return VersionSummary(
        version=version.version,
        digest=version.archive_digest,
        size=version.size,
        published_at=version.published_at,
        published_by=version.published_by,
        yanked=version.yanked,
        yanked_reason=version.yanked_reason,
    )


def _summary(module: Module) -> ModuleSummary:
    return ModuleSummary(
        name=module.name,
        format=ModuleFormat(module.format),
        kind=ModuleKind(module.kind),
        latest_version=module.latest_version,
        label=module.label,
        description=module.description,
        updated_at=module.updated_at,
    )
