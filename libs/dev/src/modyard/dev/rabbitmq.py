"""A RabbitMQ node under ``.run/rabbitmq`` with the management plugin, loopback only.

We call ``/usr/lib/rabbitmq/bin/rabbitmq-server`` directly: Debian's ``/usr/sbin`` wrappers ``su``
to the ``rabbitmq`` user and use ``/var/lib/rabbitmq``. Every path (node data, logs, config, the
Erlang cookie via ``HOME``) points into ``.run/rabbitmq``, and every listener (AMQP, management,
Erlang distribution, epmd) is bound to 127.0.0.1.

Users, vhosts and permissions come from a definitions file imported at boot, so no
``rabbitmqctl`` call (with its own distribution listener) is needed to set them up. Besides the
services' user (``modyard``), the node has a dedicated management user (``modyard-management``)
that the gateway and the runtime use to create cells' and module workers' users: it may declare
their queues and nothing else on the vhost (no message can be read or published with it). RabbitMQ
lets only ``administrator``-tagged users create users and set permissions, so it carries that tag.
A node started before that user existed gets it on the next ``up`` (:meth:`RabbitMQ.provision`).

:class:`NodeAddress` names the node and its ports. The defaults are the development node's; fault
tests start a second, private node with other ports under a temporary directory
(``modyard.testing.throwaway``), so that stopping it never touches the shared broker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from modyard.common.bus.management import management_permissions
from modyard.common.network import tcp_reachable
from modyard.common.settings import CommonSettings
from modyard.dev.component import Component, Report, State, find_binary
from modyard.dev.paths import RunLayout
from modyard.dev.processes import (
    StartupError,
    is_running,
    read_pid,
    remove_pid,
    run,
    spawn_daemon,
    terminate,
    wait_until,
    write_pid,
)
from modyard.sdk.probes import amqp_answers, endpoint, http_status, is_local

HOST = "127.0.0.1"
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
DIST_PORT = 25672
EPMD_PORT = 4369
USER = "modyard"
PASSWORD = "modyard"  # noqa: S105 - the documented development credential
MANAGEMENT_USER = "modyard-management"
MANAGEMENT_PASSWORD = "modyard-management"  # noqa: S105 - the documented development credential
VHOST = "modyard"
#: The JavaScript runner's own user: it runs third-party code's answers, so the runtime takes js
#: answers from this user only (MODYARD_RUNTIME_JS_RUNNER_BROKER_USER), as in production.
JS_RUNNER_USER = "modyard-js-runner"
JS_RUNNER_PASSWORD = "modyard-js-runner"  # noqa: S105 - the documented development credential


def js_runner_permissions() -> dict[str, str]:
    """What the runner's user may do (docs/js-runner.md, "Deployment"; test_broker_user.py):
    its queues (js-runner.requests, js-runner.events[.dead]), the events and dead-letter
    exchanges, and answers to modyard.modules.replies."""
    return {
        "configure": r"^(js-runner\..*|modyard\.(events|dead|modules\.replies).*)$",
        "write": r"^(js-runner\..*|modyard\.(events|dead|modules\.replies).*)$",
        "read": r"^(js-runner\..*|modyard\.(events|dead).*)$",
    }


NODENAME = "modyard@localhost"
LOCAL_AMQP_URL = f"amqp://{USER}:{PASSWORD}@{HOST}:{AMQP_PORT}/{VHOST}"
LOCAL_MANAGEMENT_URL = f"http://{HOST}:{MANAGEMENT_PORT}"
RABBITMQ_LIB = "/usr/lib/rabbitmq/bin"
ERLANG_LIB = "/usr/lib/erlang/bin"
# Erlang term for the distribution listener's interface (used by the server and by rabbitmqctl).
DIST_INTERFACE_ARGS = "-kernel inet_dist_use_interface {127,0,0,1}"


@dataclass(frozen=True)
class NodeAddress:
    """A node's name and ports, all on 127.0.0.1 (the defaults: the development node)."""

    nodename: str = NODENAME
    amqp_port: int = AMQP_PORT
    management_port: int = MANAGEMENT_PORT
    dist_port: int = DIST_PORT
    epmd_port: int = EPMD_PORT
    #: The distribution port of ``rabbitmqctl`` itself. None: RabbitMQ's default range
    #: (``dist_port`` + 10000 …), which is out of range for a dist port above 55535.
    ctl_dist_port: int | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@{HOST}:{self.amqp_port}/{VHOST}"

    @property
    def management_url(self) -> str:
        return f"http://{HOST}:{self.management_port}"


