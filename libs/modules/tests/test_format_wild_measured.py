"""Shapes found by running the adapters over real public modules (issue 19, measurement R).

Each case is one reason a module published by its own ecosystem was refused here; the look-alikes
are edits of this repository's own fixtures (no third-party file is copied). Every accepted case
asserts the canonical manifest, and its genuine-defect twin is refused naming file and pointer.
"""

from __future__ import annotations

from modyard.modules.formats.base import ModuleFiles

from .wild_fixtures import fixture, parsed, refused

STEP_FOLDER = "flowSteps/sendChatter"


def _without(files: ModuleFiles, *paths: str) -> ModuleFiles:
    return ModuleFiles({path: data for path, data in files.items() if path not in paths})


# --- Slingr: a flow step shipped without icon.png ---------------------------------------------
# Official packages (pandadoc, github) declare steps whose folder holds only step.json and step.js;
# Slingr's flow editor shows its default icon for them.


def test_a_flow_step_without_an_icon_is_a_component_with_no_icon() -> None:
    files = _without(fixture("slingr/chatter"), f"{STEP_FOLDER}/icon.png")

    manifest = parsed(files, version="1.0.0")

    (step,) = manifest.components
    assert (step.name, step.role, step.icon) == ("sendChatter", "action", None)
    assert step.executor is not None
    assert step.executor.entrypoint == f"{STEP_FOLDER}/step.js"
    assert "body" in (step.in_ports[0].json_schema or {})["properties"]


def test_a_flow_step_without_its_code_is_still_refused_at_its_metadata_entry() -> None:
    files = _without(fixture("slingr/chatter"), f"{STEP_FOLDER}/icon.png", f"{STEP_FOLDER}/step.js")

    (issue,) = refused(files, version="1.0.0")

    assert (issue.file, issue.pointer) == ("package.json", "/metadata/3/path")
    assert f"lacks {STEP_FOLDER}/step.js" in issue.detail
    assert "icon.png" not in issue.detail.split(";")[0]


def test_an_icon_that_is_there_is_still_checked() -> None:
    chatter = fixture("slingr/chatter")
    files = ModuleFiles({**chatter, f"{STEP_FOLDER}/icon.png": b"GIF89a not a png"})

    (issue,) = refused(files, version="1.0.0")

    assert (issue.file, issue.pointer) == (f"{STEP_FOLDER}/icon.png", "")
    assert "not a PNG" in issue.detail
