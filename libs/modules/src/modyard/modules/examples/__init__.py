"""Example modules, one or more per format, written from the source documents.

They double as documentation (``modyard pack`` any of them) and as the fixtures of the adapters'
and the registry's tests.
"""

from __future__ import annotations

from pathlib import Path

from modyard.modules.formats.base import ModuleFiles

EXAMPLES = Path(__file__).parent


def example_names() -> list[str]:
    return sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir() and path.name[0] != "_")


def example_dir(name: str) -> Path:
    root = EXAMPLES / name
    if not root.is_dir():
        raise FileNotFoundError(f"no example module {name!r}; there are {example_names()}")
    return root


def example_files(name: str) -> ModuleFiles:
    """The example's files as an archive would carry them (``/``-separated paths)."""
    root = example_dir(name)
    return ModuleFiles(
        {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts
        }
    )
