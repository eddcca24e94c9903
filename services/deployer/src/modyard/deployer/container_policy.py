"""What a deployed container may be: the operator's bounds on what a deployment declares.

A container module is untrusted code. Every container starts confined (no capabilities, no new
privileges, read-only root file system, a non-root user, resource limits, images only from the
allowed registries); a deployment may declare more (capabilities, root, writable paths, larger
limits) only within the operator's settings. The API checks a declaration when it is stored (a
422 problem pointing at the field), and the reconciler again when it rolls it out, because the
operator may have narrowed the settings since (the deployment is then ``warn`` with the reason).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modyard.deployer.backend import Sandbox
from modyard.deployer.image_ref import normalize_registry_host

if TYPE_CHECKING:
    from modyard.deployer.settings import DeployerSettings

#: capabilities(7), without the ``CAP_`` prefix.
CAPABILITIES = frozenset(
    [
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "SYSLOG",
        "WAKE_ALARM",
    ]
)
USER_RE = re.compile(r"^([0-9]{1,10})(?::([0-9]{1,10}))?$")
MAX_WRITABLE_PATHS = 16
#: Where a writable tmpfs would hide the system or the container's own plumbing.
RESERVED_PATHS = frozenset({"/", "/proc", "/sys", "/dev", "/etc", "/bin", "/sbin", "/usr", "/lib"})
DEFAULT_WRITABLE_PATHS = ("/tmp",)  # noqa: S108 - a tmpfs of its own, in the container


class InvalidDeclaration(ValueError):
    """A declaration the operator's settings do not allow; ``detail`` says what to change."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(detail)
        self.pointer = pointer
        self.detail = detail


@dataclass(frozen=True)
class Declaration:
    """What a deployment asks for beyond the defaults (None: the default)."""

    capabilities: Sequence[str] = ()
    user: str | None = None
    writable_paths: Sequence[str] | None = None
    memory_limit_mb: int | None = None
    cpu_limit: float | None = None
    pids_limit: int | None = None


def normalize_capability(name: str) -> str:
    """``net_bind_service`` and ``CAP_NET_BIND_SERVICE`` are both ``NET_BIND_SERVICE``."""
    upper = name.strip().upper()
    upper = upper.removeprefix("CAP_")
    if upper not in CAPABILITIES:
        raise InvalidDeclaration(
            "", f"{name!r} is not a Linux capability (see capabilities(7)), e.g. NET_BIND_SERVICE."
        )
    return upper


def normalize_registry(host: str) -> str:
    """A registry as an image reference names it: ``host[:port]``, lower-case."""
    return normalize_registry_host(host).lower()


def check_registry(host: str, settings: DeployerSettings, pointer: str = "/body/image") -> None:
    allowed = settings.registries
    if normalize_registry(host) not in allowed:
        raise InvalidDeclaration(
            pointer,
            f"Images may only come from the registries an operator allowed ({', '.join(allowed)}); "
            f"{host!r} is not one of them: push the image there, or have an operator add the "
            "registry to MODYARD_DEPLOYER_ALLOWED_REGISTRIES.",
        )


def _user(text: str, settings: DeployerSettings, pointer: str) -> str:
    match = USER_RE.match(text.strip())
    if match is None:
        raise InvalidDeclaration(
            pointer,
            f"The user {text!r} must be numeric, uid or uid:gid (e.g. 1000:1000): names depend "
            "on the image's /etc/passwd, which the deployer does not read.",
        )
    uid, gid = int(match.group(1)), int(match.group(2) or match.group(1))
    if 0 in (uid, gid) and not settings.allow_root:
        raise InvalidDeclaration(
            pointer,
            f"The user {text!r} is root (uid or gid 0), which this deployer refuses: run the "
            "module as a non-root uid:gid, or have an operator set MODYARD_DEPLOYER_ALLOW_ROOT=true.",
        )
    return f"{uid}:{gid}"


