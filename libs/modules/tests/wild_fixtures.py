"""Loading and editing the look-alike fixtures under ``fixtures/`` (issue 19)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modyard.modules.formats.base import Issue, ManifestError, ModuleFiles
from modyard.modules.formats.detection import parse_module
from modyard.modules.manifest import Manifest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> ModuleFiles:
    root = FIXTURES / name
    return ModuleFiles(
        {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
    )


def edited_json(files: ModuleFiles, path: str, edit: Callable[[Any], None]) -> ModuleFiles:
    document = json.loads(files[path])
    edit(document)
    return ModuleFiles({**files, path: json.dumps(document).encode()})


def edited_yaml(files: ModuleFiles, path: str, edit: Callable[[Any], None]) -> ModuleFiles:
    document = yaml.safe_load(files[path])
    edit(document)
    return ModuleFiles({**files, path: yaml.safe_dump(document).encode()})


def parsed(files: ModuleFiles, version: str | None = "1.2.0") -> Manifest:
    return parse_module(files, version=version)


def refused(files: ModuleFiles, version: str | None = "1.2.0") -> list[Issue]:
    with pytest.raises(ManifestError) as caught:
        parse_module(files, version=version)
    return caught.value.issues


def published_text(manifest: Manifest) -> str:
    """Everything the registry would store and show of the manifest."""
    return json.dumps(manifest.model_dump(mode="json", by_alias=True))
