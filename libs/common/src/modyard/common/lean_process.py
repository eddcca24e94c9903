"""What a service process leaves out of its memory: rich and pygments, installed for the CLI.

The workspace's command lines (typer, ``modyard``) render with rich, so rich and pygments are
installed beside every service; structlog (its dev console renderer), httpx (its ``httpx`` command)
and mako (through alembic: its error pages' syntax highlighting) import them eagerly when they are
there. A service never renders to a terminal: its logs are JSON or structlog's plain console, its
HTTP clients never run httpx's command, its migrations never render mako's error pages. Marking the
two packages absent before anything imports them costs those libraries nothing (each falls back to
what it does without them, as when rich is not installed) and saves ~7 MiB of each process's
resident memory and ~100 modules' import (``make bench ONLY=service_footprint``).

PyJWT imports cryptography's asymmetric-key modules (RSA, EC, EdDSA, X.509 and the Rust extension
with OpenSSL: ~60 modules, 7 to 8 MiB anonymous and ~6 MiB of library pages) whenever cryptography is
installed, though the services' tokens are HMAC-signed (``jwt_algorithm`` accepts only HS256/384/
512). :func:`import_hmac_only_jwt` imports PyJWT as if cryptography were not installed, which PyJWT
supports (cryptography is its optional ``crypto`` extra); cryptography itself stays importable and
is loaded by the first secret a :class:`~modyard.common.secrets.SecretBox` opens.

uvicorn imports watchfiles, when it is installed, for its ``--reload`` supervisor (``uvicorn.
supervisors`` picks its file watcher at import): a served process never reloads, and the images do not
install watchfiles (the Dockerfile's ``--no-install-package``), so a development process leaves it out
too (:data:`DEVELOPMENT_RELOAD`, ~1 MiB: its Rust extension and its modules) and measures as a
container runs.

FastAPI imports ``pydantic.v1`` (23 modules, ~2.6 MiB) only to ask whether a route's types are
pydantic 1 models, and answers "no" when it cannot be imported (its path for a pydantic without
v1); modyard has no pydantic 1 model, so a service process marks it absent
(:data:`LEGACY_MODELS`).

Third-party modules' docstrings are left out too (:mod:`modyard.common.library_bytecode`).

Call :func:`lean_service_process` first thing in a service's ``__main__``, before any other
import; never in a library module (the CLI, which imports the same libraries, wants rich).
"""

from __future__ import annotations

import os
import sys

from modyard.common.library_bytecode import install_import_hook

#: Top-level packages a service process never uses, though installed for the CLI.
TERMINAL_RENDERING = ("rich", "pygments")
#: Modules a service process never uses, though its libraries look for them.
LEGACY_MODELS = ("pydantic.v1",)
#: uvicorn's --reload file watcher: never used by a served process, not installed in the images.
DEVELOPMENT_RELOAD = ("watchfiles",)


def leave_out_terminal_rendering() -> None:
    # typer's own switch: without it, the service's --help and its uncaught errors would still
    # reach for rich (typer decides at import, from this variable, not from what imports).
    os.environ.setdefault("TYPER_USE_RICH", "0")
    for package in TERMINAL_RENDERING:
        # None in sys.modules makes ``import rich`` raise ImportError (the libraries' optional-
        # import fallbacks catch it) and importlib.util.find_spec answer None; setdefault leaves
        # a package already imported alone.
        sys.modules.setdefault(package, None)  # type: ignore[arg-type]


def import_hmac_only_jwt() -> None:
    if "jwt" in sys.modules or "cryptography" in sys.modules:
        return  # too late to change what PyJWT finds: it imports as usual
    # None in sys.modules makes PyJWT's ``from cryptography import ...`` raise ModuleNotFoundError,
    # the one it catches to run without cryptography (HMAC algorithms only); removed right after,
    # so that a SecretBox imports cryptography when it needs it.
    sys.modules["cryptography"] = None  # type: ignore[assignment]
    try:
        import jwt  # noqa: F401
    finally:
        del sys.modules["cryptography"]


def lean_service_process() -> None:
    """Everything a service process leaves out, before its first import (see the docstring)."""
    # First: every third-party module imported after this is compiled without its docstrings.
    install_import_hook()
    leave_out_terminal_rendering()
    for module in (*LEGACY_MODELS, *DEVELOPMENT_RELOAD):
        sys.modules.setdefault(module, None)  # type: ignore[arg-type]
    import_hmac_only_jwt()
