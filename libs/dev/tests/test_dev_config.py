"""Rendering of the configuration files `modyard dev infra up` writes."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from modyard.dev import docker, image_registry, postgres, rabbitmq


def test_postgres_conf_binds_loopback_and_quotes_paths() -> None:
    conf = postgres.render_conf(port=5432, socket_dir=Path("/srv/it's here"))
    assert "listen_addresses = '127.0.0.1'\n" in conf
    assert "port = 5432\n" in conf
    # A single quote inside a PostgreSQL string literal is doubled.
    assert "unix_socket_directories = '/srv/it''s here'\n" in conf
    assert "max_connections = 300\n" in conf


def test_postgres_local_url_matches_the_documented_credentials() -> None:
    assert postgres.LOCAL_URL == "postgresql+asyncpg://modyard:modyard@127.0.0.1:5432/modyard"


def test_rabbitmq_password_hash_is_salted_sha256() -> None:
    salt = b"\x01\x02\x03\x04"
    encoded = rabbitmq.password_hash("modyard", salt)
    raw = base64.b64decode(encoded)
    assert raw[:4] == salt
    assert raw[4:] == hashlib.sha256(salt + b"modyard").digest()


def test_rabbitmq_definitions_make_an_administrator_with_both_vhosts() -> None:
    definitions = json.loads(
        rabbitmq.render_definitions(
            user="modyard", password="modyard", vhost="modyard", salt=b"salt"
        )
    )
    user, management, js_runner = definitions["users"]
    assert user["name"] == "modyard"
    assert user["tags"] == ["administrator"]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert "password" not in user
    assert {vhost["name"] for vhost in definitions["vhosts"]} == {"/", "modyard"}
    granted = {(p["user"], p["vhost"]): p for p in definitions["permissions"]}
    assert set(granted) == {
        ("modyard", "modyard"),
        ("modyard", "/"),
        ("modyard-management", "modyard"),
        ("modyard-js-runner", "modyard"),
    }
    for key in (("modyard", "modyard"), ("modyard", "/")):
        assert granted[key]["configure"] == granted[key]["write"] == granted[key]["read"] == ".*"
    # The management user declares cells' and workers' queues and moves no message.
    assert management["name"] == "modyard-management"
    assert "password" not in management
    mine = granted[("modyard-management", "modyard")]
    assert mine["write"] == mine["read"] == "^$"
    assert mine["configure"].startswith("^(appcell\\.cell|modyard\\.modules)\\.")
    # The JavaScript runner's own user: no tag, only its queues, events and the replies exchange
    # (the set test_broker_user.py runs the runner on).
    assert js_runner["name"] == "modyard-js-runner"
    assert js_runner["tags"] == []
    runner = granted[("modyard-js-runner", "modyard")]
    assert {
        k: runner[k] for k in ("configure", "write", "read")
    } == rabbitmq.js_runner_permissions()
    assert ".*" not in (runner["configure"], runner["write"], runner["read"])


def test_rabbitmq_conf_listens_on_loopback_only() -> None:
    conf = rabbitmq.render_conf(definitions=Path("/x/definitions.json"))
    assert "listeners.tcp.default = 127.0.0.1:5672\n" in conf
    assert "management.tcp.ip = 127.0.0.1\n" in conf
    assert "management.tcp.port = 15672\n" in conf
    assert "load_definitions = /x/definitions.json\n" in conf


def test_rabbitmq_node_env_keeps_everything_under_run_and_on_loopback(tmp_path: Path) -> None:
    from modyard.common.settings import CommonSettings
    from modyard.dev.paths import RunLayout

    component = rabbitmq.RabbitMQ(RunLayout(tmp_path), CommonSettings(_env_file=None))
    env = component.node_env()
    assert env["ERL_EPMD_ADDRESS"] == "127.0.0.1"
    assert env["RABBITMQ_NODE_IP_ADDRESS"] == "127.0.0.1"
    assert "inet_dist_use_interface {127,0,0,1}" in env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    for key in ("HOME", "RABBITMQ_MNESIA_BASE", "RABBITMQ_LOG_BASE", "RABBITMQ_CONFIG_FILE"):
        assert Path(env[key]).is_relative_to(tmp_path / ".run" / "rabbitmq")


def test_ctl_wrapper_exports_the_node_environment() -> None:
    script = rabbitmq.render_ctl_wrapper({"B": "2", "A": "1"}, "/usr/lib/rabbitmq/bin/rabbitmqctl")
    assert script.startswith("#!/bin/sh\n")
    assert script.index("export A='1'") < script.index("export B='2'")
    assert script.rstrip().endswith('exec /usr/lib/rabbitmq/bin/rabbitmqctl "$@"')


def test_registry_config_is_valid_yaml_with_auth_and_delete() -> None:
    yaml = pytest.importorskip("yaml")
    text = image_registry.render_config(
        addr="127.0.0.1:5000",
        root=Path('/data/with "quotes"'),
        htpasswd=Path("/run/htpasswd"),
        realm="modyard",
        secret="s3cret",
    )
    config = yaml.safe_load(text)
    assert config["http"]["addr"] == "127.0.0.1:5000"
    assert config["storage"]["filesystem"]["rootdirectory"] == '/data/with "quotes"'
    assert config["storage"]["delete"]["enabled"] is True
    assert config["auth"]["htpasswd"] == {"realm": "modyard", "path": "/run/htpasswd"}


def test_dockerd_args_disable_networking_features_and_use_our_socket() -> None:
    args = docker.dockerd_args(
        "/usr/sbin/dockerd",
        base=Path("/r/.run/docker"),
        socket=Path("/r/.run/docker/docker.sock"),
        insecure_registries=["127.0.0.1:5000"],
    )
    assert args[0] == "/usr/sbin/dockerd"
    assert "--bridge=none" in args
    assert "--iptables=false" in args
    assert args[args.index("--host") + 1] == "unix:///r/.run/docker/docker.sock"
    assert args[args.index("--data-root") + 1] == "/r/.run/docker/data"
    assert args[args.index("--exec-root") + 1] == "/r/.run/docker/exec"
    assert args[args.index("--config-file") + 1] == "/r/.run/docker/daemon.json"
    assert args[args.index("--insecure-registry") + 1] == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("http://127.0.0.1:5000", None),
        ("http://user:pw@registry.internal:5001", "registry.internal:5001"),
        ("https://registry.example.com", None),
    ],
)
def test_insecure_registries(url: str, extra: str | None) -> None:
    registries = docker.insecure_registries(url)
    assert registries[:2] == ["127.0.0.1:5000", "localhost:5000"]
    assert registries[2:] == ([extra] if extra else [])
