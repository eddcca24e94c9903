"""Third-party modules compiled as ``python -OO`` compiles them, for service processes.

A service process holds every docstring of the libraries it imports: they are constants of the
code objects (a function's docstring is its code's first constant) and the ``__doc__`` of each
module and class, ~4.5 MiB in the runtime (SQLAlchemy's alone ~2 MiB), never read by a process that
serves requests. ``python -OO`` drops them, but for every module, modyard's own too, whose
docstrings FastAPI turns into the OpenAPI descriptions and typer into ``--help``, and whose asserts
we want. So only third-party modules (the virtual environment's ``site-packages``, modyard's
packages excepted) are compiled at optimization level 2: no docstrings, no asserts, line numbers
unchanged. Level 2 and not docstrings alone because that is the mode the libraries support and
test: SQLAlchemy, for one, asserts at import that its event functions have a docstring, an assert
``-OO`` removes with them. The standard library is left as it is (the images compile it in their
base, at level 0).

Two paths, the same bytecode:

- the images ship third-party packages as bytecode only, compiled at level 2 by the Dockerfile
  (``compileall -b -o 2``: each ``.pyc`` beside where its ``.py`` was);
- a process that imports them from source (a development environment, the tests' and benchmarks'
  service processes) installs :func:`install_import_hook` first thing in its ``__main__``, through
  :func:`~modyard.common.lean_process.lean_service_process`. Its bytecode cache is CPython's own
  for level 2 (``<module>.cpython-311.opt-2.pyc``, what ``python -OO`` reads and writes), so a
  process without the hook (pytest, the CLI) never loads a module compiled at level 2, nor the
  other way round.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from types import CodeType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

#: CPython's optimization level 2: docstrings and asserts left out (``python -OO``).
LIBRARY_OPTIMIZATION = 2


def _library_directories() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({os.path.join(paths[key], "") for key in ("purelib", "platlib")})


class LibraryLoader(importlib.machinery.SourceFileLoader):
    """The standard source loader, compiling third-party modules at level 2 and caching them
    where CPython caches level 2."""

    _libraries = _library_directories()

    def _strips(self) -> bool:
        return self.path.startswith(self._libraries) and self.name.partition(".")[0] != "modyard"

    def source_to_code(  # type: ignore[override]
        self, data: bytes, path: str, *, _optimize: int = -1
    ) -> CodeType:
        if self._strips():
            _optimize = LIBRARY_OPTIMIZATION
        return super().source_to_code(data, path, _optimize=_optimize)

    def _cache_entry(self, path: str) -> str:
        # get_data reads both the source and its cache entry: only the latter is renamed.
        if self._strips() and path.endswith(".pyc"):
            return importlib.util.cache_from_source(self.path, optimization=LIBRARY_OPTIMIZATION)
        return path

    def get_data(self, path: str) -> bytes:
        return super().get_data(self._cache_entry(path))

    def set_data(self, path: str, data: ReadableBuffer, *, _mode: int = 0o666) -> None:
        super().set_data(self._cache_entry(path), data, _mode=_mode)


def install_import_hook() -> None:
    """From now on, this process compiles the third-party source modules it imports at level 2."""
    if any(getattr(hook, "modyard_library_bytecode", False) for hook in sys.path_hooks):
        return
    hook = importlib.machinery.FileFinder.path_hook(
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (LibraryLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
    )
    hook.modyard_library_bytecode = True  # type: ignore[attr-defined]
    # In place of the standard FileFinder hook (zipimport's stays first), and the finders it
    # already made dropped, so that every directory gets one of the new finders.
    standard = [
        index
        for index, existing in enumerate(sys.path_hooks)
        if getattr(existing, "__qualname__", "").startswith("FileFinder.path_hook")
    ]
    if standard:
        sys.path_hooks[standard[0]] = hook
    else:
        sys.path_hooks.append(hook)
    sys.path_importer_cache.clear()
