"""A throwaway PostgreSQL cluster under ``.run/postgres`` listening on 127.0.0.1:5432.

PostgreSQL refuses to run as root, so as root the cluster belongs to an unprivileged OS user (the
``postgres`` system user when it exists, else a ``modyard`` system user we create). The login role
``modyard`` is the cluster's bootstrap superuser, so tests can create and drop databases freely.

The port is a parameter: fault tests run a private cluster on another port under a temporary
directory (``modyard.testing.throwaway``) and restart it without touching the shared one.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from modyard.common.network import tcp_reachable
from modyard.common.settings import CommonSettings
from modyard.dev.component import Component
from modyard.dev.paths import RunLayout
from modyard.dev.processes import StartupError, run, tail, terminate, write_pid
from modyard.sdk.probes import endpoint, is_local, postgres_answers

HOST = "127.0.0.1"
PORT = 5432
ROLE = "modyard"
PASSWORD = "modyard"  # noqa: S105 - the documented development credential
DATABASE = "modyard"
LOCAL_URL = f"postgresql+asyncpg://{ROLE}:{PASSWORD}@{HOST}:{PORT}/{DATABASE}"
# Created when neither the current user (non-root) nor a `postgres` system user can own the cluster.
FALLBACK_OS_USER = "modyard"
CONF_NAME = "modyard.conf"


def render_conf(*, port: int, socket_dir: Path) -> str:
    """Settings included from postgresql.conf; rewritten on every start so edits here apply."""
    settings: list[tuple[str, str]] = [
        ("listen_addresses", _q(HOST)),
        ("port", str(port)),
        ("unix_socket_directories", _q(str(socket_dir))),
        # Five services with a pool each, plus tests that open their own connections.
        ("max_connections", "300"),
        # Durability stays on: what `make up` accepted must survive a crash of the machine too.
    ]
    body = "".join(f"{key} = {value}\n" for key, value in settings)
    return "# Written by `modyard dev infra up`; changes are overwritten.\n" + body


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def find_bin_dir() -> Path | None:
    """The directory with ``initdb`` and ``pg_ctl`` (Debian keeps them off PATH)."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        bin_dir = Path(os.path.realpath(on_path)).parent
        if (bin_dir / "initdb").exists():
            return bin_dir
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.name)],
        reverse=True,
    )
    for candidate in candidates:
        if (candidate / "pg_ctl").exists() and (candidate / "initdb").exists():
            return candidate
    return None


