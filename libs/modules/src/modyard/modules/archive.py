"""Reading an untrusted module archive (zip) safely.

Everything is checked before a single byte is stored: the archive's size, its entry count, the
size each entry really expands to (counted while decompressing, never taken from the headers),
the nesting depth, and every name (no absolute paths, no ``..``, no links, no duplicates, no two
entries sharing bytes — the trick behind overlapping zip bombs). Each refusal is its own
:class:`ArchiveRejected` subclass, which the API turns into its own problem ``type``.

Only stored and deflated entries are read. ``zipfile`` inflates deflate in bounded steps, but it
hands a whole compressed block of a bzip2 or LZMA entry to the decompressor with no bound on
the output, so a 925-byte bzip2 entry reached 2.1 GB of memory before the expanded-size cap
could count a byte. Zip tools write deflate by default; the other methods are refused from the
central directory, before anything is decompressed.

Parsing is CPU-bound and synchronous: async callers run it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import io
import itertools
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from modyard.modules.formats.base import ModuleFiles

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_CHUNK = 64 * 1024
# Methods whose decompression zipfile bounds per read (deflate: ``decompress(data, max_length)``).
_READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "deflate64"}


@dataclass(frozen=True)
class ArchiveLimits:
    max_archive_bytes: int = 10 * 1024 * 1024
    max_entries: int = 2_000
    max_expanded_bytes: int = 100 * 1024 * 1024
    max_depth: int = 16


class ArchiveRejected(ValueError):
    """The upload is not an archive we accept; ``slug`` names the rule it broke."""

    slug = "archive-invalid"

    def __init__(self, detail: str, *, entry: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.entry = entry


class NotAZip(ArchiveRejected):
    slug = "archive-invalid"


class ArchiveTooLarge(ArchiveRejected):
    slug = "archive-too-large"


class TooManyEntries(ArchiveRejected):
    slug = "archive-too-many-entries"


class ExpandsTooMuch(ArchiveRejected):
    slug = "archive-expands-too-much"


class TooDeep(ArchiveRejected):
    slug = "archive-too-deep"


class AbsolutePath(ArchiveRejected):
    slug = "archive-absolute-path"


class PathTraversal(ArchiveRejected):
    slug = "archive-path-traversal"


class LinkEntry(ArchiveRejected):
    slug = "archive-link"


class DuplicateEntry(ArchiveRejected):
    slug = "archive-duplicate-entry"


class OverlappingEntries(ArchiveRejected):
    slug = "archive-overlapping-entries"


class EncryptedEntry(ArchiveRejected):
    slug = "archive-encrypted"


class EmptyArchive(ArchiveRejected):
    slug = "archive-empty"


class UnsupportedCompression(ArchiveRejected):
    slug = "archive-compression-unsupported"


ALL_REJECTIONS: tuple[type[ArchiveRejected], ...] = (
    NotAZip,
    ArchiveTooLarge,
    TooManyEntries,
    ExpandsTooMuch,
    TooDeep,
    AbsolutePath,
    PathTraversal,
    LinkEntry,
    DuplicateEntry,
    OverlappingEntries,
    EncryptedEntry,
    EmptyArchive,
    UnsupportedCompression,
)


def read_archive(data: bytes, limits: ArchiveLimits) -> ModuleFiles:
    """The archive's regular files, or :class:`ArchiveRejected`."""
    if len(data) > limits.max_archive_bytes:
        raise ArchiveTooLarge(
            f"The archive is {len(data)} bytes; the limit is {limits.max_archive_bytes}. "
            "Leave out what the module does not need (node_modules, tests, build output)."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise NotAZip(f"The upload is not a valid zip archive ({exc}). Send a .zip file.") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_entries:
            raise TooManyEntries(
                f"The archive has {len(entries)} entries; the limit is {limits.max_entries}."
            )
        _check_overlaps(data, entries)
        files: dict[str, bytes] = {}
        seen: set[str] = set()
        expanded = 0
        for entry in entries:
            name = _checked_name(entry, limits)
            folded = name.rstrip("/").casefold()
            if folded in seen:
                raise DuplicateEntry(
                    f"The archive holds {name!r} more than once; keep one.", entry=name
                )
            seen.add(folded)
            if entry.is_dir():
                continue
            content, expanded = _read_entry(archive, entry, name, expanded, limits)
            files[name] = content
    if not files:
        raise EmptyArchive("The archive contains no files.")
    return ModuleFiles(files).root()


def _checked_name(entry: zipfile.ZipInfo, limits: ArchiveLimits) -> str:
    raw = entry.filename
    if entry.flag_bits & 0x1:
        raise EncryptedEntry(f"{raw!r} is encrypted; upload an unencrypted archive.", entry=raw)
    if entry.compress_type not in _READABLE_METHODS:
        method = _METHOD_NAMES.get(entry.compress_type, f"method {entry.compress_type}")
        raise UnsupportedCompression(
            f"{raw!r} is compressed with {method}; only stored and deflate entries are accepted. "
            "Re-pack the module with deflate (the default of zip tools and `modyard pack`).",
            entry=raw,
        )
    mode = entry.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise LinkEntry(
            f"{raw!r} is a symbolic link; archives may hold regular files only.", entry=raw
        )
    if "\\" in raw or "\x00" in raw:
        raise PathTraversal(
            f"{raw!r} has a backslash or NUL in its name; use '/' separators.", entry=raw
        )
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise AbsolutePath(
            f"{raw!r} is an absolute path; store paths relative to the module.", entry=raw
        )
    parts = PurePosixPath(raw).parts
    if ".." in parts:
        raise PathTraversal(f"{raw!r} climbs out of the archive with '..'.", entry=raw)
    clean = [part for part in parts if part not in (".", "")]
    if not clean:
        raise PathTraversal(f"{raw!r} is not a usable file name.", entry=raw)
    if len(clean) > limits.max_depth:
        raise TooDeep(
            f"{raw!r} is nested {len(clean)} folders deep; the limit is {limits.max_depth}.",
            entry=raw,
        )
    name = "/".join(clean)
    return name + "/" if entry.is_dir() else name


def _read_entry(
    archive: zipfile.ZipFile,
    entry: zipfile.ZipInfo,
    name: str,
    expanded: int,
    limits: ArchiveLimits,
) -> tuple[bytes, int]:
    """The entry's bytes, counting what it really expands to against the archive-wide cap."""
    buffer = io.BytesIO()
    try:
        with archive.open(entry) as stream:
            while chunk := stream.read(_CHUNK):
                expanded += len(chunk)
                if expanded > limits.max_expanded_bytes:
                    raise ExpandsTooMuch(
                        f"The archive expands to more than {limits.max_expanded_bytes} bytes "
                        f"(reached while reading {name!r}).",
                        entry=name,
                    )
                buffer.write(chunk)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise NotAZip(f"{name!r} cannot be read ({exc}).", entry=name) from exc
    return buffer.getvalue(), expanded


def _check_overlaps(data: bytes, entries: list[zipfile.ZipInfo]) -> None:
    """Refuse entries whose stored bytes overlap another's (a zip bomb that re-uses one stream)."""
    spans: list[tuple[int, int, str]] = []
    for entry in entries:
        start = entry.header_offset
        header = data[start : start + _LOCAL_HEADER.size]
        if len(header) < _LOCAL_HEADER.size or not header.startswith(_LOCAL_HEADER_SIGNATURE):
            raise NotAZip(
                f"{entry.filename!r} points at no local file header.", entry=entry.filename
            )
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
        end = start + _LOCAL_HEADER.size + name_length + extra_length + entry.compress_size
        if end > len(data):
            raise NotAZip(
                f"{entry.filename!r} runs past the end of the archive.", entry=entry.filename
            )
        spans.append((start, end, entry.filename))
    spans.sort()
    for (_, end, name), (next_start, _, next_name) in itertools.pairwise(spans):
        if next_start < end:
            raise OverlappingEntries(
                f"{next_name!r} starts inside {name!r}; every entry must have its own bytes.",
                entry=next_name,
            )
