"""Publishing a module version: read the upload, normalise it, store it immutably.

Everything that can refuse the upload (archive rules, format detection, the adapter's checks,
schema references) runs before the transaction writes anything, so a refused upload leaves
nothing behind. Versions are immutable: the same name and version again is accepted only as an
idempotent retry of the very same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.outbox import record_event
from modyard.common.errors import Conflict, InvalidParam, PayloadTooLarge, ValidationFailed
from modyard.common.semver import InvalidVersion, normalize_version, parse_version, version_parts
from modyard.common.user_schemas import pattern_problems
from modyard.modules.archive import ArchiveRejected, ArchiveTooLarge, read_archive
from modyard.modules.formats.base import Issue, ManifestError, ModuleFiles, UnresolvedReference
from modyard.modules.formats.bundled_schemas import digest_bytes
from modyard.modules.formats.container import parse_container_document
from modyard.modules.formats.detection import AmbiguousFormat, UnknownFormat, parse_module
from modyard.modules.manifest import Manifest
from modyard.registry.events import MODULE_PUBLISHED, module_event
from modyard.registry.models import Archive, Module, ModuleVersion
from modyard.registry.modules.secret_defaults import (
    SecretDefault,
    find_in_document,
    rewrite_zip,
    serialise_json,
    strip_files,
    without,
)
from modyard.registry.settings import RegistrySettings

ZIP_MEDIA_TYPE = "application/zip"
JSON_MEDIA_TYPE = "application/json"
#: The ``file`` of problems about a JSON body.
BODY = "(body)"


@dataclass(frozen=True)
class Publishable:
    """What a publish stores: the canonical manifest and the upload without secrets' defaults
    (see :mod:`modyard.registry.modules.secret_defaults`), and what was taken out of it."""

    manifest: Manifest
    data: bytes
    removed: tuple[SecretDefault, ...] = ()


def archive_to_publish(
    data: bytes, settings: RegistrySettings, *, version: str | None = None
) -> Publishable:
    """A zip upload ready to store, or a 4xx problem saying what to fix. ``version`` is the
    publish request's (see :func:`requested_version`): modules whose files carry none (Slingr,
    Prisme.ai, AppCell) take it; a version in the files must agree with it."""
    try:
        files = read_archive(data, settings.archive_limits())
    except ArchiveTooLarge as exc:
        raise PayloadTooLarge(exc.detail, slug=exc.slug) from exc
    except ArchiveRejected as exc:
        raise ValidationFailed(exc.detail, slug=exc.slug, entry=exc.entry) from exc
    manifest = _parse_files(files, version)
    changed, removed = strip_files(files, manifest)
    if not changed:
        return Publishable(manifest, data)
    # The manifest of what is stored, so that the digests it pins are those of the files served.
    stored = _parse_files(ModuleFiles({**files, **changed}), version)
    return Publishable(stored, rewrite_zip(data, changed), tuple(removed))


def manifest_from_archive(
    data: bytes, settings: RegistrySettings, *, version: str | None = None
) -> Manifest:
    """The canonical manifest of a zip upload, as stored (see :func:`archive_to_publish`)."""
    return archive_to_publish(data, settings, version=version).manifest


def _parse_files(files: ModuleFiles, version: str | None) -> Manifest:
    try:
        manifest = parse_module(files, version=version)
    except (UnknownFormat, AmbiguousFormat) as exc:
        slug = "unknown-format" if isinstance(exc, UnknownFormat) else "ambiguous-format"
        raise ValidationFailed(str(exc), slug=slug) from exc
    except ManifestError as exc:
        raise _manifest_problem(exc) from exc
    return _with_usable_patterns(manifest)


def json_to_publish(
    data: bytes, settings: RegistrySettings, *, version: str | None = None
) -> Publishable:
    """A container module sent as a JSON body, ready to store: re-serialised without its secrets'
    defaults when it carries any, else as sent. ``version`` is the request's, for a document
    that names none."""
    manifest = manifest_from_json(data, settings, version=version)
    document = json.loads(data)
    removed = find_in_document(document, BODY, manifest, top_level=True)
    if not removed:
        return Publishable(manifest, data)
    stored = without(document, removed)
    return Publishable(_container_manifest(stored, version), serialise_json(stored), tuple(removed))


def manifest_from_json(
    data: bytes, settings: RegistrySettings, *, version: str | None = None
) -> Manifest:
    """The canonical manifest of a container module sent as a JSON body."""
    if len(data) > settings.max_container_manifest_bytes:
        raise PayloadTooLarge(
            f"A container manifest may be {settings.max_container_manifest_bytes} bytes at most.",
            slug="manifest-too-large",
        )
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"The body is not valid JSON ({exc}).", slug="invalid-json") from exc
    if not isinstance(document, dict):
        raise ValidationFailed("The body must be a JSON object.", slug="invalid-json")
    if document.get("kind", "container") != "container":
        raise ValidationFailed(
            "Only container modules are published as JSON; upload other modules as a zip archive "
            "(multipart field 'archive').",
            slug="unsupported-manifest",
        )
    return _container_manifest(document, version)


def _container_manifest(document: dict[str, Any], version: str | None = None) -> Manifest:
    try:
        manifest = parse_container_document(document, file=BODY, version=version)
    except ManifestError as exc:
        raise _manifest_problem(exc) from exc
    return _with_usable_patterns(manifest)


def _with_usable_patterns(manifest: Manifest) -> Manifest:
    """``manifest`` if RE2 compiles every pattern of the schemas the platform validates with.

    The installer and the runtime match module authors' patterns with RE2 (linear time, no
    backtracking); a pattern it cannot compile (lookaround, backreferences) would make the module
    unconfigurable or its flows unstartable later, so the publisher hears it now.
    """
    schemas: list[tuple[str, object]] = [("/config/schema", manifest.config.json_schema)]
    schemas += [
        (f"/components/{index}/properties_schema", component.properties_schema)
        for index, component in enumerate(manifest.components)
        if component.properties_schema is not None
    ]
    errors = [
        InvalidParam(pointer=prefix + pointer, detail=reason)
        for prefix, schema in schemas
        for pointer, reason in pattern_problems(schema)
    ]
    if errors:
        listed = "; ".join(f"{error.pointer}: {error.detail}" for error in errors[:3])
        problem = ValidationFailed(
            f"The module is not valid: {listed}.", slug="unsupported-pattern"
        )
        problem.errors = errors
        raise problem
    return manifest


def requested_version(query: str | None, form: str | None) -> str | None:
    """The version the publish request names (query parameter or ``version`` form field; a leading
    ``v`` allowed), normalised; a 422 problem when it is no SemVer or the two disagree."""
    named = {value.strip() for value in (query, form) if value is not None and value.strip()}
    if not named:
        return None
    try:
        versions = {normalize_version(value) for value in named}
    except InvalidVersion as exc:
        problem = ValidationFailed(
            f"The version of the publish request is not valid: {exc}. Pass a SemVer version such "
            "as 1.2.0 or v1.2.0.",
            slug="invalid-version",
        )
        problem.errors = [InvalidParam(pointer="/version", detail=str(exc))]
        raise problem from exc
    if len(versions) > 1:
        raise ValidationFailed(
            f"The query parameter and the form field name different versions "
            f"({', '.join(sorted(versions))}); pass the version once.",
            slug="invalid-version",
        )
    return versions.pop()


def check_requested_version(manifest: Manifest, version: str | None) -> Manifest:
    """A container manifest (which always carries a version) agrees with the request's."""
    if version is not None and manifest.version != version:
        raise _manifest_problem(
            ManifestError(
                [
                    Issue(
                        "(body)",
                        "/version",
                        f"is {manifest.version} but the publish request says {version}; publish "
                        f"it as {manifest.version}, or change the manifest's version",
                    )
                ]
            )
        )
    return manifest