def os_user() -> str | None:
    """Who owns the cluster: None means the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_OS_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    result = run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_OS_USER,
        ]
    )
    if result.returncode != 0:
        raise StartupError(
            f"PostgreSQL cannot run as root and creating the OS user {FALLBACK_OS_USER!r} failed: "
            f"{result.stderr.strip()}"
        )
    return FALLBACK_OS_USER


def as_user(user: str | None, args: Sequence[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *args] if user else list(args)


class Postgres(Component):
    title = "PostgreSQL"
    key = "postgres"
    required = True
    process_name = "postgres"
    setting = "MODYARD_DATABASE_URL"

    def __init__(self, run: RunLayout, settings: CommonSettings, port: int = PORT) -> None:
        super().__init__(run, settings)
        self.port = port

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "socket"

    @property
    def log_file(self) -> Path:
        return self.dir / "postgres.log"

    @property
    def initdb_log(self) -> Path:
        return self.dir / "initdb.log"

    @property
    def configured_url(self) -> str:
        return self.settings.database_url

    @property
    def local_url(self) -> str:
        return f"postgresql+asyncpg://{ROLE}:{PASSWORD}@{HOST}:{self.port}/{DATABASE}"

    def configured_reachable(self) -> bool:
        target = endpoint(self.configured_url, PORT)
        return postgres_answers(target.host, target.port)

    def local_ready(self) -> bool:
        bin_dir = find_bin_dir()
        if bin_dir is None or not (bin_dir / "pg_isready").exists():
            return tcp_reachable(HOST, self.port)
        probe = [str(bin_dir / "pg_isready"), "-q", "-t", "2", "-h", HOST, "-p", str(self.port)]
        return run([*probe, "-U", ROLE, "-d", DATABASE], timeout=10).returncode == 0

    def targets_local(self) -> bool:
        return is_local(endpoint(self.configured_url, PORT), PORT)

    def cannot_start(self) -> str | None:
        if find_bin_dir() is None:
            return "PostgreSQL server binaries (initdb, pg_ctl) not found; run scripts/bootstrap.sh"
        return None

    def env(self, url: str) -> dict[str, str]:
        return {"MODYARD_DATABASE_URL": url}

    # -- start -----------------------------------------------------------------------------------

    def start(self, timeout: float) -> int:
        bin_dir = find_bin_dir()
        assert bin_dir is not None  # checked by cannot_start()
        user = os_user()
        self._prepare_dirs(user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir, user)
        self._write_conf(user)
        pid = self._pg_ctl(bin_dir, user, "start", timeout=timeout)
        self._ensure_database(bin_dir, user)
        return pid

    def _pg_ctl(self, bin_dir: Path, user: str | None, *action: str, timeout: float) -> int:
        """``pg_ctl <action>`` waiting for the server; returns (and records) the postmaster PID."""
        command = [str(bin_dir / "pg_ctl"), *action, "-D", str(self.data_dir)]
        command += ["-l", str(self.log_file), "-w", "-t", str(max(int(timeout), 1))]
        result = run(as_user(user, command), cwd=self.dir, timeout=timeout + 30)
        if result.returncode != 0:
            raise StartupError(
                f"pg_ctl {action[0]} failed ({result.stdout.strip() or result.stderr.strip()}); "
                f"see {self.log_file}\n{tail(self.log_file)}"
            )
        pid = self._postmaster_pid()
        write_pid(self.pid_file, pid)
        return pid

    def _prepare_dirs(self, user: str | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if user is None:
            return
        entry = pwd.getpwnam(user)
        for path in (self.dir, self.socket_dir, self.log_file):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        # The cluster's owner must reach .run/postgres through every parent directory.
        if run(as_user(user, ["test", "-w", str(self.dir)])).returncode != 0:
            raise StartupError(
                f"PostgreSQL runs as OS user {user!r}, which cannot write {self.dir}; make its "
                "parent directories traversable (chmod o+x) or point MODYARD_DATABASE_URL at "
                "another server"
            )

    def _initdb(self, bin_dir: Path, user: str | None) -> None:
        if self.data_dir.exists():
            # A half-initialised directory from an interrupted run; initdb wants it empty.
            shutil.rmtree(self.data_dir)
        password_file = self.dir / "initdb.pw"
        password_file.write_text(PASSWORD + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        try:
            result = run(
                as_user(
                    user,
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        ROLE,
                        f"--pwfile={password_file}",
                        "--auth-host=scram-sha-256",
                        # Only the cluster owner (and root) can open the 0700 socket directory.
                        "--auth-local=trust",
                        "-E",
                        "UTF8",
                        "--locale=C",
                    ],
                ),
                cwd=self.dir,
            )
        finally:
            password_file.unlink(missing_ok=True)
        self.initdb_log.write_text(result.stdout + result.stderr, encoding="utf-8")
        if result.returncode != 0:
            raise StartupError(f"initdb failed; see {self.initdb_log}\n{tail(self.initdb_log)}")

    def _write_conf(self, user: str | None) -> None:
        conf = self.data_dir / CONF_NAME
        conf.write_text(render_conf(port=self.port, socket_dir=self.socket_dir), encoding="utf-8")
        main_conf = self.data_dir / "postgresql.conf"
        include = f"include '{CONF_NAME}'"
        if include not in main_conf.read_text(encoding="utf-8"):
            with main_conf.open("a", encoding="utf-8") as handle:
                handle.write(f"\n# modyard development settings\n{include}\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(conf, entry.pw_uid, entry.pw_gid)

    def _postmaster_pid(self) -> int:
        # The first line of postmaster.pid is the postmaster's PID (pg_ctl has exited by now).
        lines = (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        return int(lines[0])

    def _ensure_database(self, bin_dir: Path, user: str | None) -> None:
        connect = ["-h", str(self.socket_dir), "-p", str(self.port), "-U", ROLE]
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"  # noqa: S608 - a constant
        found = run(
            as_user(user, [str(bin_dir / "psql"), *connect, "-d", "postgres", "-tAc", query]),
            cwd=self.dir,
        )
        if found.returncode != 0:
            raise StartupError(f"cannot query PostgreSQL: {found.stderr.strip()}")
        if found.stdout.strip() == "1":
            return
        created = run(
            as_user(user, [str(bin_dir / "createdb"), *connect, DATABASE]),
            cwd=self.dir,
        )
        if created.returncode != 0:
            raise StartupError(f"createdb {DATABASE} failed: {created.stderr.strip()}")

    def restart(self, timeout: float) -> int:
        """``pg_ctl restart -m fast``: open transactions are rolled back and every client is
        disconnected, as in a failover; returns the new postmaster's PID."""
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        return self._pg_ctl(bin_dir, os_user(), "restart", "-m", "fast", timeout=timeout)

    # -- stop ------------------------------------------------------------------------------------

    def stop(self, pid: int, timeout: float) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is not None:
            # `-m fast` rolls back open transactions instead of waiting for clients to leave.
            run(
                as_user(
                    os_user(),
                    [
                        str(bin_dir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        str(max(int(timeout), 1)),
                    ],
                ),
                cwd=self.dir,
                timeout=timeout + 30,
            )
        terminate(pid, expect=self.process_name, timeout=10, group=False)
