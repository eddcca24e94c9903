from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from modyard.common.semver import InvalidVersion
from modyard.modules.formats.appcell import (
    AppCellAdapter,
    appcell_range,
    check_security,
    normalize_license,
)
from modyard.modules.formats.appcell_platform import platform_schemas
from modyard.modules.formats.base import ManifestError, ModuleFiles, UnresolvedReference
from modyard.modules.manifest import (
    CellAction,
    CellSchemaRef,
    Manifest,
    ModuleFormat,
    ModuleKind,
    PinnedSchema,
)

Fixture = Callable[[str], ModuleFiles]
FIXTURE = "appcell-newresellerclub"
R = "https://repository.appcell.io/newresellerclubcell/schema"
PLUGIN = "/plugin/NewResellerClub/actions"


@pytest.fixture
def cell(module_fixture: Fixture) -> ModuleFiles:
    return module_fixture(FIXTURE)


def pinned(files: ModuleFiles, reference: str, path: str) -> PinnedSchema:
    """The pin the adapter must produce, computed here from the fixture's bytes."""
    return PinnedSchema(
        reference=reference, path=path, digest="sha256:" + hashlib.sha256(files[path]).hexdigest()
    )


def edited(files: ModuleFiles, path: str, change: Callable[[Any], None]) -> ModuleFiles:
    document = json.loads(files[path])
    change(document)
    return ModuleFiles({**files, path: json.dumps(document).encode()})


def renamed(files: ModuleFiles, names: dict[str, str]) -> ModuleFiles:
    return ModuleFiles({names.get(path, path): data for path, data in files.items()})


def parse(files: ModuleFiles) -> Manifest:
    return AppCellAdapter().parse(files)


def issues_of(files: ModuleFiles) -> list[tuple[str, str, str]]:
    with pytest.raises(ManifestError) as raised:
        parse(files)
    return [(i.file, i.pointer, i.detail) for i in raised.value.issues]


def action(manifest: Manifest, key: str, index: int = 0) -> CellAction:
    assert manifest.cell is not None
    return [a for a in manifest.cell.actions if a.extra["key"] == key][index]


# -- detection ------------------------------------------------------------------------------------


def test_a_cell_is_recognised_by_appcell_json_in_any_case(cell: ModuleFiles) -> None:
    assert AppCellAdapter().detect(cell)
    assert AppCellAdapter().detect(renamed(cell, {"AppCell.json": "APPCELL.JSON"}))


@pytest.mark.parametrize("other", ["prismeai-nlu", "prismeai-toolbox", "native-weather"])
def test_other_formats_are_not_cells(module_fixture: Fixture, other: str) -> None:
    assert not AppCellAdapter().detect(module_fixture(other))


# -- the NewResellerClub cell, field by field ----------------------------------------------------


