"""``modyard pack``, ``modyard publish`` and ``modyard modules …``: the registry from a terminal."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from modyard.common.semver import InvalidVersion, normalize_version
from modyard.common.settings import CommonSettings
from modyard.contracts.api.registry import (
    ModuleDetail,
    ModuleSummary,
    PublishedVersion,
    PublishResult,
)
from modyard.modules.archive import ArchiveLimits, ArchiveRejected, read_archive
from modyard.modules.formats.base import ManifestError
from modyard.modules.formats.detection import AmbiguousFormat, UnknownFormat, parse_module
from modyard.modules.manifest import Manifest
from modyard.sdk.cli_support import (
    JsonOption,
    api_client,
    call_api,
    console,
    echo_json,
    err_console,
    fail,
    run_api,
)

modules_app = typer.Typer(
    help="Search, inspect, download and yank published modules.", no_args_is_help=True
)
# What a module folder carries that an archive must not: VCS data, caches, installed packages.
SKIPPED_NAMES = frozenset(
    {".git", ".hg", ".svn", "__pycache__", "node_modules", ".DS_Store", ".venv"}
)


def zip_directory(directory: Path) -> bytes:
    """The folder's files as a zip, paths relative to the folder, in a stable order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if any(part in SKIPPED_NAMES for part in relative.parts) or path.is_symlink():
                continue
            if path.is_file():
                info = zipfile.ZipInfo(relative.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version",
        help="The version, e.g. v1.2.0: needed when the module's files carry none (Slingr "
        "packages, Prisme.ai apps, AppCell cells); a version in the files must agree.",
    ),
]


def requested_version(text: str | None) -> str | None:
    """``--version`` normalised (a leading v allowed), as the registry reads it."""
    if text is None:
        return None
    try:
        return normalize_version(text)
    except InvalidVersion as exc:
        raise fail(f"--version {text!r}: {exc}; write e.g. v1.2.0") from exc


def validate_archive(data: bytes, version: str | None = None) -> Manifest:
    """The same checks the registry runs, so that mistakes show before the upload."""
    try:
        return parse_module(read_archive(data, ArchiveLimits()), version=version)
    except ArchiveRejected as exc:
        raise fail(f"the archive is refused ({exc.slug}): {exc.detail}") from exc
    except (UnknownFormat, AmbiguousFormat) as exc:
        raise fail(str(exc)) from exc
    except ManifestError as exc:
        for issue in exc.issues:
            err_console.print(
                f"[red]✗[/] {escape(issue.file + issue.pointer)}: {escape(issue.detail)}"
            )
        raise fail(f"{len(exc.issues)} problem(s) in the module") from exc


def pack(
    directory: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="The module's folder.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write the zip.")
    ] = None,
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Zip a module folder after validating it as the registry would; --json also prints the
    canonical manifest the registry will store."""
    data = zip_directory(directory)
    manifest = validate_archive(data, requested_version(version))
    target = output or Path(f"{manifest.name}-{manifest.version}.zip")
    target.write_bytes(data)
    summary = {
        "file": str(target),
        "name": manifest.name,
        "version": manifest.version,
        "format": manifest.format.value,
        "kind": manifest.kind.value,
        "components": len(manifest.components),
        "bytes": len(data),
        # What the module became, exactly as the registry stores it (GET …/versions/{v}).
        "manifest": manifest.model_dump(mode="json", by_alias=True),
    }
    if as_json:
        echo_json(summary)
    else:
        console.print(
            f"[green]✓[/] {manifest.name} {manifest.version} ({manifest.format.value} {manifest.kind.value}, "
            f"{len(manifest.components)} components) → {target} ({len(data)} bytes)"
        )


def publish(
    source: Annotated[
        Path, typer.Argument(exists=True, help="A module folder, a .zip, or a container .json.")
    ],
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish a module version to the registry (idempotent for the same archive)."""
    settings = CommonSettings()
    requested = requested_version(version)

    async def upload() -> PublishResult:
        async with api_client(settings) as client:
            if source.is_file() and source.suffix.lower() == ".json":
                return await client.registry.publish_container(
                    json.loads(source.read_text()), version=requested
                )
            data = zip_directory(source) if source.is_dir() else source.read_bytes()
            validate_archive(data, requested)
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=err_console,
                transient=True,
                disable=as_json,
            ) as progress:
                task = progress.add_task("uploading", total=len(data))
                return await client.registry.publish_archive(
                    data,
                    version=requested,
                    on_progress=lambda sent: progress.update(task, completed=sent),
                )

    result = run_api(upload())
    if as_json:
        echo_json(result)
        return
    verb = "published" if result.created else "already published (same archive)"
    console.print(f"[green]✓[/] {result.name} {result.version} {verb}: {result.digest}")


