"""Installing npm dependencies, never per call: once per module version (and once for the base
layer), with a shared npm cache, and never running package scripts.

``npm ci`` where a lockfile exists (exactly what it pins), else ``npm install --omit=dev``;
always ``--ignore-scripts``: an install script would run outside the sandbox, as the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from pathlib import Path

from modyard.jsrunner.settings import JsRunnerSettings

#: npm's own noise, dropped from the excerpt a refusal quotes.
_NOISE = ("npm notice", "npm WARN deprecated", "npm warn deprecated")
_COMMON_FLAGS = (
    "--omit=dev",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--no-update-notifier",
)


class InstallFailed(Exception):
    """npm could not install a ``package.json``'s dependencies; ``excerpt`` is npm's error."""

    def __init__(self, package_json: str, excerpt: str) -> None:
        super().__init__(f"npm could not install the dependencies of {package_json}: {excerpt}")
        self.package_json = package_json
        self.excerpt = excerpt


def has_dependencies(package_json: Path) -> bool:
    try:
        document = json.loads(package_json.read_text())
    except (OSError, ValueError):
        return True  # let npm say what is wrong with it
    return bool(isinstance(document, dict) and document.get("dependencies"))


def _environment(settings: JsRunnerSettings) -> dict[str, str]:
    cache = settings.cache_path
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        # npm writes its logs and settings under HOME: ours, not the service user's.
        "HOME": str(cache / "npm-home"),
        "npm_config_cache": str(cache / "npm-cache"),
        "npm_config_update_notifier": "false",
    }
    if settings.npm_registry:
        env["npm_config_registry"] = settings.npm_registry
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


async def install(directory: Path, settings: JsRunnerSettings, *, shown_as: str) -> None:
    """Install ``directory/package.json``'s dependencies into ``directory/node_modules``."""
    locked = (directory / "package-lock.json").exists() or (
        directory / "npm-shrinkwrap.json"
    ).exists()
    argv = [settings.npm_binary, "ci" if locked else "install", *_COMMON_FLAGS]
    if not locked:
        argv.append("--no-package-lock")
    (settings.cache_path / "npm-home").mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(directory),
        env=_environment(settings),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(settings.npm_timeout_seconds):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise InstallFailed(
            shown_as, f"npm did not finish within {settings.npm_timeout_seconds} s"
        ) from None
    if process.returncode != 0:
        lines = [
            line
            for line in (stderr or stdout).decode(errors="replace").splitlines()
            if line.strip() and not line.startswith(_NOISE)
        ]
        raise InstallFailed(shown_as, "\n".join(lines[:12])[:1500] or f"exit {process.returncode}")
