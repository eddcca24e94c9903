"""Repository discovery, URL probes, pid files, mount parsing, service selection, log prefixes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modyard.common.network import tcp_reachable
from modyard.dev import processes
from modyard.dev.infra import mounts_under
from modyard.dev.paths import RepoNotFoundError, find_repo_root
from modyard.dev.runner import prefixes
from modyard.dev.services import SERVICES, select
from modyard.sdk.probes import (
    Endpoint,
    endpoint,
    is_local,
    postgres_answers,
    redact,
)

# -- paths -------------------------------------------------------------------------------------


def test_repo_root_is_the_directory_with_uv_lock(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("")
    nested = tmp_path / "libs" / "sdk" / "src"
    nested.mkdir(parents=True)
    (tmp_path / "libs" / "sdk" / "pyproject.toml").write_text("")
    assert find_repo_root(nested) == tmp_path.resolve()


def test_repo_root_missing(tmp_path: Path) -> None:
    if any((parent / "uv.lock").exists() for parent in tmp_path.resolve().parents):
        pytest.skip("a uv.lock above the temporary directory")
    with pytest.raises(RepoNotFoundError, match=r"uv\.lock"):
        find_repo_root(tmp_path)


# -- probes ------------------------------------------------------------------------------------


def test_endpoint_parsing() -> None:
    assert endpoint("postgresql+asyncpg://u:p@db.example:6543/x", 5432) == Endpoint(
        "db.example", 6543
    )
    assert endpoint("amqp://u:p@localhost/vhost", 5672) == Endpoint("localhost", 5672)
    assert str(Endpoint("127.0.0.1", 5000)) == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("host", "port", "local"),
    [
        ("127.0.0.1", 5432, True),
        ("localhost", 5432, True),
        ("LOCALHOST", 5432, True),
        ("127.0.0.1", 5433, False),
        ("127.0.0.2", 5432, False),
        ("db.example", 5432, False),
    ],
)
def test_is_local(host: str, port: int, local: bool) -> None:
    assert is_local(Endpoint(host, port), 5432) is local


def test_redact_hides_only_the_password() -> None:
    assert (
        redact("postgresql+asyncpg://modyard:modyard@127.0.0.1:5432/modyard")
        == "postgresql+asyncpg://modyard:***@127.0.0.1:5432/modyard"
    )
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def test_tcp_reachable(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert tcp_reachable("127.0.0.1", port)
    listener.close()
    assert not tcp_reachable("127.0.0.1", port)


def test_postgres_probe_wants_the_ssl_answer(listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    def answer(reply: bytes) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(8)
            conn.sendall(reply)

    for reply, expected in ((b"N", True), (b"HTTP/1.1 400", False)):
        thread = threading.Thread(target=answer, args=(reply,))
        thread.start()
        assert postgres_answers("127.0.0.1", port) is expected
        thread.join()


# -- processes ---------------------------------------------------------------------------------


def test_pid_files(tmp_path: Path) -> None:
    path = tmp_path / "x" / "pid"
    assert processes.read_pid(path) is None
    processes.write_pid(path, 1234)
    assert processes.read_pid(path) == 1234
    path.write_text("garbage")
    assert processes.read_pid(path) is None
    processes.remove_pid(path)
    processes.remove_pid(path)
    assert not path.exists()


def test_is_running_checks_the_command_line() -> None:
    me = os.getpid()
    assert processes.is_running(me)
    assert processes.is_running(me, Path(sys.executable).name[:6])
    assert not processes.is_running(me, "definitely-not-this-program")
    assert not processes.is_running(None)
    assert not processes.is_running(0)


def test_terminate_stops_a_child_and_zombies_count_as_gone() -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    # On a loaded machine the child's /proc entry may show its new command line a moment late.
    deadline = time.monotonic() + 5
    while not processes.is_running(child.pid, "sleep") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processes.is_running(child.pid, "sleep")
    assert processes.terminate(child.pid, expect="sleep", timeout=5)
    child.wait(timeout=5)
    assert not processes.is_running(child.pid)


def test_tail_indents_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {n}\n" for n in range(30)))
    assert processes.tail(log, 2) == "    line 28\n    line 29"
    assert processes.tail(tmp_path / "missing.log") == ""


def test_wait_until_reports_the_log(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    log.write_text("bind: address already in use\n")
    with pytest.raises(processes.StartupError, match="exited during startup") as excinfo:
        processes.wait_until(
            lambda: False, timeout=5, what="daemon", log_path=log, died=lambda: True
        )
    assert str(log) in str(excinfo.value)
    assert "address already in use" in str(excinfo.value)
    with pytest.raises(processes.StartupError, match="not ready after"):
        processes.wait_until(lambda: False, timeout=0.1, what="daemon", log_path=log)


# -- purge -------------------------------------------------------------------------------------


def test_mounts_under_finds_nested_mounts_deepest_first() -> None:
    mounts = (
        "proc /proc proc rw 0 0\n"
        "nsfs /r/.run/docker/exec/netns/default nsfs rw 0 0\n"
        "overlay /r/.run/docker/data/overlay2/abc/merged overlay rw 0 0\n"
        "tmpfs /r/.run/with\\040space tmpfs rw 0 0\n"
        "tmpfs /r/.runner tmpfs rw 0 0\n"
    )
    found = mounts_under(Path("/r/.run"), mounts)
    assert found[0] == Path("/r/.run/docker/data/overlay2/abc/merged")
    assert set(found) == {
        Path("/r/.run/docker/exec/netns/default"),
        Path("/r/.run/docker/data/overlay2/abc/merged"),
        Path("/r/.run/with space"),
    }


# -- services and log prefixes -----------------------------------------------------------------


def test_select_services() -> None:
    assert select(None) == list(SERVICES)
    assert [s.name for s in select(["deployer", "appcell-gateway"])] == [
        "appcell-gateway",
        "deployer",
    ]
    assert [s.name for s in select(["js-runner"])] == ["js-runner"]
    with pytest.raises(ValueError, match="unknown service"):
        select(["nope"])


def test_console_scripts_and_names() -> None:
    assert {s.script for s in SERVICES} == {
        "modyard-registry",
        "modyard-installer",
        "modyard-runtime",
        "modyard-appcell-gateway",
        "modyard-deployer",
        "modyard-backoffice",
        "modyard-js-runner",
    }
    assert {s.name for s in SERVICES} == {
        "registry",
        "installer",
        "runtime",
        "appcell-gateway",
        "deployer",
        "backoffice",
        "js-runner",
    }


def test_prefixes_have_fixed_width_and_one_colour_each() -> None:
    labels = prefixes([s.name for s in SERVICES])
    widths = {len(label.plain) for label in labels.values()}
    assert widths == {len("appcell-gateway") + 3}
    assert len({str(label.style) for label in labels.values()}) == len(SERVICES)