@modules_app.command("search")
def search(
    q: Annotated[str | None, typer.Argument(help="Text in the name, label or description.")] = None,
    format: Annotated[
        str | None, typer.Option(help="native, appmixer, slingr, prismeai, appcell, container")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="connector, package, app, cell, container")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search published modules."""
    settings = CommonSettings()

    async def collect() -> list[ModuleSummary]:
        async with api_client(settings) as client:
            return [item async for item in client.registry.search(q, format=format, kind=kind)]

    items = run_api(collect())
    if as_json:
        echo_json(items)
        return
    table = Table("name", "latest", "format", "kind", "label")
    for item in items:
        table.add_row(
            item.name,
            item.latest_version or "-",
            item.format,
            item.kind,
            item.label or "",
        )
    console.print(table)


@modules_app.command("show")
def show(
    name: str,
    version: Annotated[
        str | None, typer.Argument(help="A version; the module's versions without it.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A module's versions, or one version's manifest."""
    settings = CommonSettings()

    async def fetch() -> PublishedVersion | ModuleDetail:
        async with api_client(settings) as client:
            return await (
                client.registry.version(name, version) if version else client.registry.module(name)
            )

    result = run_api(fetch())
    if as_json or not isinstance(result, ModuleDetail):
        typer.echo(json.dumps(result.as_json(), indent=None if as_json else 2))
        return
    console.print(f"[bold]{result.name}[/] ({result.format} {result.kind}) {result.label or ''}")
    table = Table("version", "published", "digest", "yanked")
    for entry in result.versions:
        table.add_row(
            entry.version,
            entry.published_at,
            entry.digest[:19] + "…",
            "yes" if entry.yanked else "",
        )
    console.print(table)


def safe_file_name(suggested: str, *, fallback: str) -> str:
    """A file name from the server's ``Content-Disposition``, safe to create in the current folder.

    The server (or anything between it and us) chooses it: only its last path component is
    kept, with control characters dropped, and a name that is empty, ``.``/``..`` or hidden
    (a leading dot: ``.bashrc``) gives way to ``fallback``.
    """
    last = suggested.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(char for char in last if char.isprintable()).strip()
    if not cleaned or cleaned.startswith(".") or len(cleaned) > 255:
        return fallback
    return cleaned


@modules_app.command("download")
def download(
    name: str,
    version: str,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Download a version's archive as published."""
    settings = CommonSettings()

    async def fetch() -> tuple[bytes, str]:
        async with api_client(settings) as client:
            return await client.registry.download(name, version)

    data, filename = run_api(fetch())
    target = output or Path(safe_file_name(filename, fallback=f"{name}-{version}.zip"))
    target.write_bytes(data)
    console.print(f"[green]✓[/] {target} ({len(data)} bytes)")


@modules_app.command("yank")
def yank(
    name: str,
    version: str,
    reason: Annotated[str | None, typer.Option(help="Why it is withdrawn.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Withdraw a version from new installs (it stays downloadable for existing ones)."""
    result = call_api(lambda client: client.registry.yank(name, version, reason))
    if as_json:
        echo_json(result)
    else:
        console.print(f"[yellow]yanked[/] {result.name} {result.version}")
