"""AppCell cells as they are shipped (issue 19, AppCell cases 2-5), on the look-alike fixture
``appcell-renamed-registrar``: each case's canonical manifest fields, and for each a twin with a
genuine defect, refused at the right file and JSON pointer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from modyard.modules.formats.appcell import AppCellAdapter
from modyard.modules.formats.appcell_platform import platform_schemas
from modyard.modules.formats.base import Issue, ManifestError, ModuleFiles, UnresolvedReference
from modyard.modules.manifest import CellAction, Manifest, PinnedSchema

Fixture = Callable[[str], ModuleFiles]
PLUGIN = "/plugin/AcmeRegistrar"
OLD = "https://repository.appcell.io/oldregistrarcell"


@pytest.fixture
def cell(module_fixture: Fixture) -> ModuleFiles:
    return module_fixture("appcell-renamed-registrar")


def parse(files: ModuleFiles) -> Manifest:
    return AppCellAdapter().parse(files)


def edited(files: ModuleFiles, path: str, change: Callable[[Any], None]) -> ModuleFiles:
    document = json.loads(files[path])
    change(document)
    return ModuleFiles({**files, path: json.dumps(document).encode()})


def refused(files: ModuleFiles, kind: type[ManifestError] = ManifestError) -> list[Issue]:
    with pytest.raises(kind) as raised:
        parse(files)
    assert type(raised.value) is kind
    return raised.value.issues


def action(manifest: Manifest, key: str) -> CellAction:
    assert manifest.cell is not None
    (found,) = [a for a in manifest.cell.actions if a.extra["key"] == key]
    return found


def digest(files: ModuleFiles, path: str) -> str:
    return "sha256:" + hashlib.sha256(files[path]).hexdigest()


def test_the_look_alike_cell_publishes_whole(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert (manifest.name, manifest.version, manifest.label) == (
        "acmeregistrarcell",
        "1.0.0",
        "acmeRegistrarCell",
    )
    assert manifest.cell is not None
    assert [a.extra["key"] for a in manifest.cell.actions] == [
        "create",
        "fetch",
        "update",
        "checkAvailability",
        "transfer",
        "renew",
    ]


# -- case 2: plugin actions resources.json does not list ---------------------------------------


def test_actions_only_the_plugin_file_lists_are_accepted(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    for key in ("transfer", "renew"):
        listed = action(manifest, key)
        assert (listed.resource, listed.action, listed.security) == ("Domain", key, "protected")
        assert listed.extra["listed_in_resources"] is False
    transfer = action(manifest, "transfer")
    assert transfer.payload is not None
    assert transfer.payload.pinned is not None
    assert transfer.payload.pinned.path == "schema/domain/transfer.payload.json"
    # Listed ones are not marked.
    assert "listed_in_resources" not in action(manifest, "checkAvailability").extra


def test_an_action_on_a_resource_resources_json_does_not_describe_is_refused(
    cell: ModuleFiles,
) -> None:
    def contact(document: Any) -> None:
        document["plugin"]["AcmeRegistrar"]["actions"]["fetchAll.Contact"] = [
            {"$payload": f"{OLD}/schema/domain/domain.payload.json"}
        ]

    (issue,) = refused(edited(cell, "plugins.json", contact))
    assert (issue.file, issue.pointer) == (
        "plugins.json",
        f"{PLUGIN}/actions/fetchAll.Contact/0/resource",
    )
    assert "'Contact' is not a resource in resources.json" in issue.detail


# -- case 3: core/ interfaces are the platform's ------------------------------------------------


def test_core_interfaces_resolve_to_the_schemas_modyard_ships(cell: ModuleFiles) -> None:
    assert not [path for path in cell if path.lower().startswith("core/")]
    manifest = parse(cell)
    assert manifest.cell is not None
    shipped = platform_schemas()
    assert manifest.cell.implements == [
        PinnedSchema(
            reference=reference,
            path=f"core/{name}.schema.json",
            digest=shipped[name].digest,
            source="platform",
        )
        for reference, name in (
            ("https://repository.appcell.io/core/service.schema", "service"),
            (
                "https://repository.appcell.io/core/interface/availability.schema.json",
                "availability",
            ),
            ("https://repository.appcell.io/core/renewable.schema", "renewable"),
        )
    ]
    assert {"service", "availability", "renewable", "suspendable", "impersonate"} <= set(shipped)
    assert shipped["renewable"].document["required"] == ["renew"]
    # The platform's schemas are not archive files.
    assert not [f for f in manifest.files if f.path.startswith("core/")]


def test_a_bundled_copy_of_a_core_interface_does_not_replace_the_platforms(
    cell: ModuleFiles,
) -> None:
    weakened = json.dumps({"type": "object"}).encode()
    manifest = parse(ModuleFiles({**cell, "core/service.schema": weakened}))
    assert manifest.cell is not None
    service = manifest.cell.implements[0]
    assert (service.path, service.source) == ("core/service.schema.json", "platform")
    assert service.digest == platform_schemas()["service"].digest


def test_a_core_interface_the_platform_does_not_have_is_refused(cell: ModuleFiles) -> None:
    def teleport(document: Any) -> None:
        document["plugin"]["AcmeRegistrar"]["implements"].append(
            "https://repository.appcell.io/core/teleport.schema"
        )

    (issue,) = refused(edited(cell, "plugins.json", teleport), UnresolvedReference)
    assert (issue.file, issue.pointer) == ("plugins.json", f"{PLUGIN}/implements/3")
    assert "none of the AppCell platform interfaces" in issue.detail
    assert "availability, impersonate, renewable, service, suspendable" in issue.detail


# -- case 4: require.scope is a list -------------------------------------------------------------


def test_require_scope_lists_the_data_the_cell_reads(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert manifest.requires.extra["scope"] == ["customer_product", "customer", "email"]
    assert manifest.requires.platform == ">=1"
    assert [d.name for d in manifest.dependencies] == []


def test_a_scope_that_is_not_a_name_is_refused(cell: ModuleFiles) -> None:
    def damage(document: Any) -> None:
        document["require"]["scope"] = ["customer", 7]

    (issue,) = refused(edited(cell, "AppCell.json", damage))
    assert (issue.file, issue.pointer) == ("AppCell.json", "/require/scope/1")
    assert "not a scope name" in issue.detail


# -- case 5: references naming the cell this one was made from; bundled UI modules --------------


def test_urls_naming_the_cell_it_was_renamed_from_resolve_to_the_bundled_files(
    cell: ModuleFiles,
) -> None:
    manifest = parse(cell)
    create = action(manifest, "create")
    assert create.payload is not None
    assert create.result is not None
    assert create.payload.pinned == PinnedSchema(
        reference=f"{OLD}/schema/domain/domain.payload.json",
        path="schema/domain/domain.payload.json",
        digest=digest(cell, "schema/domain/domain.payload.json"),
    )
    assert create.result.pinned is not None
    assert create.result.pinned.path == "schema/domain/domain.result.json"
    listed = {(f.path, f.role) for f in manifest.files}
    assert ("schema/domain/transfer.payload.json", "schema") in listed


def test_a_bundled_ui_module_is_pinned_and_a_remote_one_stays_a_url(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert manifest.cell is not None
    (backend,) = manifest.cell.ui["backendModules"]
    assert backend == {
        "url": f"{OLD}/schema/ui/controller.js",
        "urlBase": "registrar",
        "path": "schema/ui/controller.js",
        "digest": digest(cell, "schema/ui/controller.js"),
    }
    (frontend,) = manifest.cell.ui["frontendModules"]
    assert "path" not in frontend
    assert frontend["url"].startswith("https://cdn.")
    assert ("schema/ui/controller.js", "ui-backend") in {(f.path, f.role) for f in manifest.files}


def test_a_renamed_reference_whose_rest_matches_no_bundled_file_is_refused(
    cell: ModuleFiles,
) -> None:
    def gone(document: Any) -> None:
        document["plugin"]["AcmeRegistrar"]["actions"]["transfer"][0]["$payload"] = (
            f"{OLD}/schema/domain/gone.payload.json"
        )

    (issue,) = refused(edited(cell, "plugins.json", gone), UnresolvedReference)
    assert (issue.file, issue.pointer) == ("plugins.json", f"{PLUGIN}/actions/transfer/0/$payload")
    assert (
        "tried: oldregistrarcell/schema/domain/gone.payload.json, "
        "schema/domain/gone.payload.json" in issue.detail
    )


def test_a_renamed_reference_matching_two_bundled_files_is_refused(cell: ModuleFiles) -> None:
    twin = ModuleFiles(
        {**cell, "Schema/Domain/Transfer.payload.json": cell["schema/domain/transfer.payload.json"]}
    )
    (issue,) = refused(twin, UnresolvedReference)
    assert (issue.file, issue.pointer) == ("plugins.json", f"{PLUGIN}/actions/transfer/0/$payload")
    assert "matches several bundled files" in issue.detail


def test_a_ui_module_of_this_cell_missing_from_the_archive_is_refused(cell: ModuleFiles) -> None:
    def own(document: Any) -> None:
        document["frontendModules"].append(
            {"url": "https://repository.appcell.io/acmeregistrarcell/schema/ui/tabs.js"}
        )

    (issue,) = refused(edited(cell, "Ui.json", own))
    assert (issue.file, issue.pointer) == ("Ui.json", "/frontendModules/1/url")
    assert "names a file of this cell, which the archive lacks" in issue.detail
