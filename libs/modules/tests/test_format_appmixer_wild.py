"""Appmixer modules shaped like the ones people publish (issue 19, cases 1-8).

Each case has a small look-alike fixture under ``fixtures/appmixer/`` (written from what public
connectors look like, not copied from them), a conformance test asserting the canonical manifest
it maps to, and a twin with a genuine defect that is refused naming the file and JSON pointer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modyard.modules.formats.appmixer import APPMIXER_ENGINE_VERSION, AppmixerAdapter
from modyard.modules.formats.base import Issue, ManifestError, ModuleFiles
from modyard.modules.manifest import ChangelogEntry, Component, ComponentRole, Manifest, ModuleFile

FIXTURES = Path(__file__).parent / "fixtures" / "appmixer"
ADAPTER = AppmixerAdapter()


def fixture(name: str) -> ModuleFiles:
    root = FIXTURES / name
    return ModuleFiles(
        {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
    )


def edited_json(
    files: ModuleFiles, path: str, edit: Callable[[dict[str, Any]], None]
) -> ModuleFiles:
    document = json.loads(files[path])
    edit(document)
    return ModuleFiles({**files, path: json.dumps(document).encode()})


def issues_of(files: ModuleFiles) -> list[Issue]:
    with pytest.raises(ManifestError) as caught:
        ADAPTER.parse(files)
    return caught.value.issues


def by_name(manifest: Manifest, name: str) -> Component:
    return next(c for c in manifest.components if c.name == name)


# --- 1. three-segment bundle names ----------------------------------------------------------------

MAIL = "globex/suite/mail"


def test_three_segment_bundle_publishes_under_its_full_name() -> None:
    manifest = ADAPTER.parse(fixture("case1-three-segments"))

    assert (manifest.name, manifest.version) == ("globex.suite.mail", "1.3.0")
    assert (manifest.label, manifest.description) == (
        "Globex Mail",
        "Send and watch Globex Suite mail.",
    )
    assert [(c.name, c.role) for c in manifest.components] == [
        ("globex.suite.mail.NewMail", ComponentRole.trigger),
        ("globex.suite.mail.SendMail", ComponentRole.action),
    ]
    send = by_name(manifest, "globex.suite.mail.SendMail")
    assert send.in_ports[0].json_schema == {
        "type": "object",
        "properties": {
            "to": {"type": "string", "format": "email"},
            "subject": {"type": "string"},
        },
        "required": ["to"],
    }
    assert send.auth == {"service": "globex:suite:mail", "scope": ["mail.send"]}
    assert send.executor.entrypoint == f"{MAIL}/SendMail/SendMail.js"
    assert manifest.extra["auth"] == [
        {
            "path": f"{MAIL}/auth.js",
            "service": "globex:suite:mail",
            "type": "oauth2",
            "components": ["globex.suite.mail.NewMail", "globex.suite.mail.SendMail"],
        }
    ]


def test_sibling_modules_of_one_service_get_their_own_names() -> None:
    mail = fixture("case1-three-segments")
    calendar = ModuleFiles(
        {
            path.replace("/mail/", "/calendar/"): data.replace(b"suite.mail", b"suite.calendar")
            .replace(b"suite:mail", b"suite:calendar")
            .replace(b"Globex Mail", b"Globex Calendar")
            for path, data in mail.items()
        }
    )

    names = {ADAPTER.parse(mail).name, ADAPTER.parse(calendar).name}

    assert names == {"globex.suite.mail", "globex.suite.calendar"}


def test_three_segment_bundle_refuses_a_component_of_another_module() -> None:
    path = f"{MAIL}/SendMail/component.json"
    files = edited_json(
        fixture("case1-three-segments"),
        path,
        lambda doc: doc.update(name="globex.suite.calendar.SendMail"),
    )

    assert issues_of(files) == [
        Issue(
            path,
            "/name",
            "'globex.suite.calendar.SendMail' belongs to globex.suite.calendar, but this module "
            "is globex.suite.mail; name it globex.suite.mail.SendMail",
        )
    ]


def test_module_json_must_name_the_same_module_as_a_three_segment_bundle() -> None:
    path = f"{MAIL}/module.json"
    files = edited_json(
        fixture("case1-three-segments"), path, lambda doc: doc.update(name="globex.suite.chat")
    )

    assert issues_of(files) == [
        Issue(
            path,
            "/name",
            f"is 'globex.suite.chat', but {MAIL}/bundle.json names the module "
            "globex.suite.mail; make them agree",
        )
    ]


# --- 2. archive rooted at the bundle's own folder -------------------------------------------------


def test_archive_rooted_at_the_bundle_folder_is_accepted() -> None:
    manifest = ADAPTER.parse(fixture("case2-bundle-rooted"))

    assert (manifest.name, manifest.version, manifest.label) == (
        "globex.drive.files",
        "0.4.1",
        "Globex Drive Files",
    )
    (upload,) = manifest.components
    assert upload.name == "globex.drive.files.UploadFile"
    assert upload.role is ComponentRole.action
    assert upload.executor.entrypoint == "UploadFile/UploadFile.js"
    assert upload.in_ports[0].json_schema == {
        "type": "object",
        "properties": {"fileId": {"type": "string"}},
    }


def test_the_same_module_in_the_vendor_tree_maps_the_same() -> None:
    rooted = fixture("case2-bundle-rooted")
    tree = ModuleFiles({f"src/globex/drive/files/{p}": d for p, d in rooted.items()})

    manifest = ADAPTER.parse(tree)

    assert manifest.name == "globex.drive.files"
    assert manifest.components[0].executor.entrypoint == (
        "src/globex/drive/files/UploadFile/UploadFile.js"
    )


def test_bundle_rooted_component_in_a_stray_folder_is_refused() -> None:
    rooted = fixture("case2-bundle-rooted")
    files = ModuleFiles(
        {p.replace("UploadFile/", "extra/UploadFile/"): d for p, d in rooted.items()}
    )

    (issue,) = issues_of(files)
    assert (issue.file, issue.pointer) == ("extra/UploadFile/component.json", "/name")
    assert issue.detail.startswith(
        "'globex.drive.files.UploadFile' must sit at UploadFile/component.json"
    )


# --- 3. changelog as a list -----------------------------------------------------------------------


def test_changelog_list_describes_the_current_version() -> None:
    manifest = ADAPTER.parse(fixture("case3-changelog-list"))

    assert (manifest.name, manifest.version) == ("hooli.notes", "2.0.0")
    assert manifest.changelog == [
        ChangelogEntry(
            version="2.0.0",
            changes=["Breaking change: notes are addressed by id, not by title.", "Add ListNotes."],
            breaking=True,
        )
    ]
    assert [c.name for c in manifest.components] == ["hooli.notes.notes.ListNotes"]


def test_changelog_list_items_must_be_text() -> None:
    files = edited_json(
        fixture("case3-changelog-list"),
        "bundle.json",
        lambda doc: doc.update(changelog=["Add ListNotes.", {"note": "?"}]),
    )

    assert issues_of(files) == [
        Issue(
            "bundle.json",
            "/changelog/1",
            "is {'note': '?'}; write each change as a string, or the changes of a version as "
            '{"1.0.2": ["..."]}',
        )
    ]


def test_a_changelog_list_may_mix_notes_and_version_keyed_entries() -> None:
    # How some real bundles write it: the first release's note, then objects keyed by version.
    files = edited_json(
        fixture("case3-changelog-list"),
        "bundle.json",
        lambda doc: doc.update(
            changelog=[
                "Initial version",
                {"1.0.2": ["Fix paging."]},
                {"2.0.0": ["Notes are addressed by id."], "1.1.0": ["Add ListNotes."]},
            ]
        ),
    )

    manifest = ADAPTER.parse(files)

    assert [(e.version, e.changes, e.breaking) for e in manifest.changelog] == [
        ("1.0.2", ["Fix paging."], False),
        ("1.1.0", ["Add ListNotes."], False),
        ("2.0.0", ["Notes are addressed by id."], True),
    ]


def test_a_version_keyed_entry_in_a_changelog_list_needs_a_valid_version() -> None:
    files = edited_json(
        fixture("case3-changelog-list"),
        "bundle.json",
        lambda doc: doc.update(changelog=["Initial version", {"1.0.2": 7}]),
    )

    assert [(i.file, i.pointer) for i in issues_of(files)] == [
        ("bundle.json", "/changelog/1/1.0.2")
    ]


# --- 4. components without in ports are triggers --------------------------------------------------


def test_public_component_without_in_ports_is_a_trigger() -> None:
    manifest = ADAPTER.parse(fixture("case4-no-inports"))
    prefix = "umbrella.flowtools.controls."

    assert [(c.name.removeprefix(prefix), c.role) for c in manifest.components] == [
        ("Catch", ComponentRole.trigger),
        ("ListTimezones", ComponentRole.action),
        ("OnBoot", ComponentRole.trigger),
        ("Pulse", ComponentRole.trigger),
        ("Relay", ComponentRole.action),
    ]
    boot = by_name(manifest, prefix + "OnBoot")
    assert (boot.webhook, boot.polling_interval_seconds, boot.in_ports) == (False, None, [])
    assert boot.out_ports[0].json_schema == {
        "properties": {"started": {"type": "string", "format": "date-time"}},
        "required": ["started"],
    }
    assert by_name(manifest, prefix + "Pulse").polling_interval_seconds == 60
    assert by_name(manifest, prefix + "Catch").webhook is True


def test_in_ports_that_are_not_a_list_are_refused() -> None:
    path = "controls/OnBoot/component.json"
    files = edited_json(
        fixture("case4-no-inports"), path, lambda doc: doc.update(inPorts={"name": "in"})
    )

    assert issues_of(files) == [
        Issue(path, "/inPorts", 'must be a list of ports (names or {"name": ...} objects)')
    ]


# --- 5. module-level auth.js ----------------------------------------------------------------------

CRM = "initech/crm"


def test_module_level_auth_serves_vendor_service_module() -> None:
    manifest = ADAPTER.parse(fixture("case5-module-auth"))

    assert manifest.name == "initech.crm"
    assert manifest.extra["auth"] == [
        {
            "path": f"{CRM}/auth.js",
            "service": "initech:crm",
            "type": "apiKey",
            "components": ["initech.crm.deals.GetDeal"],
        },
        {
            "path": f"{CRM}/leads/auth.js",
            "service": "initech:crm:leads",
            "type": "oauth2",
            "components": ["initech.crm.leads.GetLead"],
        },
    ]
    assert [f for f in manifest.files if f.role == "auth"] == [
        ModuleFile(
            role="auth", path=f"{CRM}/auth.js", name="initech:crm", extra={"level": "connector"}
        ),
        ModuleFile(
            role="auth",
            path=f"{CRM}/leads/auth.js",
            name="initech:crm:leads",
            extra={"level": "module"},
        ),
    ]
    assert by_name(manifest, "initech.crm.leads.GetLead").auth == {
        "service": "initech:crm:leads",
        "scope": ["leads"],
    }


def test_root_auth_of_a_three_segment_bundle_serves_the_id_its_components_use() -> None:
    # An older layout: the module's auth.js is the service's, and its components say so.
    files = fixture("case1-three-segments")
    for name in ("SendMail", "NewMail"):
        files = edited_json(
            files,
            f"{MAIL}/{name}/component.json",
            lambda doc: doc["auth"].update(service="globex:suite"),
        )

    manifest = ADAPTER.parse(files)

    assert [(a["service"], a["components"]) for a in manifest.extra["auth"]] == [
        ("globex:suite", ["globex.suite.mail.NewMail", "globex.suite.mail.SendMail"])
    ]


def test_component_auth_must_name_a_service() -> None:
    path = f"{CRM}/leads/GetLead/component.json"
    files = edited_json(
        fixture("case5-module-auth"), path, lambda doc: doc.update(auth={"scope": ["leads"]})
    )

    assert issues_of(files) == [
        Issue(
            path,
            "/auth/service",
            "is missing; name the auth service the component uses, e.g. "
            '"initech:crm" or "initech:crm:leads"',
        )
    ]


# --- 6. schemas derived from out-port options -----------------------------------------------------

ORDER = "orders/GetOrder/component.json"


def test_options_become_a_schema_with_array_items_and_leave_the_source_alone() -> None:
    files = fixture("case6-options")
    source = json.loads(files[ORDER])["outPorts"][0]["options"]

    manifest = ADAPTER.parse(files)

    (out,) = by_name(manifest, "vandelay.imports.orders.GetOrder").out_ports
    assert out.json_schema == {
        "type": "object",
        "properties": {
            "buyer": {
                "type": "object",
                "title": "Buyer",
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string", "title": "Buyer name"},
                },
            },
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "title": "First line SKU"},
                        "quantity": {"type": "integer", "title": "First line quantity"},
                    },
                },
            },
        },
    }
    assert out.options == source
    assert out.extra == {"schema_from_options": True}


def test_deriving_the_schema_does_not_write_into_the_options() -> None:
    files = fixture("case6-options")
    options = json.loads(files[ORDER])["outPorts"][0]["options"]
    before = copy.deepcopy(options)
    from modyard.modules.formats.appmixer import _schema_from_options

    _schema_from_options(options)

    assert options == before


def test_option_value_that_is_not_a_path_is_refused() -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["outPorts"][0]["options"][2]["value"] = "lines[first].sku"

    (issue,) = issues_of(edited_json(fixture("case6-options"), ORDER, edit))
    assert (issue.file, issue.pointer) == (ORDER, "/outPorts/0/options/2/value")
    assert issue.detail == (
        "is 'lines[first].sku'; write a path into the message: property names joined by dots, "
        'array items as [0] (e.g. "lines[0].sku")'
    )


# --- 7. the Appmixer engine range -----------------------------------------------------------------


def test_engine_is_the_appmixer_engine_range_not_the_platform() -> None:
    manifest = ADAPTER.parse(fixture("case7-engine"))

    assert manifest.name == "soylent.kitchen"
    assert manifest.requires.platform is None
    assert manifest.requires.extra == {
        "appmixer_engine": ">=6.0",
        "appmixer_engine_provided": APPMIXER_ENGINE_VERSION,
    }
    assert [c.name for c in manifest.components] == ["soylent.kitchen.recipes.GetRecipe"]


def test_engine_range_modyard_cannot_satisfy_is_refused() -> None:
    files = edited_json(fixture("case7-engine"), "bundle.json", lambda d: d.update(engine=">=7.0"))

    assert issues_of(files) == [
        Issue(
            "bundle.json",
            "/engine",
            f"is '>=7.0', but modyard provides the Appmixer engine {APPMIXER_ENGINE_VERSION}; "
            f"publish a version of the module whose engine range {APPMIXER_ENGINE_VERSION} "
            'satisfies (e.g. ">=6.0")',
        )
    ]


# --- 8. plugin.js, routes.js, jobs.js and npm files -----------------------------------------------


def test_code_and_npm_files_at_every_level_are_described() -> None:
    manifest = ADAPTER.parse(fixture("case8-code-files"))
    component = "massive.dynamic.labs.RunExperiment"

    assert manifest.files == [
        ModuleFile(
            role="jobs", path="jobs.js", name="massive.dynamic", extra={"level": "connector"}
        ),
        ModuleFile(
            role="npm-package",
            path="labs/RunExperiment/package.json",
            name=component,
            extra={"level": "component"},
        ),
        ModuleFile(
            role="npm-package",
            path="labs/package.json",
            name="massive.dynamic.labs",
            extra={"level": "module"},
        ),
        ModuleFile(
            role="plugin",
            path="labs/plugin.js",
            name="massive.dynamic.labs",
            extra={"level": "module"},
        ),
        ModuleFile(
            role="npm-lock",
            path="package-lock.json",
            name="massive.dynamic",
            extra={"level": "connector"},
        ),
        ModuleFile(
            role="npm-package",
            path="package.json",
            name="massive.dynamic",
            extra={"level": "connector"},
        ),
        ModuleFile(
            role="plugin", path="plugin.js", name="massive.dynamic", extra={"level": "connector"}
        ),
        ModuleFile(
            role="routes", path="routes.js", name="massive.dynamic", extra={"level": "connector"}
        ),
    ]
    assert manifest.extra["npm"] == {
        "labs/RunExperiment/package.json": {"mathjs": "13.0.0"},
        "labs/package.json": {"uuid": "11.0.5"},
        "package.json": {"axios": "1.7.2"},
    }
    assert by_name(manifest, component).executor.entrypoint == "labs/RunExperiment/RunExperiment.js"


def test_unreadable_package_json_is_refused() -> None:
    files = ModuleFiles({**fixture("case8-code-files"), "labs/package.json": b'{"name": '})

    (issue,) = issues_of(files)
    assert (issue.file, issue.pointer) == ("labs/package.json", "")
    assert issue.detail.startswith("is not valid JSON")


def test_package_json_dependencies_must_be_an_object() -> None:
    files = edited_json(
        fixture("case8-code-files"), "package.json", lambda d: d.update(dependencies=["axios"])
    )

    assert issues_of(files) == [
        Issue(
            "package.json",
            "/dependencies",
            'must be an object of npm package names and ranges, e.g. {"axios": "^1.7.0"}',
        )
    ]


@pytest.mark.parametrize(
    ("value", "steps"),
    [
        ("id", ["id"]),
        ("requester.email", ["requester", "email"]),
        ("lines[0].sku", ["lines", None, "sku"]),
        ("lines.[0].sku", ["lines", None, "sku"]),
        ("tags[]", ["tags", None]),
        ("grid[0][1]", ["grid", None, None]),
        ("a..b", None),
        ("[0].sku", None),
        ("lines[first]", None),
        ("lines[0", None),
        ("trailing.", None),
    ],
)
def test_option_value_paths(value: str, steps: list[str | None] | None) -> None:
    from modyard.modules.formats.appmixer import _path_steps

    assert _path_steps(value) == steps
