"""Hostile archives through the registry's HTTP API, with its default limits: real zip bombs, zip
slip, links and 100,000 entries are each refused with their own 413/422 problem, quickly, and
nothing is stored. (libs/modules/tests/test_archive.py covers every rule on small samples.)"""

from __future__ import annotations

import io
import stat
import struct
import time
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from modyard.common.auth import Role
from modyard.common.testing.infra import IsolatedInfra
from modyard.common.testing.services import auth_headers, in_process
from modyard.modules.testing import make_zip, symlink_entry, zip_with_entry
from modyard.registry.app import create_app
from modyard.registry.models import Archive, Module, ModuleVersion
from modyard.registry.settings import RegistrySettings

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
