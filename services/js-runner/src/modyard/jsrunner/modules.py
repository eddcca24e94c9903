"""Module versions on disk: unpacked, dependencies installed, read-only, ready for a child.

A module version is fetched from the registry on its first call (manifest and archive), unpacked
into a staging directory, its ``package.json`` levels installed (:mod:`modyard.jsrunner.npm`),
then made read-only and renamed into place in one step: a failed install leaves nothing, and a
directory that exists is complete. Its name carries the archive's digest, so the dependencies
installed are keyed by the exact ``package.json``/lockfile content published.

The base layer (``node/base``: lodash, form-data, moment-timezone, bluebird, installed with
``npm ci`` from the lockfile shipped with the runner) lives under a directory named after that
lockfile's hash, next to the appmixer-lib shim: every child may ``require`` them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from modyard.jsrunner.npm import InstallFailed, has_dependencies, install
from modyard.jsrunner.registry_client import RegistryClient
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.modules.archive import ArchiveLimits, ArchiveRejected, read_archive

log = structlog.get_logger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._@-]")
_READY = ".modyard-js.json"


class ModuleUnavailable(Exception):
    """The module version cannot run here; ``retryable`` says whether waiting may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class JsComponent:
    name: str
    entry: Path
    #: The auth service id (``vendor:service``) whose configuration the component gets as
    #: ``context.auth``.
    auth_service: str | None
    #: component.json's ``state.persistent``: the node's state outlives the flow's stop.
    persistent_state: bool = False
    #: The in port as the registry mapped it: its JSON Schema and the raw field definitions
    #: (a Slingr step's inputs are converted to these types: slingr/inputs.py).
    input_schema: dict[str, Any] = field(default_factory=dict)
    input_fields: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ModuleVersion:
    name: str
    version: str
    key: str
    directory: Path
    components: dict[str, JsComponent]
    #: The manifest's format: ``appmixer`` components run on node/bootstrap.js, ``slingr``
    #: packages on node/slingr/main.js (docs/slingr.md).
    format: str = "appmixer"