def _manifest_problem(exc: ManifestError) -> ValidationFailed:
    # An issue about a whole file has the pointer "" (RFC 6901: the whole document; "/" would
    # name the member whose key is the empty string).
    errors = [InvalidParam(pointer=i.pointer, detail=i.detail, file=i.file) for i in exc.issues]
    slug = "unresolvable-schema" if isinstance(exc, UnresolvedReference) else "invalid-manifest"
    if exc.issues and all(issue.slug == "version-required" for issue in exc.issues):
        slug = "version-required"
    listed = "; ".join(f"{i.file}{i.pointer}: {i.detail}" for i in exc.issues[:3])
    more = f" (and {len(exc.issues) - 3} more)" if len(exc.issues) > 3 else ""
    problem = ValidationFailed(f"The module is not valid: {listed}{more}.", slug=slug)
    problem.errors = errors
    return problem


async def publish(
    session: AsyncSession,
    settings: RegistrySettings,
    *,
    data: bytes,
    media_type: str,
    manifest: Manifest,
    published_by: str,
) -> tuple[Module, ModuleVersion, bool]:
    """Store ``manifest`` with its archive; returns the module, the version and whether it is new."""
    digest = digest_bytes(data)
    # One publisher per module at a time: the version check and the insert must not interleave.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"module:{manifest.name}"}
    )
    module = await session.scalar(select(Module).where(Module.name == manifest.name))
    if module is not None:
        existing = await session.scalar(
            select(ModuleVersion).where(
                ModuleVersion.module_id == module.id, ModuleVersion.version == manifest.version
            )
        )
        if existing is not None:
            if existing.archive_digest == digest:
                return module, existing, False
            raise Conflict(
                f"{manifest.name} {manifest.version} is already published with another archive "
                f"({existing.archive_digest}); versions are immutable, so publish a new version.",
                slug="version-exists",
                digest=existing.archive_digest,
            )
        if module.format != manifest.format.value or module.kind != manifest.kind.value:
            raise Conflict(
                f"{manifest.name} is a {module.format} {module.kind} module; a version cannot change "
                f"it to {manifest.format.value} {manifest.kind.value}. Publish it under another name.",
                slug="module-format-changed",
            )
    else:
        module = Module(name=manifest.name, format=manifest.format.value, kind=manifest.kind.value)
        session.add(module)
        await session.flush()

    await session.execute(
        pg_insert(Archive)
        .values(digest=digest, size=len(data), media_type=media_type, content=data)
        .on_conflict_do_nothing(index_elements=[Archive.digest])
    )
    major, minor, patch, prerelease = version_parts(manifest.version)
    version = ModuleVersion(
        module_id=module.id,
        version=manifest.version,
        major=major,
        minor=minor,
        patch=patch,
        prerelease=prerelease,
        manifest=manifest.model_dump(mode="json", by_alias=True),
        archive_digest=digest,
        size=len(data),
        published_by=published_by,
        yanked=False,
    )
    session.add(version)
    await session.flush()
    await refresh_latest(session, module)
    await record_event(
        session, module_event(MODULE_PUBLISHED, settings.source, module.name, version)
    )
    return module, version, True


async def refresh_latest(session: AsyncSession, module: Module) -> None:
    """Point the module's listing at its newest usable version (stable before pre-release)."""
    versions = (
        await session.scalars(
            select(ModuleVersion).where(
                ModuleVersion.module_id == module.id, ModuleVersion.yanked.is_(False)
            )
        )
    ).all()
    newest = max(versions, key=lambda v: (not v.prerelease, parse_version(v.version)), default=None)
    module.latest_version = newest.version if newest else None
    if newest is not None:
        module.label = newest.manifest.get("label")
        module.description = newest.manifest.get("description")
    module.updated_at = func.now()
