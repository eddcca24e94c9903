"""The example cell as a process of its own, as tests and benchmarks start it."""

from __future__ import annotations

from pathlib import Path

from modyard.sdk.cell.runner import run_command

TARGET = "examples.resellerclub_cell.cell:cell"
#: Where the command runs: ``examples`` must be importable from the current directory.
CWD = Path(__file__).resolve().parents[2]


def cell_command(credentials: Path, *options: str, log_level: str = "WARNING") -> list[str]:
    """``modyard cell run`` of the example cell with ``credentials`` (the gateway's JSON)."""
    return run_command(TARGET, credentials, "--log-level", log_level, *options)
