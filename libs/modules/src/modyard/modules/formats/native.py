"""modyard's own format: ``modyard.yaml`` or ``modyard.json`` at the archive root.

The document *is* a canonical manifest (see ``GET /v1/schemas/manifest``) without ``format``,
which is always ``native``. Every code file a component's executor names must be in the archive.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationError

from modyard.modules.formats.base import IssueCollector, ManifestError, ModuleFiles
from modyard.modules.formats.container import parse_container_document
from modyard.modules.manifest import Manifest, ModuleFormat, ModuleKind

NATIVE_FILES = ("modyard.yaml", "modyard.yml", "modyard.json")


def validation_issues(
    collector: IssueCollector, file: str, error: ValidationError, prefix: str = ""
) -> None:
    """pydantic's errors as issues located by JSON pointer inside ``file``."""
    for item in error.errors():
        pointer = prefix + "".join(f"/{part}" for part in item["loc"])
        collector.add(file, pointer, item["msg"])


class NativeAdapter:
    format: ClassVar[ModuleFormat] = ModuleFormat.native

    def detect(self, files: ModuleFiles) -> bool:
        return any(files.find(name) for name in NATIVE_FILES)

    def parse(self, files: ModuleFiles) -> Manifest:
        path = next(found for name in NATIVE_FILES if (found := files.find(name)))
        document = files.json(path) if path.lower().endswith(".json") else files.yaml(path)
        collector = IssueCollector()
        if not isinstance(document, dict):
            collector.add(
                path, "", "must be a mapping of manifest fields (see /v1/schemas/manifest)"
            )
            collector.raise_if_any()
        assert isinstance(document, dict)
        if document.get("kind") == ModuleKind.container.value and "container" not in document:
            return parse_container_document(document, file=path, format=ModuleFormat.native)
        declared = document.pop("format", ModuleFormat.native.value)
        if declared != ModuleFormat.native.value:
            collector.add(
                path, "/format", f"is {declared!r}; a modyard.yaml is always 'native' (omit it)"
            )
        try:
            manifest = Manifest.model_validate({**document, "format": ModuleFormat.native})
        except ValidationError as exc:
            validation_issues(collector, path, exc)
            collector.raise_if_any()
            raise  # unreachable: pydantic always reports at least one error
        _check_entrypoints(manifest, files, path, collector)
        collector.raise_if_any()
        return manifest


def _check_entrypoints(
    manifest: Manifest, files: ModuleFiles, path: str, collector: IssueCollector
) -> None:
    for index, component in enumerate(manifest.components):
        entrypoint = component.executor.entrypoint
        if entrypoint and entrypoint not in files:
            collector.add(
                path,
                f"/components/{index}/executor/entrypoint",
                f"names {entrypoint!r}, which is not in the archive; add the file or fix the path",
            )


__all__ = ["NATIVE_FILES", "ManifestError", "NativeAdapter", "validation_issues"]
