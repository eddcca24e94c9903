"""The cell's module (``module/``) as the zip ``modyard publish`` would upload."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODULE_DIR = Path(__file__).parent / "module"


def module_zip(
    *,
    version: str | None = None,
    edit: Callable[[dict[str, dict[str, Any]]], None] | None = None,
) -> bytes:
    """The module zipped; ``version`` replaces appcell.json's, ``edit`` may change the JSON files
    (by name, e.g. ``plugin.json``) before zipping (tests use it for broken variants)."""
    documents = {path.name: json.loads(path.read_text()) for path in MODULE_DIR.glob("*.json")}
    if version is not None:
        documents["appcell.json"]["version"] = version
    if edit is not None:
        edit(documents)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, document in sorted(documents.items()):
            archive.writestr(name, json.dumps(document, indent=2))
        for path in sorted(MODULE_DIR.rglob("*")):
            if path.is_file() and path.parent != MODULE_DIR:
                archive.writestr(str(path.relative_to(MODULE_DIR)), path.read_bytes())
    return buffer.getvalue()
