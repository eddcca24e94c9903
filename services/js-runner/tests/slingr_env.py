"""Helpers of the Slingr tests: the look-alike packages under fixtures/slingr (written for these
tests, not copied), mapped by the registry's own Slingr adapter and served by a runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsrunner_env import Harness

from modyard.modules.formats.base import ModuleFiles
from modyard.modules.formats.slingr import SlingrAdapter

PACKAGES = Path(__file__).parent / "fixtures" / "slingr"


def manifest_of(directory: Path, version: str = "1.0.0") -> dict[str, Any]:
    files = ModuleFiles(
        {
            str(path.relative_to(directory)): path.read_bytes()
            for path in directory.rglob("*")
            if path.is_file()
        }
    )
    return SlingrAdapter().parse(files, version=version).model_dump(mode="json")


def add_package(harness: Harness, name: str, *, as_name: str | None = None) -> str:
    """Register the fixture package ``name`` with the harness's runner; returns its module name."""
    directory = PACKAGES / name
    manifest = manifest_of(directory)
    module = as_name or manifest["name"]
    harness.runner.store.add_directory(module, "1.0.0", directory, manifest)
    return module


async def step(
    harness: Harness, module: str, name: str, inputs: Any = None, **extra: Any
) -> dict[str, Any]:
    return await harness.runner.handle(
        {
            "module": module,
            "version": "1.0.0",
            "component": name,
            "port": "in",
            "payload": inputs,
            **extra,
        }
    )
