"""Building zip archives, good and hostile, for tests of archive handling and publishing, and
edited module files for tests of the format adapters."""

from __future__ import annotations

import io
import stat
import warnings
import zipfile
from collections.abc import Mapping

from modyard.modules.formats.base import ModuleFiles

#: The entries' modification time in fixture archives (zip's DOS time: no earlier than 1980).
FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def make_zip(files: Mapping[str, bytes | str], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in files.items():
            # A fixed time, not the clock's: the same files give the same bytes (and digest), so
            # publishing a fixture again is the idempotent republish, not a conflicting version
            # (two archives built either side of a 2 s boundary differed, and the second got 409).
            entry = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            # What writestr gives a name of its own: rw------- files, rwxrwxr-x directories.
            entry.external_attr = (0o40775 << 16) | 0x10 if name.endswith("/") else 0o600 << 16
            archive.writestr(entry, content, compression)
    return buffer.getvalue()


def compressed_bomb(
    compression: int, expanded: int, *, extra: Mapping[str, str] | None = None
) -> bytes:
    """One entry of ``expanded`` zero bytes compressed with ``compression`` (bzip2: 200 MB fit in
    ~500 bytes; LZMA: 100 MB in ~15 KB), written in chunks so building it stays small."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
        with archive.open("zeros.bin", "w") as entry:
            chunk = bytes(1024 * 1024)
            for _ in range(expanded // len(chunk)):
                entry.write(chunk)
    return buffer.getvalue()


def zip_with_entry(
    info: zipfile.ZipInfo, content: bytes = b"x", extra: Mapping[str, bytes] | None = None
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
        archive.writestr(info, content)
    return buffer.getvalue()


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def encrypted_zip() -> bytes:
    """An entry flagged as encrypted (zipfile cannot write real ZipCrypto; the flag is the point)."""
    data = bytearray(make_zip({"secret.txt": b"x"}))
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x1
    return bytes(data)


def duplicate_names_zip() -> bytes:
    info = zipfile.ZipInfo("modyard.yaml")
    return zip_with_entry(info, b"name: b", extra={"modyard.yaml": b"name: a"})


def overlapping_zip() -> bytes:
    """Two central-directory entries that point at the same stored bytes."""
    data = bytearray(
        make_zip({"a.txt": b"A" * 100, "b.txt": b"B" * 100}, compression=zipfile.ZIP_STORED)
    )
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    data[second + 42 : second + 46] = (0).to_bytes(4, "little")
    return bytes(data)


def changed(files: ModuleFiles, replacements: Mapping[str, bytes | None]) -> ModuleFiles:
    """The files with some replaced (bytes) or removed (None)."""
    result = dict(files)
    for path, data in replacements.items():
        if data is None:
            del result[path]
        else:
            result[path] = data
    return ModuleFiles(result)
