"""Files stored by the platform per workspace: ``saveFileStream``, ``getFileReadStream``,
``loadFile``, ``getFileInfo``, streamed in chunks, capped in size."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import sqlalchemy as sa
from persistence_env import PersistentHarness

from modyard.jsrunner.tables import file_chunks, files

pytestmark = pytest.mark.infra

FILES = """
const crypto = require('crypto');
const { Readable } = require('stream');

function bytes(size) {
    const buffer = Buffer.alloc(size);
    for (let i = 0; i < size; i++) buffer[i] = (i * 31 + 7) % 251;
    return buffer;
}

module.exports = {
    async receive(context) {
        const { op, fileId, size, as } = context.messages.in.content;
        if (op === 'save') {
            const data = bytes(size);
            // A stream of odd-sized pieces, as an SDK's download would give.
            const source = as === 'stream'
                ? Readable.from((function* () { for (let at = 0; at < size; at += 70001) yield data.subarray(at, at + 70001); })())
                : data;
            const info = await context.saveFileStream('report.bin', source);
            return context.sendJson({ info, sha: crypto.createHash('sha256').update(data).digest('hex') }, 'out');
        }
        if (op === 'read') {
            const info = await context.getFileInfo(fileId);
            const hash = crypto.createHash('sha256');
            for await (const chunk of await context.getFileReadStream(fileId)) hash.update(chunk);
            const loaded = await context.loadFile(fileId);
            return context.sendJson({
                info,
                sha: hash.digest('hex'),
                loadedSha: crypto.createHash('sha256').update(loaded).digest('hex'),
            }, 'out');
        }
        return context.sendJson({}, 'out');
    }
};
"""


def expected_sha(size: int) -> str:
    return hashlib.sha256(bytes((i * 31 + 7) % 251 for i in range(size))).hexdigest()


def out(reply: dict[str, Any]) -> Any:
    assert "outputs" in reply, reply
    return reply["outputs"]["out"][0]


@pytest.mark.parametrize("source", ["buffer", "stream"])
async def test_a_file_is_saved_and_read_back_in_chunks(
    persistent: PersistentHarness, source: str
) -> None:
    module = persistent.module({"Files": FILES})
    size = 600_000  # three chunks of at most 256 KiB
    saved = out(await persistent.run(module, "Files", {"op": "save", "size": size, "as": source}))
    info = saved["info"]
    assert info["filename"] == "report.bin"
    assert info["length"] == size
    assert info["contentType"] == "application/octet-stream"
    assert saved["sha"] == expected_sha(size)
    read = out(
        await persistent.run(
            module, "Files", {"op": "read", "fileId": info["fileId"]}, flow_id="f2"
        )
    )
    assert read["sha"] == read["loadedSha"] == expected_sha(size)
    assert read["info"] == info
    async with persistent.api.database.transaction() as session:
        stored = await session.scalars(
            sa.select(sa.func.length(file_chunks.c.data))
            .where(file_chunks.c.file_id == info["fileId"])
            .order_by(file_chunks.c.seq)
        )
        assert list(stored) == [262144, 262144, size - 2 * 262144]


async def test_a_file_id_is_unknown_in_another_workspace(persistent: PersistentHarness) -> None:
    module = persistent.module({"Files": FILES})
    info = out(await persistent.run(module, "Files", {"op": "save", "size": 1000}))["info"]
    before = await _files(persistent)
    other = await persistent.run(
        module, "Files", {"op": "read", "fileId": info["fileId"]}, workspace="wsb"
    )
    assert "there is no such file in this workspace" in other["error"]["message"]
    assert other["error"]["retryable"] is False
    assert await _files(persistent) == before
    mine = out(await persistent.run(module, "Files", {"op": "read", "fileId": info["fileId"]}))
    assert mine["sha"] == expected_sha(1000)


async def test_a_file_over_the_cap_is_refused_and_nothing_is_left(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Files": FILES})
    before = await _files(persistent)
    refused = await persistent.run(
        module, "Files", {"op": "save", "size": 1024 * 1024 + 1, "as": "stream"}
    )
    assert "MODYARD_JS_RUNNER_FILE_MAX_BYTES" in refused["error"]["message"]
    assert refused["error"]["retryable"] is False
    assert await _files(persistent) == before  # the unfinished file and its chunks are gone


async def _files(persistent: PersistentHarness) -> list[tuple[object, ...]]:
    async with persistent.api.database.transaction() as session:
        rows = await session.execute(
            sa.select(files.c.id, files.c.workspace, files.c.length, files.c.status).order_by(
                files.c.id
            )
        )
        chunks = await session.scalar(sa.select(sa.func.count()).select_from(file_chunks))
        return [*(tuple(row) for row in rows), ("chunks", chunks)]
