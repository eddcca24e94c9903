"""Where the repository is and where each component keeps its state under ``.run/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUN_DIR_NAME = ".run"
# The workspace root is the only directory holding uv.lock; members have just a pyproject.toml.
ROOT_MARKER = "uv.lock"


class RepoNotFoundError(RuntimeError):
    """Raised when no directory at or above the start has the workspace marker."""


def find_repo_root(start: Path | None = None) -> Path:
    """Walk up from ``start`` (default: the current directory) to the directory with ``uv.lock``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ROOT_MARKER).is_file():
            return candidate
    raise RepoNotFoundError(
        f"no {ROOT_MARKER} found in {here} or any parent; run this inside the modyard checkout"
    )


@dataclass(frozen=True)
class RunLayout:
    """Paths under the repository's ``.run/`` directory (ignored by git)."""

    root: Path

    @property
    def run_dir(self) -> Path:
        return self.root / RUN_DIR_NAME

    @property
    def infra_env(self) -> Path:
        return self.run_dir / "infra.env"

    def component_dir(self, name: str) -> Path:
        return self.run_dir / name


def layout(start: Path | None = None) -> RunLayout:
    return RunLayout(find_repo_root(start))
