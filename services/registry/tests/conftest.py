from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modyard.registry.formats.base import ModuleFiles

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_files(name: str) -> ModuleFiles:
    """The files of ``fixtures/<name>/`` as an archive would carry them (``/``-separated paths)."""
    root = FIXTURES / name
    if not root.is_dir():
        raise FileNotFoundError(root)
    return ModuleFiles(
        {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
    )


@pytest.fixture
def module_fixture() -> Callable[[str], ModuleFiles]:
    return fixture_files