def test_appcell_json_maps_to_the_module_header(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert (manifest.name, manifest.version, manifest.format, manifest.kind) == (
        "newresellerclubcell",
        "2.3.0",
        ModuleFormat.appcell,
        ModuleKind.cell,
    )
    assert manifest.label == "newResellerClubCell"
    assert manifest.description is not None
    assert manifest.description.startswith("Registers, transfers and renews domains")
    assert manifest.cell is not None
    assert manifest.cell.license == "BSD-2-Clause OR BSD-3-Clause"
    assert manifest.cell.type == "plugin"
    assert manifest.cell.homepage == "https://www.apihawk.com/"
    assert manifest.cell.support == {
        "email": "thehawks@apihawk.com",
        "issues": "https://support.apihawk.com/newresellerclubcell/issues",
        "docs": "https://docs.apihawk.com/cells/newresellerclubcell",
    }
    assert manifest.cell.extra["config"] == ["ConfigCustom", "ConfigNew"]
    assert manifest.cell.extra["plugin_names"] == ["NewResellerClub"]


def test_require_maps_appcell_to_the_platform_etcd_to_storage_and_ui_to_a_capability(
    cell: ModuleFiles,
) -> None:
    manifest = parse(cell)
    assert manifest.requires.platform == ">=1"
    assert manifest.requires.storage == ["etcd"]
    # ui is the platform's UI (seed 003: "the minimum required versions of AppCell, the UI and
    # the etcd storage"), not a module named 'ui' the installer would look for in the registry.
    assert manifest.requires.capabilities == ["ui"]
    assert manifest.requires.extra == {
        "storage_ranges": {"etcd": ">=3.0"},
        "capability_ranges": {"ui": "^1.0"},
    }
    assert manifest.dependencies == []


def test_require_of_another_name_is_still_a_service_dependency(cell: ModuleFiles) -> None:
    manifest = parse(
        edited(cell, "AppCell.json", lambda doc: doc["require"].update(resellerClubCell="^2.0"))
    )
    assert [(d.name, d.range, d.type) for d in manifest.dependencies] == [
        ("resellerClubCell", "^2.0", "service")
    ]
    assert manifest.requires.capabilities == ["ui"]


def test_implements_urls_are_pinned_to_the_platforms_core_schemas(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert manifest.cell is not None
    shipped = platform_schemas()
    assert manifest.cell.implements == [
        PinnedSchema(
            reference=f"https://repository.appcell.io/core/{name}.schema",
            path=f"core/{name}.schema.json",
            digest=shipped[name].digest,
            source="platform",
        )
        for name in ("service", "availability", "renewable")
    ]
    # Not archive files: the manifest's file list names only what the archive carries.
    assert not [f for f in manifest.files if f.path.startswith("core/")]


def test_plugin_actions_keep_resource_action_and_security(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert manifest.cell is not None
    assert [(a.extra["key"], a.resource, a.action, a.security) for a in manifest.cell.actions] == [
        ("create", "Domain", "create", "protected"),
        ("fetch", "Domain", "fetch", "protected"),
        ("update", "Domain", "update", "protected"),
        ("checkAvailability", "Domain", "checkAvailability", "public"),
        ("transfer", "Domain", "transfer", "rbac::domains.transfer"),
        ("synchronize", "Domain", "synchronize", "protected"),
        ("renew", "Domain", "renew", "protected"),
        ("getEppCode", "Domain", "getEppCode", "protected"),
        ("fetchAll.Contact", "Contact", "fetchAll", "protected"),
        ("updateList.Contact", "Contact", "updateList", "protected"),
        ("fetchAll.DNS", "DNS", "fetchAll", "protected"),
    ]
    assert {a.extra["plugin"] for a in manifest.cell.actions} == {"NewResellerClub"}


def test_payload_urls_are_pinned_and_inline_payloads_kept(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    create = action(manifest, "create")
    assert create.payload == CellSchemaRef(
        pinned=pinned(
            cell, f"{R}/domain/register.payload.json", "schema/domain/register.payload.json"
        )
    )
    assert create.result == CellSchemaRef(
        pinned=pinned(cell, f"{R}/domain/domain.result.json", "schema/domain/domain.result.json")
    )
    update = action(manifest, "update")
    inline = json.loads(cell["plugins.json"])["plugin"]["NewResellerClub"]["actions"]["update"]
    assert update.payload == CellSchemaRef(inline=inline[0]["payload"])
    assert update.payload.inline is not None
    assert update.payload.inline["required"] == ["domain", "ns1", "ns2"]
    assert action(manifest, "renew").result is None
    # A schema shared under another prefix than the cell's name is bundled under that prefix.
    dns = action(manifest, "fetchAll.DNS")
    assert dns.payload is not None
    assert dns.payload.pinned is not None
    assert dns.payload.pinned.path == "dns/schema/record.payload.schema.json"


def test_postpayloads_are_kept_inline_or_pinned_as_billia_instructions(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert action(manifest, "getEppCode").postpayload == CellSchemaRef(
        inline={"data": {"auth_info": "{{result}}"}, "type": "overwrite"}
    )
    assert action(manifest, "synchronize").postpayload == CellSchemaRef(
        pinned=pinned(
            cell,
            f"{R}/domain/synchronize.postpayload.json",
            "schema/domain/synchronize.postpayload.json",
        )
    )


def test_resources_map_identifier_schemas_rest_verbs_and_rpc_actions(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert manifest.cell is not None
    resources = {r.extra["name"]: r for r in manifest.cell.resources}
    assert list(resources) == ["Domain", "NS", "Contact", "Cname", "DNS"]
    assert [(r.identifier, r.rest) for r in resources.values()] == [
        ("domain", ["create", "fetch", "update"]),
        ("domain", ["fetch", "update"]),
        ("contact_id", ["fetchAll", "updateList"]),
        ("ns", ["create", "fetch", "update", "delete"]),
        ("record_id", ["fetchAll", "updateList"]),
    ]
    domain = resources["Domain"]
    assert domain.payload == CellSchemaRef(
        pinned=pinned(
            cell, f"{R}/domain/register.schema.json", "schema/domain/register.schema.json"
        )
    )
    assert domain.rpc == [
        "checkAvailability",
        "getNameServers",
        "updateNameServers",
        "getEppCode",
        "synchronize",
        "transfer",
        "renew",
    ]
    check = domain.extra["actions"]["checkAvailability"]
    assert (
        check["payload"]["pinned"]
        == pinned(
            cell,
            f"{R}/domain/checkAvailability.payload.schema.json",
            "schema/domain/checkAvailability.payload.schema.json",
        ).model_dump()
    )
    assert domain.extra["actions"]["getEppCode"]["identifier"] == "domain"
    assert set(domain.extra["actions"]) == {"checkAvailability", "getEppCode"}
    assert resources["NS"].rpc == []


def test_every_bundled_file_the_cell_depends_on_is_listed_with_its_digest(
    cell: ModuleFiles,
) -> None:
    manifest = parse(cell)
    listed = {(f.path, f.role): f.extra["digest"] for f in manifest.files}
    # Reached only through "$ref" inside other schemas, and pinned all the same.
    assert listed[("schema/common/nameservers.schema.json", "schema")] == _digest(
        cell, "schema/common/nameservers.schema.json"
    )
    assert ("schema/domain/synchronize.postpayload.json", "postpayload") in listed
    assert listed[("schema/ui/controller.js", "ui-backend")] == _digest(
        cell, "schema/ui/controller.js"
    )
    schema_files = {path for path, role in listed if role == "schema"}
    bundled = {p for p in cell if p.endswith((".json", ".schema")) and "/" in p}
    assert schema_files == bundled - {"schema/domain/synchronize.postpayload.json"}


def _digest(files: ModuleFiles, path: str) -> str:
    return "sha256:" + hashlib.sha256(files[path]).hexdigest()


def test_settings_become_the_installation_config_and_are_kept_whole(cell: ModuleFiles) -> None:
    manifest = parse(cell)
    assert [(f.name, f.type, f.secret, f.default) for f in manifest.config.fields] == [
        ("userid", "text", False, None),
        ("password", "password", True, None),
        ("Api key", "password", True, None),
        ("TestMode", "text", False, "0"),
    ]
    properties = manifest.config.json_schema["properties"]
    assert properties["TestMode"] == {"type": "string", "title": "TestMode", "default": "0"}
    assert properties["password"]["writeOnly"] is True
    assert manifest.cell is not None
    settings = manifest.cell.settings
    assert list(settings) == ["settings", "settings.local", "fields", "options"]
    assert settings["settings.local"]["default"] == ["server.apihawk.com"]
    assert [o["key"] for o in settings["options"]][:3] == ["domain", "ns1", "ns2"]
    assert settings["fields"][0] == {"name": "Account Plan", "field_key": "plan", "value": "basic"}


def test_ui_modules_are_lists_and_bundled_modules_get_their_path_and_digest(
    cell: ModuleFiles,
) -> None:
    manifest = parse(cell)
    assert manifest.cell is not None
    (backend,) = manifest.cell.ui["backendModules"]
    (frontend,) = manifest.cell.ui["frontendModules"]
    assert backend == {
        "url": f"{R}/ui/controller.js",
        "urlBase": "newresellerclub",
        "path": "schema/ui/controller.js",
        "digest": _digest(cell, "schema/ui/controller.js"),
    }
    assert (frontend["deps"], frontend["slots"], frontend["slotFilters"]) == (
        ["newresellerclub-shared"],
        ["product-dashboard"],
        ["NewResellerClub"],
    )


# -- file names ----------------------------------------------------------------------------------


def test_installation_file_names_match_in_any_case(cell: ModuleFiles) -> None:
    shouting = renamed(
        cell,
        {
            "AppCell.json": "APPCELL.JSON",
            "plugins.json": "Plugins.JSON",
            "Resources.json": "resources.JSON",
            "settings.json": "SETTINGS.json",
            "Ui.json": "UI.JSON",
        },
    )
    assert parse(shouting) == parse(cell)


def test_plugin_json_and_plugins_json_are_the_same_file(cell: ModuleFiles) -> None:
    assert parse(renamed(cell, {"plugins.json": "Plugin.json"})).cell == parse(cell).cell


def test_shipping_both_plugin_json_and_plugins_json_is_ambiguous(cell: ModuleFiles) -> None:
    both = ModuleFiles({**cell, "plugin.json": cell["plugins.json"]})
    assert any("ambiguous" in detail for _, _, detail in issues_of(both))


def test_missing_plugin_and_resources_files_are_reported(cell: ModuleFiles) -> None:
    without = ModuleFiles(
        {p: d for p, d in cell.items() if p not in ("plugins.json", "Resources.json")}
    )
    assert [(f, p) for f, p, _ in issues_of(without)] == [("plugin.json or plugins.json", "")]
    no_resources = ModuleFiles({p: d for p, d in cell.items() if p != "Resources.json"})
    assert [(f, p) for f, p, _ in issues_of(no_resources)] == [("resources.json", "")]


# -- licenses, ranges, security -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("license", "expression"),
    [
        ("Apache-2.0", "Apache-2.0"),
        (["BSD-2-Clause", "BSD-3-Clause"], "BSD-2-Clause OR BSD-3-Clause"),
        ("(BSD-2-Clause or BSD-3-Clause)", "BSD-2-Clause OR BSD-3-Clause"),
        (
            "(BSD-2-Clause and BSD-3-Clause and BSD-4-Clause)",
            "BSD-2-Clause AND BSD-3-Clause AND BSD-4-Clause",
        ),
        ("(MIT or Apache-2.0) and GPL-2.0-or-later", "(MIT OR Apache-2.0) AND GPL-2.0-or-later"),
        # Deprecated identifiers become their successors on the SPDX list.
        (["MIT", "GPL-2.0+ and LGPL-2.1-only"], "MIT OR (GPL-2.0-or-later AND LGPL-2.1-only)"),
        ("GPL-2.0-only WITH Classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"),
        ("LicenseRef-ApiHawk-Commercial", "LicenseRef-ApiHawk-Commercial"),
    ],
)
def test_licenses_become_one_spdx_expression(license: Any, expression: str) -> None:
    assert normalize_license(license) == expression


@pytest.mark.parametrize(
    "license",
    ["", "MIT or", "(MIT or Apache-2.0", "MIT Apache-2.0", "MIT/Apache-2.0", "or MIT", [], 3, [1]],
)
def test_malformed_licenses_are_refused(license: Any) -> None:
    with pytest.raises(ValueError, match="license"):
        normalize_license(license)


def test_a_bad_license_expression_is_reported_at_appcell_json(cell: ModuleFiles) -> None:
    bad = edited(cell, "AppCell.json", lambda d: d.update(license="(BSD-2-Clause or BSD 3)"))
    ((file, pointer, detail),) = issues_of(bad)
    assert (file, pointer) == ("AppCell.json", "/license")
    assert "(BSD-2-Clause or BSD 3)" in detail
    assert "'BSD 3'" in detail
    assert "not on the SPDX license list" in detail


@pytest.mark.parametrize(
    ("requirement", "npm"),
    [
        (">=1", ">=1"),
        ("^1.0", "^1.0"),
        (">= 3.0", ">=3.0"),
        (">=1, <3", ">=1 <3"),
        ("!=1.2", "<1.2.0 || >1.2.0"),
        (">=1 !=1.5.0", ">=1 <1.5.0 || >=1 >1.5.0"),
        ("^1.0 | ^2.0", "^1.0 || ^2.0"),
    ],
)
def test_appcell_requirements_become_npm_ranges(requirement: str, npm: str) -> None:
    assert appcell_range(requirement) == npm


@pytest.mark.parametrize("requirement", ["newest", "!=latest", ">=one"])
def test_unreadable_requirements_are_refused(requirement: str) -> None:
    with pytest.raises(InvalidVersion):
        appcell_range(requirement)


@pytest.mark.parametrize("value", ["protected", "public", "rbac::custom", "rbac::domains.transfer"])
def test_documented_security_levels_are_accepted(value: str) -> None:
    assert check_security(value) == value


@pytest.mark.parametrize("value", ["private", "Public", "rbac::", "rbac:custom", "rbac::a b", 1])
def test_other_security_levels_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="not a security level"):
        check_security(value)


def test_a_bad_security_value_is_reported_where_it_is_written(cell: ModuleFiles) -> None:
    def make_private(document: Any) -> None:
        document["plugin"]["NewResellerClub"]["actions"]["transfer"][0]["security"] = "private"

    ((file, pointer, detail),) = issues_of(edited(cell, "plugins.json", make_private))
    assert (file, pointer) == ("plugins.json", f"{PLUGIN}/transfer/0/security")
    assert "'private'" in detail
    assert "rbac::<permission>" in detail


# -- versions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "problem"), [("2.3", "not a SemVer"), (None, "is missing")])
def test_the_cell_version_must_be_semver(cell: ModuleFiles, version: Any, problem: str) -> None:
    def set_version(document: Any) -> None:
        if version is None:
            del document["version"]
        else:
            document["version"] = version

    ((file, pointer, detail),) = issues_of(edited(cell, "AppCell.json", set_version))
    assert (file, pointer) == ("AppCell.json", "/version")
    assert problem in detail


# -- schema references ---------------------------------------------------------------------------


def test_an_unresolvable_payload_url_is_an_unresolved_reference(cell: ModuleFiles) -> None:
    missing = f"{R}/domain/register.v2.payload.json"

    def point_elsewhere(document: Any) -> None:
        document["plugin"]["NewResellerClub"]["actions"]["create"][0]["$payload"] = missing

    with pytest.raises(UnresolvedReference) as raised:
        parse(edited(cell, "plugins.json", point_elsewhere))
    (issue,) = raised.value.issues
    assert (issue.file, issue.pointer) == ("plugins.json", f"{PLUGIN}/create/0/$payload")
    assert missing in issue.detail
    assert "schema/domain/register.v2.payload.json" in issue.detail


def test_a_bundled_schema_that_does_not_compile_is_an_unresolved_reference(
    cell: ModuleFiles,
) -> None:
    # Declaring $schema makes the plugin's payload file a JSON Schema (without it, a template).
    broken = ModuleFiles(
        {
            **cell,
            "schema/domain/renew.payload.json": b'{"$schema": "http://json-schema.org/draft-07/'
            b'schema#", "type": 12}',
        }
    )
    with pytest.raises(UnresolvedReference) as raised:
        parse(broken)
    (issue,) = raised.value.issues
    assert (issue.file, issue.pointer) == ("plugins.json", f"{PLUGIN}/renew/0/$payload")
    assert "schema/domain/renew.payload.json, which is not a valid JSON Schema" in issue.detail


def test_a_broken_schema_reached_only_by_ref_is_reported_at_that_file(cell: ModuleFiles) -> None:
    broken = ModuleFiles({**cell, "schema/common/nameservers.schema.json": b'{"type": 12}'})
    with pytest.raises(UnresolvedReference) as raised:
        parse(broken)
    files = {issue.file for issue in raised.value.issues}
    assert "schema/common/nameservers.schema.json" in files


def test_an_invalid_inline_payload_is_reported_at_its_pointer(cell: ModuleFiles) -> None:
    def break_inline(document: Any) -> None:
        document["plugin"]["NewResellerClub"]["actions"]["update"][0]["payload"]["type"] = "objekt"

    with pytest.raises(UnresolvedReference) as raised:
        parse(edited(cell, "plugins.json", break_inline))
    ((issue),) = raised.value.issues
    assert (issue.file, issue.pointer) == ("plugins.json", f"{PLUGIN}/update/0/payload")


def test_format_and_reference_problems_are_reported_together(cell: ModuleFiles) -> None:
    def two_problems(document: Any) -> None:
        actions = document["plugin"]["NewResellerClub"]["actions"]
        actions["transfer"][0]["security"] = "everyone"
        actions["renew"][0]["$payload"] = f"{R}/nowhere.json"

    pointers = [p for _, p, _ in issues_of(edited(cell, "plugins.json", two_problems))]
    assert pointers == [f"{PLUGIN}/transfer/0/security", f"{PLUGIN}/renew/0/$payload"]


def test_payload_and_dollar_payload_together_are_ambiguous(cell: ModuleFiles) -> None:
    def both(document: Any) -> None:
        document["plugin"]["NewResellerClub"]["actions"]["create"][0]["payload"] = {
            "type": "object"
        }

    ((_, pointer, detail),) = issues_of(edited(cell, "plugins.json", both))
    assert pointer == f"{PLUGIN}/create/0/payload"
    assert "keep one" in detail


def test_a_postpayload_without_a_type_is_refused(cell: ModuleFiles) -> None:
    def untyped(document: Any) -> None:
        del document["plugin"]["NewResellerClub"]["actions"]["getEppCode"][0]["postpayload"]["type"]

    ((_, pointer, detail),) = issues_of(edited(cell, "plugins.json", untyped))
    assert pointer == f"{PLUGIN}/getEppCode/0/postpayload"
    assert "'type'" in detail


def test_the_documents_inline_payload_form_with_sibling_keywords_is_read(
    cell: ModuleFiles,
) -> None:
    def flatten(document: Any) -> None:
        ns = document["resources"]["NS"]
        del ns["$payload"]
        ns.update(
            payload="",
            definitions=[],
            type="object",
            required=["domain"],
            properties={"domain": {"type": "string"}},
        )
        ns["$schema"] = "http://json-schema.org/draft-07/schema#"

    manifest = parse(edited(cell, "Resources.json", flatten))
    assert manifest.cell is not None
    ns = next(r for r in manifest.cell.resources if r.extra["name"] == "NS")
    assert ns.payload == CellSchemaRef(
        inline={
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {},
            "type": "object",
            "required": ["domain"],
            "properties": {"domain": {"type": "string"}},
        }
    )
    assert ns.extra == {"name": "NS"}


# -- resources and plugin consistency ------------------------------------------------------------


def test_an_action_on_an_undescribed_resource_is_refused(cell: ModuleFiles) -> None:
    def rename(document: Any) -> None:
        document["plugin"]["NewResellerClub"]["actions"]["fetchAll.DNS"][0]["resource"] = "Zone"

    ((_, pointer, detail),) = issues_of(edited(cell, "plugins.json", rename))
    assert pointer == f"{PLUGIN}/fetchAll.DNS/0/resource"
    assert "'Zone' is not a resource in resources.json" in detail


def test_an_action_only_the_plugin_file_lists_is_accepted(cell: ModuleFiles) -> None:
    def drop_renew(document: Any) -> None:
        del document["resources"]["Domain"]["actions"]["renew"]

    renew = action(parse(edited(cell, "Resources.json", drop_renew)), "renew")
    assert (renew.resource, renew.action, renew.extra["listed_in_resources"]) == (
        "Domain",
        "renew",
        False,
    )
    assert "listed_in_resources" not in action(parse(cell), "renew").extra


def test_an_action_on_a_resource_resources_json_lacks_is_refused(cell: ModuleFiles) -> None:
    def drop_cname(document: Any) -> None:
        del document["resources"]["DNS"]

    ((file, pointer, detail),) = issues_of(edited(cell, "Resources.json", drop_cname))
    assert (file, pointer) == ("plugins.json", f"{PLUGIN}/fetchAll.DNS/0/resource")
    assert "'DNS' is not a resource in resources.json" in detail


def test_unknown_rest_verbs_and_missing_identifiers_are_refused(cell: ModuleFiles) -> None:
    def damage(document: Any) -> None:
        document["resources"]["Cname"]["rest"].append("purge")
        del document["resources"]["NS"]["identifier"]

    found = [(f, p) for f, p, _ in issues_of(edited(cell, "Resources.json", damage))]
    assert found == [
        ("Resources.json", "/resources/NS/identifier"),
        ("Resources.json", "/resources/Cname/rest/4"),
    ]


def test_support_channels_and_cell_type_are_checked(cell: ModuleFiles) -> None:
    def damage(document: Any) -> None:
        document["type"] = "widget"
        document["support"] = {"email": "not-an-address", "fax": "+1 555", "irc": "#apihawk"}

    found = [(f, p) for f, p, _ in issues_of(edited(cell, "AppCell.json", damage))]
    assert found == [
        ("AppCell.json", "/type"),
        ("AppCell.json", "/support/email"),
        ("AppCell.json", "/support/fax"),
        ("AppCell.json", "/support/irc"),
    ]


def test_duplicate_option_keys_in_settings_are_refused(cell: ModuleFiles) -> None:
    def duplicate(document: Any) -> None:
        document["options"].append(dict(document["options"][1]))

    ((file, pointer, detail),) = issues_of(edited(cell, "settings.json", duplicate))
    assert (file, pointer) == ("settings.json", "/options/9/key")
    assert "'ns1' is used twice" in detail


def test_a_file_that_is_not_json_is_reported_with_the_other_problems(cell: ModuleFiles) -> None:
    broken = ModuleFiles({**cell, "Ui.json": b"{backendModules: []}"})
    ((file, _, detail),) = issues_of(broken)
    assert file == "Ui.json"
    assert "not valid JSON" in detail
