"""A cell that implements AppCell's core/ interfaces without bundling them (issue 19, AppCell case
3) is catalogued against the schemas modyard ships; a plugin lacking what one requires is refused
at install, naming the interface and the action to add."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modyard.appcell_gateway.cells.catalogue import CellInvalid, build_catalogue
from modyard.modules.archive import ArchiveLimits, read_archive
from modyard.modules.examples import example_files
from modyard.modules.formats.appcell import AppCellAdapter
from modyard.modules.formats.appcell_platform import platform_schemas
from modyard.testing.archives import make_zip


def catalogue(edit: Any = None) -> dict[str, Any]:
    files = dict(example_files("appcell-renamed-registrar"))
    if edit is not None:
        plugins = json.loads(files["plugins.json"])
        edit(plugins["plugin"]["AcmeRegistrar"]["actions"])
        files["plugins.json"] = json.dumps(plugins).encode()
    archive = make_zip(files)
    manifest = AppCellAdapter().parse(read_archive(archive, ArchiveLimits()))
    return build_catalogue(manifest, archive)


def test_a_cell_implementing_core_interfaces_it_does_not_bundle_is_catalogued() -> None:
    built = catalogue()
    entry = built["plugins"]["AcmeRegistrar"]
    assert [i["path"] for i in entry["implements"]] == [
        "core/service.schema.json",
        "core/availability.schema.json",
        "core/renewable.schema.json",
    ]
    assert built["files"]["core/renewable.schema.json"] == platform_schemas()["renewable"].document
    # Plugin-only actions (case 2) keep their own schemas.
    transfer = entry["actions"]["transfer"][0]
    assert transfer["payload"]["path"] == "schema/domain/transfer.payload.json"


def test_a_plugin_lacking_what_a_platform_interface_requires_is_refused() -> None:
    with pytest.raises(CellInvalid) as refused:
        catalogue(lambda actions: actions.pop("renew"))
    message = str(refused.value)
    assert "core/renewable.schema" in message
    assert '"renew"' in message
