"""Which adapter reads an upload: exactly one must recognise its files."""

from __future__ import annotations

from modyard.modules.formats.appcell import AppCellAdapter
from modyard.modules.formats.appmixer import AppmixerAdapter
from modyard.modules.formats.base import FormatAdapter, ModuleFiles
from modyard.modules.formats.container import ContainerAdapter
from modyard.modules.formats.native import NativeAdapter
from modyard.modules.formats.prismeai import PrismeAiAdapter
from modyard.modules.formats.slingr import SlingrAdapter
from modyard.modules.manifest import Manifest

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


def parse_module(files: ModuleFiles) -> Manifest:
    return detect_adapter(files).parse(files)
