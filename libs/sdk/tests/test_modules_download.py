"""``modyard modules download`` writes where the user runs it, whatever file name the server
suggests: a hostile registry (or anything on the way) cannot make it write elsewhere."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modyard.sdk.modules_cli import safe_file_name

ARCHIVE = b"PK\x05\x06" + bytes(18)  # an empty zip


@pytest.mark.parametrize(
    ("suggested", "expected"),
    [
        ("acme-1.0.0.zip", "acme-1.0.0.zip"),
        ("../../x", "x"),
        ("/etc/cron.d/evil", "evil"),
        ("..\\..\\evil.zip", "evil.zip"),
        ("a/b/../c.zip", "c.zip"),
        ("..", "fallback.zip"),
        (".", "fallback.zip"),
        ("", "fallback.zip"),
        ("dir/", "fallback.zip"),
        (".bashrc", "fallback.zip"),
        ("evil\x1b[2J\r\n.zip", "evil[2J.zip"),
        ("report\u202egpj.zip", "reportgpj.zip"),
        ("x" * 300, "fallback.zip"),
    ],
)
def test_download_names_keep_only_a_plain_last_component(suggested: str, expected: str) -> None:
    assert safe_file_name(suggested, fallback="fallback.zip") == expected


class HostileRegistry(BaseHTTPRequestHandler):
    """Answers every archive download with a file name that climbs out of the folder."""

    suggested = "../../x"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Disposition", f'attachment; filename="{self.suggested}"')
        self.send_header("Content-Length", str(len(ARCHIVE)))
        self.end_headers()
        self.wfile.write(ARCHIVE)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def hostile_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def files_under(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


async def test_a_download_named_dot_dot_slash_x_is_written_inside_the_folder(
    hostile_registry: str, tmp_path: Path
) -> None:
    target = tmp_path / "a" / "b"
    target.mkdir(parents=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modyard.sdk.cli",
        "modules",
        "download",
        "acme",
        "1.0.0",
        cwd=target,
        env={**os.environ, "MODYARD_REGISTRY_URL": hostile_registry},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode() + stdout.decode()
    # Written as "x" in the folder the command ran in; nothing at tmp_path/x (two levels up).
    assert files_under(tmp_path) == {"a/b/x"}
    assert (target / "x").read_bytes() == ARCHIVE
