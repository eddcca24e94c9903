"""An optional image registry (CNCF distribution, Debian's ``docker-registry``) on 127.0.0.1:5000.

Basic auth comes from an htpasswd file (bcrypt, the only format distribution accepts). Plain HTTP is
fine for it on loopback: distribution does not insist on TLS, and docker treats 127.0.0.1:5000 as
an insecure registry (we also pass ``--insecure-registry`` to our dockerd).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from modyard.dev.component import Component, find_binary
from modyard.dev.processes import (
    StartupError,
    remove_pid,
    run,
    spawn_daemon,
    terminate,
    wait_until,
    write_pid,
)
from modyard.sdk.probes import endpoint, http_status, is_local

HOST = "127.0.0.1"
PORT = 5000
USERNAME = "modyard"
PASSWORD = "modyard"  # noqa: S105 - the documented development credential
REALM = "modyard"
LOCAL_URL = f"http://{HOST}:{PORT}"
# Debian ships distribution as docker-registry; upstream builds call the binary registry.
BINARY_NAMES = ("docker-registry", "registry")


def render_config(*, addr: str, root: Path, htpasswd: Path, realm: str, secret: str) -> str:
    """distribution's YAML config; JSON string literals are valid YAML double-quoted scalars."""

    def q(value: str) -> str:
        return json.dumps(value)

    return (
        "# Written by `modyard dev infra up`; changes are overwritten.\n"
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        "  accesslog:\n"
        "    disabled: false\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {q(str(root))}\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: {q(addr)}\n"
        # Signs upload state; random is fine for a single instance.
        f"  secret: {q(secret)}\n"
        "  headers:\n"
        "    X-Content-Type-Options: [nosniff]\n"
        "auth:\n"
        "  htpasswd:\n"
        f"    realm: {q(realm)}\n"
        f"    path: {q(str(htpasswd))}\n"
    )


def find_registry_binary() -> str | None:
    for name in BINARY_NAMES:
        found = find_binary(name, "/usr/bin")
        if found:
            return found
    return None


class ImageRegistry(Component):
    title = "image registry"
    key = "image-registry"
    required = False
    process_name = "registry"  # matches both docker-registry and registry
    setting = "MODYARD_IMAGE_REGISTRY_URL"

    @property
    def log_file(self) -> Path:
        return self.dir / "registry.log"

    @property
    def configured_url(self) -> str:
        return self.settings.image_registry_url

    @property
    def local_url(self) -> str:
        return LOCAL_URL

    def configured_reachable(self) -> bool:
        # Any answer from the v2 API root (200 without auth, 401 with) means a registry is there.
        return http_status(self.configured_url.rstrip("/") + "/v2/") in {200, 401}

    def local_ready(self) -> bool:
        return http_status(f"{LOCAL_URL}/v2/", auth=(USERNAME, PASSWORD)) == 200

    def targets_local(self) -> bool:
        return is_local(endpoint(self.configured_url, PORT), PORT)

    def cannot_start(self) -> str | None:
        if find_registry_binary() is None:
            return "docker-registry not installed (scripts/bootstrap.sh installs it)"
        if find_binary("htpasswd") is None:
            return "htpasswd not installed (scripts/bootstrap.sh installs apache2-utils)"
        return None

    def env(self, url: str) -> dict[str, str]:
        if url == LOCAL_URL:
            username, password = USERNAME, PASSWORD
        else:
            username = self.settings.image_registry_username
            password = self.settings.image_registry_password.get_secret_value()
        return {
            "MODYARD_IMAGE_REGISTRY_URL": url,
            "MODYARD_IMAGE_REGISTRY_USERNAME": username,
            "MODYARD_IMAGE_REGISTRY_PASSWORD": password,
        }

    def start(self, timeout: float) -> int:
        binary = find_registry_binary()
        htpasswd_bin = find_binary("htpasswd")
        # Both checked by cannot_start().
        assert binary is not None
        assert htpasswd_bin is not None
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        htpasswd = self.dir / "htpasswd"
        # -i reads the password from stdin, keeping it off the command line.
        hashed = run([htpasswd_bin, "-niB", USERNAME], input_text=PASSWORD + "\n")
        if hashed.returncode != 0:
            raise StartupError(f"htpasswd failed: {hashed.stderr.strip()}")
        htpasswd.write_text(hashed.stdout.strip() + "\n", encoding="utf-8")
        htpasswd.chmod(0o600)
        config = self.dir / "config.yml"
        config.write_text(
            render_config(
                addr=f"{HOST}:{PORT}",
                root=self.dir / "data",
                htpasswd=htpasswd,
                realm=REALM,
                secret=secrets.token_hex(16),
            ),
            encoding="utf-8",
        )
        config.chmod(0o600)
        process = spawn_daemon([binary, "serve", str(config)], log_path=self.log_file, cwd=self.dir)
        write_pid(self.pid_file, process.pid)
        try:
            wait_until(
                self.local_ready,
                timeout=min(timeout, 30),
                what="the image registry",
                log_path=self.log_file,
                died=lambda: process.poll() is not None,
            )
            if http_status(f"{LOCAL_URL}/v2/") != 401:
                raise StartupError(
                    f"the image registry at {LOCAL_URL} accepts anonymous requests; check {config}"
                )
        except StartupError:
            terminate(process.pid, expect=None, timeout=10)
            remove_pid(self.pid_file)
            raise
        return process.pid

    def stop(self, pid: int, timeout: float) -> None:
        terminate(pid, expect=self.process_name, timeout=min(timeout, 15))
