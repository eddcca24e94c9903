"""Which adapter reads an upload: exactly one must recognise its files."""

from __future__ import annotations

from modyard.modules.formats.appcell import AppCellAdapter
from modyard.modules.formats.appmixer import AppmixerAdapter
from modyard.modules.formats.base import FormatAdapter, Issue, ManifestError, ModuleFiles
from modyard.modules.formats.container import ContainerAdapter
from modyard.modules.formats.native import NativeAdapter
from modyard.modules.formats.prismeai import PrismeAiAdapter
from modyard.modules.formats.slingr import SlingrAdapter
from modyard.modules.manifest import Manifest, ModuleFormat

# A native manifest wins over the files of another format that it may ship alongside.
ADAPTERS: tuple[FormatAdapter, ...] = (
    NativeAdapter(),
    AppmixerAdapter(),
    SlingrAdapter(),
    PrismeAiAdapter(),
    AppCellAdapter(),
    ContainerAdapter(),
)


class UnknownFormat(ValueError):
    """No adapter recognises the files."""


class AmbiguousFormat(ValueError):
    """More than one adapter recognises the files."""


def detect_adapter(files: ModuleFiles) -> FormatAdapter:
    if NativeAdapter().detect(files):
        return ADAPTERS[0]
    matches = [adapter for adapter in ADAPTERS if adapter.detect(files)]
    if not matches:
        shown = ", ".join(sorted(files)[:10]) + (", …" if len(files) > 10 else "")
        raise UnknownFormat(
            "No supported module format recognises these files "
            f"({shown}). Expected one of: modyard.yaml (native), bundle.json + */component.json "
            "(appmixer), a Slingr package.json, a Prisme.ai workspace YAML, appcell.json (appcell), "
            "container.json (container)."
        )
    if len(matches) > 1:
        names = ", ".join(adapter.format.value for adapter in matches)
        raise AmbiguousFormat(
            f"The files look like several formats at once ({names}). Upload one module per archive, "
            "or add a modyard.yaml that says what the module is."
        )
    return matches[0]


# Where the formats whose files always carry a version write it (named when a request disagrees).
_VERSION_FILES = {
    ModuleFormat.native: "modyard.yaml",
    ModuleFormat.appmixer: "bundle.json",
    ModuleFormat.container: "container.json",
}


def parse_module(files: ModuleFiles, *, version: str | None = None) -> Manifest:
    """The canonical manifest of the files. ``version`` is the one the publish request names
    (normalised): formats whose files may carry none (Slingr, Prisme.ai, AppCell, a container
    document) take it from there; for every format, a version in the files that disagrees with
    it is refused."""
    adapter = detect_adapter(files)
    if isinstance(adapter, SlingrAdapter | PrismeAiAdapter | AppCellAdapter):
        return adapter.parse(files, version=version)
    if isinstance(adapter, ContainerAdapter):
        # A container.json without a version takes the request's (OneEntry's are git tags).
        manifest = adapter.parse(files, version=version)
    else:
        manifest = adapter.parse(files)
    if version is not None and manifest.version != version:
        file = _VERSION_FILES.get(adapter.format, "(module)")
        raise ManifestError(
            [
                Issue(
                    file,
                    "/version",
                    f"is {manifest.version} but the publish request says {version}; publish "
                    f"it as {manifest.version}, or change the version in {file}",
                )
            ]
        )
    return manifest
