"""Hostile archives through the registry's HTTP API, with its default limits: real zip bombs
(overlapping, deflate, bzip2, LZMA), YAML alias bombs, zip slip, links and 100,000 entries are each
refused with their own 413/422 problem, quickly, and nothing is stored; parsing a large archive
leaves the event loop free. (libs/modules/tests/test_archive.py covers every rule on small
samples.)"""

from __future__ import annotations

import asyncio
import io
import stat
import struct
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from modyard.common.auth import Role
from modyard.modules.archive import ArchiveLimits
from modyard.modules.formats.base import ModuleFiles
from modyard.registry.app import create_app
from modyard.registry.models import Archive, Module, ModuleVersion
from modyard.registry.modules import publishing
from modyard.registry.settings import RegistrySettings
from modyard.testing.archives import compressed_bomb, make_zip, symlink_entry, zip_with_entry
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

MANIFEST = {"modyard.yaml": "name: bomb\nversion: 1.0.0\nkind: connector\n"}
_CENTRAL = struct.Struct("<4s6H3I5H2I")  # central directory file header, without the name
_END = struct.Struct("<4s4H2IH")  # end of central directory record


def overlapping_bomb(copies: int = 1_000, entry_bytes: int = 10 * 1024 * 1024) -> bytes:
    """One deflated stream of zeros that ``copies`` central-directory entries (each with its own
    name) all point at: ~60 KB on the wire, ``copies * entry_bytes`` (10 GB) read naively."""
    data = make_zip({"a0000": b"\0" * entry_bytes})
    start = data.index(b"PK\x01\x02")
    end = data.index(b"PK\x05\x06")
    record, name_length = data[start:end], _CENTRAL.unpack_from(data, start)[10]
    header, rest = record[: _CENTRAL.size], record[_CENTRAL.size + name_length :]
    directory = b"".join(header + f"a{i:04d}".encode() + rest for i in range(copies))
    fields = list(_END.unpack_from(data, end))
    fields[3] = fields[4] = copies  # entries on this disk, entries in all
    fields[5] = len(directory)
    return data[:start] + directory + _END.pack(*fields) + data[end + _END.size :]