def password_hash(password: str, salt: bytes) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def render_definitions(
    *,
    user: str,
    password: str,
    vhost: str,
    salt: bytes,
    management_user: str = MANAGEMENT_USER,
    management_password: str = MANAGEMENT_PASSWORD,
) -> str:
    """Definitions imported at every boot: the administrator user, its vhosts and permissions,
    and the management user (declares cells' and workers' queues, reads and writes nothing).

    No ``guest`` user is created because definitions replace the default user and vhost.
    """
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    definitions = {
        "users": [
            {
                "name": user,
                "password_hash": password_hash(password, salt),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                # Tests create vhosts through the management API, which needs administrator.
                "tags": ["administrator"],
            },
            {
                "name": management_user,
                "password_hash": password_hash(management_password, salt),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                # Creating users and setting permissions needs it (RabbitMQ has no narrower tag).
                "tags": ["administrator"],
            },
            {
                "name": JS_RUNNER_USER,
                "password_hash": password_hash(JS_RUNNER_PASSWORD, salt),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            },
        ],
        "vhosts": [{"name": "/"}, {"name": vhost}],
        "permissions": [
            {"user": user, "vhost": vhost, **everything},
            {"user": user, "vhost": "/", **everything},
            {"user": management_user, "vhost": vhost, **management_permissions()},
            {"user": JS_RUNNER_USER, "vhost": vhost, **js_runner_permissions()},
        ],
    }
    return json.dumps(definitions, indent=2) + "\n"


def render_conf(*, definitions: Path, address: NodeAddress = NodeAddress()) -> str:
    return (
        "# Written by `modyard dev infra up`; changes are overwritten.\n"
        f"listeners.tcp.default = {HOST}:{address.amqp_port}\n"
        f"management.tcp.ip = {HOST}\n"
        f"management.tcp.port = {address.management_port}\n"
        f"load_definitions = {definitions}\n"
        "log.file.level = info\n"
        "log.console = false\n"
    )


def render_ctl_wrapper(env: dict[str, str], rabbitmqctl: str) -> str:
    """A ``rabbitmqctl`` that talks to our node, for troubleshooting by hand."""
    exports = "".join(f"export {key}='{value}'\n" for key, value in sorted(env.items()))
    return f'#!/bin/sh\n# Written by `modyard dev infra up`.\n{exports}exec {rabbitmqctl} "$@"\n'