def _writable_path(text: str, settings: DeployerSettings, pointer: str) -> str:
    normal = posixpath.normpath(text) if text.startswith("/") else ""
    if normal.startswith("//"):
        normal = normal[1:]
    if (
        not normal
        or normal != text.rstrip("/")
        or normal in RESERVED_PATHS
        or any(character in text for character in ",:\x00")
        or len(text) > 255
    ):
        raise InvalidDeclaration(
            pointer,
            f"{text!r} must be an absolute, normalized path without '..', ',' or ':' (e.g. "
            f"/var/cache/app), and not one of {', '.join(sorted(RESERVED_PATHS))}.",
        )
    data = settings.data_path.rstrip("/")
    if normal == data or normal.startswith(f"{data}/"):
        raise InvalidDeclaration(
            pointer,
            f"{text!r} is in the data volume ({settings.data_path}), which is writable already; "
            "leave it out.",
        )
    return normal


def _limit(value: float | None, cap: float, setting: str, pointer: str) -> None:
    if value is not None and value > cap:
        raise InvalidDeclaration(
            pointer,
            f"{value:g} is above what this deployer allows ({cap:g}, "
            f"MODYARD_DEPLOYER_{setting}): ask for less, or have an operator raise it.",
        )


def check(
    declaration: Declaration, settings: DeployerSettings, prefix: str = "/body"
) -> Declaration:
    """The declaration, normalized, if the settings allow it (else :class:`InvalidDeclaration`)."""
    capabilities = []
    for index, name in enumerate(declaration.capabilities):
        pointer = f"{prefix}/capabilities/{index}"
        try:
            capability = normalize_capability(name)
        except InvalidDeclaration as exc:
            raise InvalidDeclaration(pointer, exc.detail) from None
        if capability not in settings.allowed_capabilities:
            allowed = ", ".join(settings.allowed_capabilities) or "none"
            raise InvalidDeclaration(
                pointer,
                f"The capability {capability} is not one an operator allowed (allowed: {allowed}): "
                "leave it out, or have an operator add it to MODYARD_DEPLOYER_ALLOWED_CAPABILITIES.",
            )
        capabilities.append(capability)
    user = None
    if declaration.user is not None:
        user = _user(declaration.user, settings, f"{prefix}/user")
    paths = None
    if declaration.writable_paths is not None:
        if len(declaration.writable_paths) > MAX_WRITABLE_PATHS:
            raise InvalidDeclaration(
                f"{prefix}/writable_paths", f"At most {MAX_WRITABLE_PATHS} writable paths."
            )
        paths = sorted(
            {
                _writable_path(path, settings, f"{prefix}/writable_paths/{index}")
                for index, path in enumerate(declaration.writable_paths)
            }
        )
    _limit(
        declaration.memory_limit_mb,
        settings.max_memory_limit_mb,
        "MAX_MEMORY_LIMIT_MB",
        f"{prefix}/memory_limit_mb",
    )
    _limit(declaration.cpu_limit, settings.max_cpu_limit, "MAX_CPU_LIMIT", f"{prefix}/cpu_limit")
    _limit(
        declaration.pids_limit, settings.max_pids_limit, "MAX_PIDS_LIMIT", f"{prefix}/pids_limit"
    )
    return Declaration(
        capabilities=sorted(set(capabilities)),
        user=user,
        writable_paths=paths,
        memory_limit_mb=declaration.memory_limit_mb,
        cpu_limit=declaration.cpu_limit,
        pids_limit=declaration.pids_limit,
    )


def sandbox(declaration: Declaration, settings: DeployerSettings) -> Sandbox:
    """The confinement of a container: the declaration checked again (settings may have
    narrowed since it was stored), with the defaults filled in."""
    checked = check(declaration, settings, prefix="")
    paths = checked.writable_paths
    return Sandbox(
        user=checked.user or settings.default_user,
        capabilities=tuple(checked.capabilities),
        writable_paths=tuple(DEFAULT_WRITABLE_PATHS if paths is None else paths),
        tmpfs_size_mb=settings.tmpfs_size_mb,
        memory_bytes=(checked.memory_limit_mb or settings.memory_limit_mb) * 1024 * 1024,
        nano_cpus=int((checked.cpu_limit or settings.cpu_limit) * 1e9),
        pids_limit=checked.pids_limit or settings.pids_limit,
    )
