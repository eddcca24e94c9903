"""What a service process leaves out of its memory: rich and pygments, installed for the CLI.

The workspace's command lines (typer, ``modyard``) render with rich, so rich and pygments are
installed beside every service; structlog (its dev console renderer), httpx (its ``httpx`` command)
and mako (through alembic: its error pages' syntax highlighting) import them eagerly when they are
there. A service never renders to a terminal: its logs are JSON or structlog's plain console, its
HTTP clients never run httpx's command, its migrations never render mako's error pages. Marking the
two packages absent before anything imports them costs those libraries nothing (each falls back to
what it does without them, as when rich is not installed) and saves ~7 MiB of each process's
resident memory and ~100 modules' import (``make bench ONLY=service_footprint``).

Call :func:`leave_out_terminal_rendering` first thing in a service's ``__main__``, before any other
import; never in a library module (the CLI, which imports the same libraries, wants rich).
"""

from __future__ import annotations

import os
import sys

#: Top-level packages a service process never uses, though installed for the CLI.
TERMINAL_RENDERING = ("rich", "pygments")


def leave_out_terminal_rendering() -> None:
    # typer's own switch: without it, the service's --help and its uncaught errors would still
    # reach for rich (typer decides at import, from this variable, not from what imports).
    os.environ.setdefault("TYPER_USE_RICH", "0")
    for package in TERMINAL_RENDERING:
        # None in sys.modules makes ``import rich`` raise ImportError (the libraries' optional-
        # import fallbacks catch it) and importlib.util.find_spec answer None; setdefault leaves
        # a package already imported alone.
        sys.modules.setdefault(package, None)  # type: ignore[arg-type]