def high_ratio_bomb(expanded: int = 200 * 1024 * 1024) -> bytes:
    """One entry of zeros: ~200 KB deflated, 200 MB (twice the registry's cap) expanded."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("modyard.yaml", MANIFEST["modyard.yaml"])
        with archive.open("zeros.bin", "w") as entry:
            chunk = bytes(1024 * 1024)
            for _ in range(expanded // len(chunk)):
                entry.write(chunk)
    return buffer.getvalue()


def many_entries(count: int = 100_000) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("modyard.yaml", MANIFEST["modyard.yaml"])
        for i in range(count):
            archive.writestr(f"f{i}", b"")
    return buffer.getvalue()


def link_to(name: str, target: str) -> bytes:
    return zip_with_entry(symlink_entry(name), target.encode(), extra=MANIFEST)


def slip(name: str) -> bytes:
    return zip_with_entry(zipfile.ZipInfo(name), b"pwned", extra=MANIFEST)


def directory_link(name: str) -> bytes:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zip_with_entry(info, b"/", extra=MANIFEST)


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = RegistrySettings(database_url=infra.database_url, amqp_url=infra.amqp_url)
    app = create_app(settings)
    async with in_process(app) as client:
        client.headers.update(auth_headers(settings, Role.operator))
        yield client, app


async def stored(app: Any) -> tuple[int, int, int]:
    async with app.state.database.transaction() as session:
        counts = [
            int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Module, ModuleVersion, Archive)
        ]
    return counts[0], counts[1], counts[2]


@pytest.mark.parametrize(
    ("archive", "status", "slug"),
    [
        pytest.param(overlapping_bomb, 422, "archive-overlapping-entries", id="overlapping-bomb"),
        pytest.param(high_ratio_bomb, 422, "archive-expands-too-much", id="high-ratio-bomb"),
        pytest.param(many_entries, 422, "archive-too-many-entries", id="100000-entries"),
        # 200 MB of zeros in ~500 bytes: zipfile would inflate it in one unbounded call.
        pytest.param(
            lambda: compressed_bomb(zipfile.ZIP_BZIP2, 200 * 1024 * 1024, extra=MANIFEST),
            422,
            "archive-compression-unsupported",
            id="bzip2-bomb",
        ),
        pytest.param(
            lambda: compressed_bomb(zipfile.ZIP_LZMA, 200 * 1024 * 1024, extra=MANIFEST),
            422,
            "archive-compression-unsupported",
            id="lzma-bomb",
        ),
        pytest.param(
            lambda: slip("../../etc/cron.d/evil"), 422, "archive-path-traversal", id="slip-dotdot"
        ),
        pytest.param(
            lambda: slip("a/../../evil.js"), 422, "archive-path-traversal", id="slip-inner"
        ),
        pytest.param(
            lambda: slip("..\\..\\evil.js"), 422, "archive-path-traversal", id="slip-backslash"
        ),
        pytest.param(lambda: slip("/etc/passwd"), 422, "archive-absolute-path", id="slip-absolute"),
        pytest.param(
            lambda: slip("C:/Windows/evil.dll"), 422, "archive-absolute-path", id="slip-drive"
        ),
        pytest.param(
            lambda: link_to("passwd", "/etc/passwd"), 422, "archive-link", id="symlink-file"
        ),
        pytest.param(lambda: directory_link("up/"), 422, "archive-link", id="symlink-directory"),
    ],
)
async def test_hostile_archive_is_refused_with_its_problem_and_nothing_is_stored(
    registry: tuple[httpx.AsyncClient, Any], archive: Any, status: int, slug: str
) -> None:
    client, app = registry
    data = archive()
    before = await stored(app)
    started = time.monotonic()
    response = await client.post(
        "/v1/modules", files={"archive": ("module.zip", data, "application/zip")}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(f"/{slug}"), problem
    assert problem["detail"]
    assert await stored(app) == before
    # Refused on the way in, not after expanding gigabytes.
    assert elapsed < 10, f"{slug} took {elapsed:.1f} s"


async def test_an_archive_over_the_size_cap_is_a_413(
    registry: tuple[httpx.AsyncClient, Any],
) -> None:
    client, app = registry
    before = await stored(app)
    incompressible = bytes(range(256)) * (11 * 4096)  # 11 MiB, stored: above the 10 MiB cap
    data = make_zip({**MANIFEST, "big.bin": incompressible}, compression=zipfile.ZIP_STORED)
    response = await client.post(
        "/v1/modules", files={"archive": ("module.zip", data, "application/zip")}
    )
    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("/archive-too-large")
    assert await stored(app) == before


def billion_laughs_workspace(levels: int) -> bytes:
    """A Prisme.ai workspace whose extra key holds ``10 ** levels`` strings from ``10 * levels``
    aliases: a few hundred bytes of YAML, a manifest of ``10 ** levels`` values once expanded."""
    lines = ["name: Laughs", "slug: laughs", "version: 1", "automations: {}", 'l0: &l0 "lol"']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, levels + 1)]
    return make_zip({"laughs.yml": "\n".join(lines) + "\n"})


async def test_a_yaml_billion_laughs_is_refused_naming_the_file_and_nothing_is_stored(
    registry: tuple[httpx.AsyncClient, Any],
) -> None:
    client, app = registry
    before = await stored(app)
    # 10**6 values from 60 aliases: stored expanded (~8 MB of manifest) before the alias budget.
    response = await client.post(
        "/v1/modules",
        files={"archive": ("laughs.zip", billion_laughs_workspace(6), "application/zip")},
    )
    assert response.status_code == 422, response.text[:500]
    problem = response.json()
    assert problem["type"].endswith("/invalid-manifest"), problem
    assert "laughs.yml" in problem["detail"]
    assert "alias" in problem["detail"]
    assert [error["file"] for error in problem["errors"]] == ["laughs.yml"]
    assert await stored(app) == before


async def test_healthz_answers_while_a_large_archive_is_being_parsed(
    registry: tuple[httpx.AsyncClient, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse is held mid-way (deterministically, not by timing): /healthz must answer before
    it is let go. Parsed on the event loop, the loop would be stuck in the held parse instead."""
    client, _app = registry
    parsing, release = threading.Event(), threading.Event()
    order: list[str] = []
    real_read_archive = publishing.read_archive

    def held_read_archive(data: bytes, limits: ArchiveLimits) -> ModuleFiles:
        files = real_read_archive(data, limits)
        parsing.set()
        # Bounded only so that a regression fails instead of hanging the session.
        release.wait(timeout=30)
        order.append("parsed")
        return files

    monkeypatch.setattr(publishing, "read_archive", held_read_archive)
    large = make_zip(
        {
            "modyard.yaml": "name: large-parse\nversion: 1.0.0\nkind: connector\n",
            **{f"lib/f{i}.js": f"// {i}\n" + "x = 1;\n" * 20_000 for i in range(50)},
        }
    )
    publish = asyncio.create_task(
        client.post("/v1/modules", files={"archive": ("large.zip", large, "application/zip")})
    )
    try:
        await asyncio.to_thread(parsing.wait, 60)
        assert parsing.is_set(), "the parse never started"
        health = await client.get("/healthz")
        order.append(f"healthz {health.status_code}")
    finally:
        release.set()
    response = await publish
    assert response.status_code == 201, response.text
    assert order == ["healthz 200", "parsed"]
