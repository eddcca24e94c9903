"""Which sandbox layers this machine provides, checked once at start-up.

Three layers come from outside Node and may be missing: the user and network namespace
(``unshare --user --map-root-user --net``; container runtimes' default seccomp profiles often
forbid it), the mount namespace that hides directories holding Unix sockets (``--mount``, and
``mount`` allowed in it) and Node's permission model (``--experimental-permission``, Node ≥ 20).
Without them a component could read the runner's files, talk to a local daemon's socket or open
connections past the egress policy, so in
production the runner refuses to start unless an operator accepts the weaker isolation
(``MODYARD_JS_RUNNER_ACCEPT_WEAK_ISOLATION``), and every start logs what is missing.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass, field

import structlog

from modyard.common.settings import Environment
from modyard.jsrunner.settings import JsRunnerSettings

log = structlog.get_logger(__name__)

#: Node's permission model answers ``false`` for a file outside --allow-fs-read.
_PERMISSION_PROBE = (
    "process.exit(process.permission && !process.permission.has('fs.read', '/etc/hostname')"
    " ? 0 : 3)"
)


#: The child's namespaces: its own user (root inside, the runner's uid outside), network (no
#: route out) and mounts (private: nothing mounted there shows outside, nor the reverse).
NAMESPACES = ("--user", "--map-root-user", "--net")
MOUNT_NAMESPACE = (*NAMESPACES, "--mount", "--propagation", "private")


class WeakIsolationRefused(RuntimeError):
    """A sandbox layer is missing in production and nobody accepted that."""


@dataclass(frozen=True)
class Isolation:
    namespaces: bool
    permissions: bool
    node_version: str
    #: A mount namespace where ``mount`` works: the child's view hides ``hidden_dirs``.
    mounts: bool = False
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing


async def _run(*argv: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={},
        )
    except OSError as exc:
        return 127, str(exc)
    try:
        async with asyncio.timeout(timeout):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return 124, "timed out"
    return process.returncode or 0, output.decode(errors="replace").strip()


async def probe(settings: JsRunnerSettings) -> Isolation:
    code, version = await _run(settings.node_binary, "--version")
    if code != 0:
        raise RuntimeError(
            f"Node.js is not runnable at {settings.node_binary} ({version}); install Node 20 "
            "(Debian's nodejs) or set MODYARD_JS_RUNNER_NODE_BINARY"
        )
    major = int(version.lstrip("v").split(".", 1)[0] or 0)
    missing = []
    code, output = await _run(
        settings.unshare_binary, "--user", "--map-root-user", "--net", "--", "/bin/true"
    )
    namespaces = code == 0
    if not namespaces:
        missing.append(f"user+network namespace (unshare failed: {output[:200] or code})")
    mounts = False
    if namespaces:
        code, output = await _run(
            settings.unshare_binary,
            *MOUNT_NAMESPACE,
            "--",
            settings.mount_binary,
            "-n",
            "-t",
            "tmpfs",
            "-o",
            "ro,nosuid,nodev,noexec,size=4k",
            "tmpfs",
            str(settings.node_dir),
        )
        mounts = code == 0
        if not mounts:
            missing.append(
                "mount namespace hiding the host's Unix sockets "
                f"(unshare --mount; mount failed: {output[:200] or code})"
            )
    permissions = False
    if major >= 20:
        code, output = await _run(
            settings.node_binary,
            "--experimental-permission",
            f"--allow-fs-read={settings.node_dir}",
            "-e",
            _PERMISSION_PROBE,
        )
        permissions = code == 0
    if not permissions:
        missing.append(f"Node's permission model (node {version} --experimental-permission)")
    return Isolation(namespaces, permissions, version, mounts=mounts, missing=missing)


def check(isolation: Isolation, settings: JsRunnerSettings) -> None:
    """Refuse a production start with a missing layer unless accepted; log it at every start."""
    if isolation.complete:
        log.info(
            "js_runner_isolation",
            namespaces=True,
            mounts=True,
            permissions=True,
            node=isolation.node_version,
        )
        return
    if settings.environment is Environment.production and not settings.accept_weak_isolation:
        raise WeakIsolationRefused(
            "the JavaScript runner's sandbox is incomplete here: "
            + "; ".join(isolation.missing)
            + ". Give the runner what it needs (docs/js-runner.md, 'Isolation': a seccomp "
            "profile allowing unshare, or a sandboxed runtime class), or accept the weaker "
            "isolation with MODYARD_JS_RUNNER_ACCEPT_WEAK_ISOLATION=true"
        )
    log.warning(
        "js_runner_weak_isolation",
        missing=isolation.missing,
        accepted=settings.accept_weak_isolation,
        environment=str(settings.environment),
    )
