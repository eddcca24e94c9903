"""The version of a module whose files carry none comes from the publish request (issue 19:
Slingr 1, Prisme.ai 1, AppCell 1); for every format, files and request must agree."""

from __future__ import annotations

from typing import Any

from modyard.modules.examples import example_files
from modyard.modules.formats.base import ModuleFiles

from .wild_fixtures import edited_json, parsed, refused


def versionless_cell() -> ModuleFiles:
    def drop_version(doc: dict[str, Any]) -> None:
        del doc["version"]

    return edited_json(example_files("appcell-newresellerclub"), "AppCell.json", drop_version)


def test_a_cell_without_a_version_takes_the_requests() -> None:
    manifest = parsed(versionless_cell(), version="2.4.0")

    assert (manifest.name, manifest.version, manifest.format, manifest.kind) == (
        "newresellerclubcell",
        "2.4.0",
        "appcell",
        "cell",
    )


def test_a_cell_without_a_version_and_none_requested_is_refused_saying_how() -> None:
    (issue,) = refused(versionless_cell(), version=None)

    assert (issue.file, issue.pointer, issue.slug) == (
        "AppCell.json",
        "/version",
        "version-required",
    )
    assert "AppCell cells carry no version" in issue.detail
    assert "modyard publish --version" in issue.detail


def test_a_cell_version_that_disagrees_with_the_request_is_refused() -> None:
    (issue,) = refused(example_files("appcell-newresellerclub"), version="9.0.0")

    assert (issue.file, issue.pointer) == ("AppCell.json", "/version")
    assert issue.detail.startswith("is 2.3.0 but the publish request says 9.0.0")


def test_formats_that_always_carry_a_version_refuse_a_request_that_disagrees() -> None:
    native = example_files("native-weather")

    assert parsed(native, version="1.4.0").version == "1.4.0"
    (issue,) = refused(native, version="1.5.0")
    assert (issue.file, issue.pointer) == ("modyard.yaml", "/version")
    assert "is 1.4.0 but the publish request says 1.5.0" in issue.detail