class RabbitMQ(Component):
    title = "RabbitMQ"
    key = "rabbitmq"
    required = True
    process_name = "rabbitmq-server"
    setting = "MODYARD_AMQP_URL"

    def __init__(
        self, run: RunLayout, settings: CommonSettings, address: NodeAddress = NodeAddress()
    ) -> None:
        super().__init__(run, settings)
        self.address = address

    @property
    def log_file(self) -> Path:
        # The node's own log (startup errors before logging is set up land in stdout.log).
        return self.dir / "log" / f"{self.address.nodename}.log"

    @property
    def stdout_log(self) -> Path:
        return self.dir / "stdout.log"

    @property
    def epmd_pid_file(self) -> Path:
        return self.dir / "epmd.pid"

    @property
    def configured_url(self) -> str:
        return self.settings.amqp_url

    @property
    def local_url(self) -> str:
        return self.address.amqp_url

    def configured_reachable(self) -> bool:
        target = endpoint(self.configured_url, AMQP_PORT)
        return amqp_answers(target.host, target.port)

    def local_ready(self) -> bool:
        if not tcp_reachable(HOST, self.address.amqp_port):
            return False
        # 200 here also proves the definitions (user, vhosts) were imported.
        overview = f"{self.address.management_url}/api/overview"
        return http_status(overview, auth=(USER, PASSWORD)) == 200

    def targets_local(self) -> bool:
        return is_local(endpoint(self.configured_url, AMQP_PORT), AMQP_PORT)

    def cannot_start(self) -> str | None:
        if not Path(RABBITMQ_LIB, "rabbitmq-server").exists():
            return f"{RABBITMQ_LIB}/rabbitmq-server not found; run scripts/bootstrap.sh"
        if find_binary("erl", ERLANG_LIB) is None:
            return "Erlang (erl) not found; run scripts/bootstrap.sh"
        return None

    def port_conflict(self) -> str | None:
        for port in (self.address.management_port, self.address.dist_port):
            if tcp_reachable(HOST, port):
                return f"{HOST}:{port} is taken by another program; RabbitMQ needs it"
        return None

    def env(self, url: str) -> dict[str, str]:
        values = {"MODYARD_AMQP_URL": url}
        if url == self.address.amqp_url:
            values["MODYARD_AMQP_MANAGEMENT_URL"] = self.address.management_url
            values["MODYARD_AMQP_MANAGEMENT_USERNAME"] = MANAGEMENT_USER
            values["MODYARD_AMQP_MANAGEMENT_PASSWORD"] = MANAGEMENT_PASSWORD
        else:
            values["MODYARD_AMQP_MANAGEMENT_URL"] = self.settings.amqp_management_url
        return values

    def up(self, timeout: float) -> Report:
        report = super().up(timeout)
        if report.state in (State.started, State.running) and self.targets_local():
            failure = self.provision()
            if failure is not None:
                return self._failure(failure)
        return report

    def js_runner_env(self) -> dict[str, str]:
        """For `modyard dev run`: the runner on its own user and the runtime taking js answers
        from it only, when the services use this node and it has that user (a node set up
        before it existed gets it at the next `modyard dev infra up`); else nothing."""
        if not self.targets_local():
            return {}
        try:
            with httpx.Client(
                base_url=self.address.management_url, auth=(USER, PASSWORD), timeout=5
            ) as api:
                if api.get(f"/api/users/{JS_RUNNER_USER}").status_code != 200:
                    return {}
        except httpx.HTTPError:
            return {}
        address = self.address
        return {
            "MODYARD_JS_RUNNER_AMQP_URL": (
                f"amqp://{JS_RUNNER_USER}:{JS_RUNNER_PASSWORD}@{HOST}:{address.amqp_port}/{VHOST}"
            ),
            "MODYARD_RUNTIME_JS_RUNNER_BROKER_USER": JS_RUNNER_USER,
        }

    def provision(self) -> str | None:
        """The management user and its permissions on a running node (idempotent): a node whose
        data predates the user gets it without a restart. A reason when it cannot be done."""
        user, vhost = MANAGEMENT_USER, VHOST
        calls = (
            (f"/api/users/{user}", {"password": MANAGEMENT_PASSWORD, "tags": "administrator"}),
            (f"/api/permissions/{vhost}/{user}", management_permissions()),
            (f"/api/users/{JS_RUNNER_USER}", {"password": JS_RUNNER_PASSWORD, "tags": ""}),
            (f"/api/permissions/{vhost}/{JS_RUNNER_USER}", js_runner_permissions()),
        )
        try:
            with httpx.Client(
                base_url=self.address.management_url, auth=(USER, PASSWORD), timeout=10
            ) as api:
                for path, body in calls:
                    api.put(path, json=body).raise_for_status()
        except httpx.HTTPError as exc:
            return f"could not set up the management user {user}: {exc}"
        return None

    # -- environment -----------------------------------------------------------------------------

    def node_env(self) -> dict[str, str]:
        """Variables that put the node's files under .run and its listeners on loopback."""
        address = self.address
        ctl_ports = (
            {
                "RABBITMQ_CTL_DIST_PORT_MIN": str(address.ctl_dist_port),
                "RABBITMQ_CTL_DIST_PORT_MAX": str(address.ctl_dist_port),
            }
            if address.ctl_dist_port is not None
            else {}
        )
        return {
            "HOME": str(self.dir / "home"),  # where the Erlang cookie lives
            "RABBITMQ_NODENAME": address.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(address.amqp_port),
            "RABBITMQ_DIST_PORT": str(address.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": DIST_INTERFACE_ARGS,
            "RABBITMQ_CTL_ERL_ARGS": DIST_INTERFACE_ARGS,
            **ctl_ports,
            "ERL_EPMD_ADDRESS": HOST,
            "ERL_EPMD_PORT": str(address.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            # An empty env file shields us from /etc/rabbitmq/rabbitmq-env.conf.
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
        }

    def process_env(self) -> dict[str, str]:
        # Drop the caller's own RABBITMQ_*/ERL_* settings: they would fight with ours.
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        return {**base, **self.node_env()}

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl <args>`` against this node (same cookie, HOME and epmd), never raising."""
        return run(
            [f"{RABBITMQ_LIB}/rabbitmqctl", *args],
            env=self.process_env(),
            cwd=self.dir,
            timeout=timeout,
        )

    # -- start -----------------------------------------------------------------------------------

    def start(self, timeout: float) -> int:
        self._write_files()
        self._ensure_epmd(timeout)
        process = spawn_daemon(
            [f"{RABBITMQ_LIB}/rabbitmq-server"],
            log_path=self.stdout_log,
            env=self.process_env(),
            cwd=self.dir,
        )
        write_pid(self.pid_file, process.pid)
        try:
            wait_until(
                self.local_ready,
                timeout=timeout,
                what="RabbitMQ",
                log_path=self.stdout_log,
                interval=0.5,
                died=lambda: process.poll() is not None,
            )
        except StartupError as exc:
            terminate(process.pid, expect=None, timeout=30)
            remove_pid(self.pid_file)
            raise StartupError(f"{exc}\n    (the node's own log: {self.log_file})") from None
        return process.pid

    def _write_files(self) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        definitions = self.dir / "definitions.json"
        definitions.write_text(
            render_definitions(
                user=USER, password=PASSWORD, vhost=VHOST, salt=secrets.token_bytes(4)
            ),
            encoding="utf-8",
        )
        definitions.chmod(0o600)
        (self.dir / "rabbitmq.conf").write_text(
            render_conf(definitions=definitions, address=self.address), encoding="utf-8"
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n", encoding="utf-8")
        (self.dir / "rabbitmq-env.conf").write_text("", encoding="utf-8")
        wrapper = self.dir / "rabbitmqctl"
        wrapper.write_text(
            render_ctl_wrapper(self.node_env(), f"{RABBITMQ_LIB}/rabbitmqctl"), encoding="utf-8"
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    def _ensure_epmd(self, timeout: float) -> None:
        """Run epmd ourselves (loopback only, PID recorded) unless one is already listening.

        Left to Erlang, epmd would daemonize and we could not tell later which one to stop.
        """
        epmd_port = self.address.epmd_port
        if tcp_reachable(HOST, epmd_port):
            return
        epmd = find_binary("epmd", ERLANG_LIB)
        if epmd is None:
            raise StartupError("epmd not found; run scripts/bootstrap.sh")
        log = self.dir / "epmd.log"
        process = spawn_daemon(
            [epmd, "-address", HOST, "-port", str(epmd_port)], log_path=log, cwd=self.dir
        )
        write_pid(self.epmd_pid_file, process.pid)
        wait_until(
            lambda: tcp_reachable(HOST, epmd_port),
            timeout=min(timeout, 15),
            what="epmd",
            log_path=log,
            died=lambda: process.poll() is not None,
        )

    # -- stop ------------------------------------------------------------------------------------

    def stop(self, pid: int, timeout: float) -> None:
        # The start script traps SIGTERM and stops the Erlang VM, which shuts RabbitMQ down
        # cleanly; the whole process group (VM, port helpers) is killed only after the timeout.
        terminate(pid, expect=self.process_name, timeout=max(timeout, 30))

    def cleanup_after_stop(self) -> None:
        epmd_pid = read_pid(self.epmd_pid_file)
        if epmd_pid is not None and is_running(epmd_pid, "epmd"):
            terminate(epmd_pid, expect="epmd", timeout=5)
        remove_pid(self.epmd_pid_file)