def _read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        for name in dirnames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    root.chmod(root.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable_then_remove(root: Path) -> None:
    if not root.exists():
        return
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
    root.chmod(root.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(root, ignore_errors=True)


def _input_port(component: dict[str, Any]) -> dict[str, Any]:
    ports = component.get("in_ports") or []
    port = ports[0] if ports and isinstance(ports[0], dict) else {}
    schema = port.get("json_schema")
    extra = port.get("extra")
    fields = extra.get("fields") if isinstance(extra, dict) else None
    return {
        "input_schema": schema if isinstance(schema, dict) else {},
        "input_fields": tuple(f for f in fields or () if isinstance(f, dict)),
    }


def _components(manifest: dict[str, Any], directory: Path) -> dict[str, JsComponent]:
    found = {}
    for component in manifest.get("components") or []:
        executor = component.get("executor") or {}
        if executor.get("type") != "js" or not executor.get("entrypoint"):
            continue
        auth = component.get("auth") or {}
        service = auth.get("service") if isinstance(auth, dict) else None
        extra = component.get("extra")
        declared = extra.get("state") if isinstance(extra, dict) else None
        state = declared if isinstance(declared, dict) else {}
        found[component["name"]] = JsComponent(
            name=component["name"],
            entry=directory / PurePosixPath(executor["entrypoint"]),
            auth_service=str(service) if service else None,
            persistent_state=state.get("persistent") is True,
            **_input_port(component),
        )
    return found


class ModuleStore:
    def __init__(self, settings: JsRunnerSettings, registry: RegistryClient) -> None:
        self._settings = settings
        self._registry = registry
        self._root = settings.cache_path / "modules"
        self._staging = settings.cache_path / "staging"
        self._loaded: dict[tuple[str, str], ModuleVersion] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.base_paths: tuple[Path, ...] = ()

    async def prepare_base(self) -> None:
        """Install the base layer once per lockfile; the shim directory needs nothing."""
        source = self._settings.node_dir / "base"
        lock = (source / "package-lock.json").read_bytes()
        digest = hashlib.sha256(lock + (source / "package.json").read_bytes()).hexdigest()[:16]
        target = self._settings.cache_path / "base" / digest
        if not (target / _READY).exists():
            staging = self._staging / f"base-{uuid.uuid4().hex}"
            staging.mkdir(parents=True)
            try:
                shutil.copy(source / "package.json", staging / "package.json")
                shutil.copy(source / "package-lock.json", staging / "package-lock.json")
                await install(staging, self._settings, shown_as="the runner's base layer")
                (staging / _READY).write_text("{}")
                _read_only(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    staging.rename(target)
                except OSError:  # another runner process installed it first
                    _writable_then_remove(staging)
            except BaseException:
                _writable_then_remove(staging)
                raise
        self.base_paths = (target / "node_modules", source / "shims")
        log.info("js_base_layer_ready", path=str(target))

    def add_directory(
        self, name: str, version: str, directory: Path, manifest: dict[str, Any]
    ) -> ModuleVersion:
        """Serve ``name`` ``version`` from an unpacked directory (tests, one-off runs): nothing
        is fetched or installed."""
        loaded = self._version(name, version, manifest, directory)
        self._loaded[(name, version)] = loaded
        return loaded

    async def get(self, name: str, version: str) -> ModuleVersion:
        key = (name, version)
        loaded = self._loaded.get(key)
        if loaded is not None:
            return loaded
        async with self._locks.setdefault(key, asyncio.Lock()):
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = await self._load(name, version)
                self._loaded[key] = loaded
            return loaded

    async def _load(self, name: str, version: str) -> ModuleVersion:
        manifest = await self._registry.manifest(name, version)
        if manifest is None:
            raise ModuleUnavailable(
                f"the registry has no module {name} {version} (was it removed?)", retryable=False
            )
        prefix = _SAFE.sub("_", f"{name}@{version}")
        existing = sorted(self._root.glob(f"{prefix}-*")) if self._root.exists() else []
        for directory in existing:
            if (directory / _READY).exists():
                return self._version(name, version, manifest, directory)
        data, digest = await self._registry.archive(name, version)
        directory = self._root / f"{prefix}-{_SAFE.sub('_', digest)[:20] or 'nodigest'}"
        # A Slingr package.json is the package's descriptor (its `dependencies` a list of
        # packages and services), not npm's: Slingr code has no npm dependencies to install.
        npm = manifest.get("format") != "slingr"
        await self._unpack_and_install(name, version, data, directory, npm=npm)
        return self._version(name, version, manifest, directory)

    def _version(
        self, name: str, version: str, manifest: dict[str, Any], directory: Path
    ) -> ModuleVersion:
        return ModuleVersion(
            name=name,
            version=version,
            key=directory.name,
            directory=directory,
            components=_components(manifest, directory),
            format=str(manifest.get("format") or "appmixer"),
        )

    async def _unpack_and_install(
        self, name: str, version: str, data: bytes, directory: Path, *, npm: bool = True
    ) -> None:
        try:
            files = read_archive(data, ArchiveLimits())
        except ArchiveRejected as exc:
            raise ModuleUnavailable(
                f"the archive of {name} {version} cannot be unpacked: {exc}", retryable=False
            ) from None
        staging = self._staging / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            for path, content in files.items():
                parts = PurePosixPath(path).parts
                if "node_modules" in parts:
                    continue  # installed here from package.json, never taken from the archive
                target = staging.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            levels = sorted(
                (p for p in staging.rglob("package.json") if "node_modules" not in p.parts),
                key=lambda p: len(p.parts),
            )
            for package_json in levels if npm else []:
                if has_dependencies(package_json):
                    shown = str(package_json.relative_to(staging))
                    await install(package_json.parent, self._settings, shown_as=shown)
            (staging / _READY).write_text(json.dumps({"module": name, "version": version}))
            _read_only(staging)
            directory.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(directory)
            except OSError:  # installed meanwhile by another runner process
                _writable_then_remove(staging)
        except InstallFailed as exc:
            _writable_then_remove(staging)
            raise ModuleUnavailable(
                f"{name} {version}: npm could not install the dependencies of "
                f"{exc.package_json}: {exc.excerpt}",
                retryable=False,
            ) from None
        except BaseException:
            _writable_then_remove(staging)
            raise
        log.info("js_module_installed", module=name, version=version, path=str(directory))
