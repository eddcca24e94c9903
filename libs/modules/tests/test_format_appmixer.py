"""The Appmixer adapter maps a connector module (fixtures/appmixer-acme) into the canonical manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from modyard.modules.formats.appmixer import (
    APPMIXER_ENGINE_VERSION,
    DEFAULT_POLLING_INTERVAL_SECONDS,
    AppmixerAdapter,
)
from modyard.modules.formats.base import Issue, ManifestError, ModuleFiles
from modyard.modules.manifest import (
    ChangelogEntry,
    Component,
    ComponentRole,
    ExecutorType,
    Manifest,
    ModuleFile,
    ModuleFormat,
    ModuleKind,
)
from modyard.testing.archives import changed

Load = Callable[[str], ModuleFiles]
ADAPTER = AppmixerAdapter()


@pytest.fixture
def acme(module_fixture: Load) -> ModuleFiles:
    return module_fixture("appmixer-acme")


@pytest.fixture
def manifest(acme: ModuleFiles) -> Manifest:
    return ADAPTER.parse(acme)


def component(manifest: Manifest, name: str) -> Component:
    return next(c for c in manifest.components if c.name == f"appmixer.acme.tickets.{name}")


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


# --- module level ---------------------------------------------------------------------------------


def test_module_identity_comes_from_bundle_and_service_json(manifest: Manifest) -> None:
    assert manifest.name == "appmixer.acme"
    assert manifest.version == "2.1.0"
    assert manifest.format is ModuleFormat.appmixer
    assert manifest.kind is ModuleKind.connector
    assert manifest.label == "Acme Helpdesk"
    assert manifest.description == (
        "Acme Helpdesk keeps customer tickets, projects and SLAs in one place."
    )
    assert manifest.icon is not None
    assert manifest.icon.startswith("data:image/svg+xml;base64,")


def test_engine_range_is_the_appmixer_engine_not_the_platform(manifest: Manifest) -> None:
    assert manifest.requires.platform is None
    assert manifest.requires.extra == {
        "appmixer_engine": ">=5.2.0",
        "appmixer_engine_provided": APPMIXER_ENGINE_VERSION,
    }
    assert manifest.requires.storage == []
    assert manifest.dependencies == []


def test_changelog_is_sorted_and_flags_major_versions_and_breaking_notes(
    manifest: Manifest,
) -> None:
    assert manifest.changelog == [
        ChangelogEntry(version="1.0.0", changes=["Initial version."], breaking=False),
        ChangelogEntry(
            version="1.1.0",
            changes=["Add component ListProjects.", "NewTicket: filter new tickets by project."],
            breaking=False,
        ),
        ChangelogEntry(
            version="1.2.0",
            changes=[
                "BREAKING: NewTicket out port renamed from 'out' to 'ticket'; reconnect the "
                "components that follow it."
            ],
            breaking=True,
        ),
        ChangelogEntry(
            version="2.0.0",
            changes=[
                "Authentication switched from API key to OAuth 2; every account has to be "
                "connected again.",
                "CreateTicket: priority is now required.",
            ],
            breaking=True,
        ),
        ChangelogEntry(
            version="2.1.0", changes=["Add webhook trigger TicketUpdated."], breaking=False
        ),
    ]


def test_changelog_entry_written_as_object_can_flag_itself_breaking(acme: ModuleFiles) -> None:
    def edit(bundle: dict[str, Any]) -> None:
        bundle["changelog"] = {
            "2.2.0": {"breaking": True, "changes": ["Drop the legacy priority names."]},
            "2.1.0": ["Add webhook trigger TicketUpdated."],
        }

    manifest = ADAPTER.parse(edited_json(acme, "bundle.json", edit))

    assert [(e.version, e.breaking) for e in manifest.changelog] == [
        ("2.1.0", False),
        ("2.2.0", True),
    ]


def test_auth_quota_and_npm_files_are_listed_with_their_service_id(manifest: Manifest) -> None:
    connector = {"level": "connector"}
    assert manifest.files == [
        ModuleFile(role="auth", path="auth.js", name="appmixer:acme", extra=connector),
        ModuleFile(role="npm-package", path="package.json", name="appmixer.acme", extra=connector),
        ModuleFile(role="quota", path="quota.js", name="appmixer:acme", extra=connector),
    ]
    assert manifest.extra["auth"] == [
        {
            "path": "auth.js",
            "service": "appmixer:acme",
            "type": "oauth2",
            "components": [
                "appmixer.acme.tickets.CreateTicket",
                "appmixer.acme.tickets.ListProjects",
                "appmixer.acme.tickets.NewTicket",
                "appmixer.acme.tickets.TicketUpdated",
            ],
        }
    ]


def test_npm_dependencies_and_unmapped_service_keys_stay_in_extra(manifest: Manifest) -> None:
    assert manifest.extra["npm"] == {"package.json": {"axios": "^1.6.8"}}
    assert manifest.extra["service"] == {"category": "applications"}
    assert "bundle" not in manifest.extra


# --- components -----------------------------------------------------------------------------------


def test_every_component_json_becomes_a_component_with_its_full_name(manifest: Manifest) -> None:
    assert [(c.name, c.role) for c in manifest.components] == [
        ("appmixer.acme.tickets.CreateTicket", ComponentRole.action),
        ("appmixer.acme.tickets.ListProjects", ComponentRole.action),
        ("appmixer.acme.tickets.NewTicket", ComponentRole.trigger),
        ("appmixer.acme.tickets.TicketUpdated", ComponentRole.trigger),
    ]


def test_tick_component_is_a_polling_trigger(manifest: Manifest) -> None:
    new_ticket = component(manifest, "NewTicket")

    assert new_ticket.role is ComponentRole.trigger
    assert new_ticket.polling_interval_seconds == DEFAULT_POLLING_INTERVAL_SECONDS == 60
    assert new_ticket.webhook is False
    assert new_ticket.private is False
    assert new_ticket.label == "New Ticket"
    assert new_ticket.description == "Triggers when a new ticket is created in a project."
    assert new_ticket.icon is not None
    assert new_ticket.in_ports == []
    assert new_ticket.auth == {"service": "appmixer:acme", "scope": ["tickets:read"]}
    assert new_ticket.quota == {
        "manager": "appmixer:acme",
        "resources": "requests",
        "scope": {"userId": "{{userId}}"},
    }
    assert new_ticket.executor.type is ExecutorType.js
    assert new_ticket.executor.entrypoint == "tickets/NewTicket/NewTicket.js"
    assert new_ticket.extra == {"author": "Jane Doe <jane@acme.example>", "version": "2.0.0"}


def test_trigger_properties_keep_schema_and_inspector(manifest: Manifest) -> None:
    new_ticket = component(manifest, "NewTicket")

    assert new_ticket.properties_schema == {
        "type": "object",
        "properties": {
            "projectId": {"type": "string"},
            "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
        },
        "required": ["projectId"],
    }
    assert new_ticket.inspector is not None
    inputs = new_ticket.inspector["inputs"]
    assert list(inputs) == ["projectId", "priority"]
    assert inputs["projectId"]["source"]["url"] == (
        "/component/appmixer/acme/tickets/ListProjects?outPort=projects"
    )


def test_out_port_options_are_kept_and_describe_the_port_schema(manifest: Manifest) -> None:
    (ticket,) = component(manifest, "NewTicket").out_ports

    assert ticket.name == "ticket"
    assert [option["value"] for option in ticket.options] == [
        "id",
        "subject",
        "priority",
        "requester.email",
        "createdAt",
    ]
    assert ticket.json_schema == {
        "type": "object",
        "properties": {
            "id": {"type": "string", "title": "Ticket ID"},
            "subject": {"type": "string", "title": "Subject"},
            "priority": {"type": "string", "title": "Priority"},
            "requester": {
                "type": "object",
                "properties": {
                    "email": {"type": "string", "format": "email", "title": "Requester email"}
                },
            },
            "createdAt": {"type": "string", "format": "date-time", "title": "Created at"},
        },
    }
    assert ticket.extra == {"schema_from_options": True}


def test_action_in_port_keeps_schema_and_inspector(manifest: Manifest) -> None:
    create = component(manifest, "CreateTicket")

    assert create.role is ComponentRole.action
    assert create.polling_interval_seconds is None
    (in_port,) = create.in_ports
    assert in_port.name == "in"
    assert in_port.json_schema is not None
    assert in_port.json_schema["required"] == ["projectId", "subject", "priority"]
    assert in_port.json_schema["properties"]["requesterEmail"] == {
        "type": "string",
        "format": "email",
    }
    assert list(in_port.extra["inspector"]["inputs"]) == [
        "projectId",
        "subject",
        "body",
        "priority",
        "requesterEmail",
    ]
    assert [port.name for port in create.out_ports] == ["ticket"]
    assert create.properties_schema is None
    assert create.auth == {"service": "appmixer:acme", "scope": ["tickets:write"]}
    assert create.executor.entrypoint == "tickets/CreateTicket/CreateTicket.js"


def test_private_component_with_port_names_as_strings(manifest: Manifest) -> None:
    projects = component(manifest, "ListProjects")

    assert projects.private is True
    assert projects.role is ComponentRole.action
    assert [(p.name, p.json_schema) for p in projects.in_ports] == [("in", None)]
    (out,) = projects.out_ports
    assert out.json_schema == {
        "type": "object",
        "properties": {
            "projects": {"type": "array", "items": {"type": "object"}, "title": "Projects"}
        },
    }


def test_webhook_component_without_in_ports_is_a_webhook_trigger(manifest: Manifest) -> None:
    updated = component(manifest, "TicketUpdated")

    assert updated.role is ComponentRole.trigger
    assert updated.webhook is True
    assert updated.polling_interval_seconds is None
    assert [(p.name, p.json_schema) for p in updated.out_ports] == [("out", None)]
    assert updated.properties_schema == {
        "type": "object",
        "properties": {"projectId": {"type": "string"}},
        "required": ["projectId"],
    }


def test_explicit_trigger_flag_makes_a_trigger(acme: ModuleFiles) -> None:
    path = "tickets/CreateTicket/component.json"
    files = edited_json(acme, path, lambda doc: doc.update(trigger=True))

    assert component(ADAPTER.parse(files), "CreateTicket").role is ComponentRole.trigger


# --- layouts and detection ------------------------------------------------------------------------


def test_archive_rooted_above_the_vendor_folder_maps_the_same(acme: ModuleFiles) -> None:
    nested = ModuleFiles({f"src/appmixer/acme/{path}": data for path, data in acme.items()})

    manifest = ADAPTER.parse(nested)

    assert manifest.name == "appmixer.acme"
    assert component(manifest, "NewTicket").executor.entrypoint == (
        "src/appmixer/acme/tickets/NewTicket/NewTicket.js"
    )
    assert [f.path for f in manifest.files] == [
        "src/appmixer/acme/auth.js",
        "src/appmixer/acme/package.json",
        "src/appmixer/acme/quota.js",
    ]
    assert manifest.extra["auth"][0]["service"] == "appmixer:acme"


def test_component_json_inside_node_modules_is_ignored(acme: ModuleFiles) -> None:
    vendored = {"node_modules/some-lib/x/Y/component.json": b"{not json"}
    files = ModuleFiles({**acme, **vendored})

    assert len(ADAPTER.parse(files).components) == 4


def test_without_bundle_or_service_json_the_module_json_describes_the_module(
    acme: ModuleFiles,
) -> None:
    module = {
        "name": "appmixer.acme.tickets",
        "label": "Acme Tickets",
        "description": "Tickets of Acme Helpdesk.",
        "version": "2.1.0",
    }
    files = ModuleFiles(
        {
            **changed(acme, {"bundle.json": None, "service.json": None}),
            "tickets/module.json": json.dumps(module).encode(),
        }
    )

    manifest = ADAPTER.parse(files)

    assert (manifest.name, manifest.version) == ("appmixer.acme", "2.1.0")
    assert (manifest.label, manifest.description) == ("Acme Tickets", "Tickets of Acme Helpdesk.")
    assert manifest.changelog == []
    assert manifest.requires.platform is None
    assert manifest.extra["modules"] == {"tickets/module.json": module}


def test_without_any_version_the_publisher_is_told_to_add_bundle_json(acme: ModuleFiles) -> None:
    files = changed(acme, {"bundle.json": None, "service.json": b'{"name": "appmixer.acme"}'})

    assert issues_of(files) == [
        Issue("bundle.json", "", "is missing; add bundle.json with the module's name and version")
    ]


def test_detects_its_own_layouts(acme: ModuleFiles) -> None:
    assert ADAPTER.detect(acme)
    assert ADAPTER.detect(ModuleFiles({f"appmixer/acme/{p}": d for p, d in acme.items()}))
    assert ADAPTER.detect(changed(acme, {"bundle.json": None}))


def test_does_not_claim_a_slingr_package(module_fixture: Load) -> None:
    assert not ADAPTER.detect(module_fixture("slingr-sample-complex"))


def test_does_not_claim_files_without_a_component_or_without_a_descriptor(
    acme: ModuleFiles,
) -> None:
    descriptors_only = ModuleFiles({p: d for p, d in acme.items() if "/" not in p})
    components_only = changed(acme, {"bundle.json": None, "service.json": None})
    npm_package = ModuleFiles({"package.json": b'{"name": "x", "dependencies": {"a": "1"}}'})

    assert not ADAPTER.detect(descriptors_only)
    assert not ADAPTER.detect(components_only)
    assert not ADAPTER.detect(npm_package)


# --- validation -----------------------------------------------------------------------------------


def test_component_name_must_have_four_segments(acme: ModuleFiles) -> None:
    path = "tickets/CreateTicket/component.json"
    files = edited_json(acme, path, lambda doc: doc.update(name="acme.CreateTicket"))

    assert issues_of(files) == [
        Issue(
            path,
            "/name",
            "is 'acme.CreateTicket'; a component is named vendor.service.module.Component "
            "(e.g. appmixer.trello.list.NewCard)",
        )
    ]


def test_component_name_must_match_its_folders(acme: ModuleFiles) -> None:
    path = "tickets/CreateTicket/component.json"
    name = "appmixer.acme.issues.CreateTicket"
    files = edited_json(acme, path, lambda doc: doc.update(name=name))

    (issue,) = issues_of(files)
    assert (issue.file, issue.pointer) == (path, "/name")
    assert issue.detail.startswith(f"{name!r} must sit at issues/CreateTicket/component.json")


def test_component_must_belong_to_the_module(acme: ModuleFiles) -> None:
    path = "tickets/CreateTicket/component.json"
    name = "appmixer.globex.tickets.CreateTicket"
    files = edited_json(acme, path, lambda doc: doc.update(name=name))

    assert issues_of(files) == [
        Issue(
            path,
            "/name",
            f"{name!r} belongs to appmixer.globex, but this module is appmixer.acme; "
            "name it appmixer.acme.tickets.CreateTicket",
        )
    ]


def test_missing_code_file_is_an_issue_naming_the_expected_file(acme: ModuleFiles) -> None:
    files = changed(acme, {"tickets/NewTicket/NewTicket.js": None})

    assert issues_of(files) == [
        Issue(
            "tickets/NewTicket/component.json",
            "/name",
            "the component's code file tickets/NewTicket/NewTicket.js is missing; add it next "
            "to component.json (Appmixer runs <Component>.js)",
        )
    ]


def test_bundle_version_must_be_semver(acme: ModuleFiles) -> None:
    files = edited_json(acme, "bundle.json", lambda doc: doc.update(version="2.1"))

    (issue,) = issues_of(files)
    assert (issue.file, issue.pointer) == ("bundle.json", "/version")
    assert "is not a SemVer 2.0 version" in issue.detail


def test_engine_must_be_an_npm_range(acme: ModuleFiles) -> None:
    files = edited_json(acme, "bundle.json", lambda doc: doc.update(engine="newest please"))

    (issue,) = issues_of(files)
    assert (issue.file, issue.pointer) == ("bundle.json", "/engine")
    assert "is not an npm-style range" in issue.detail


def test_bundle_name_must_be_vendor_service_or_vendor_service_module(acme: ModuleFiles) -> None:
    files = edited_json(acme, "bundle.json", lambda doc: doc.update(name="acme"))

    issues = issues_of(files)
    assert issues[0] == Issue(
        "bundle.json",
        "/name",
        "is 'acme'; bundle.json names vendor.service or vendor.service.module "
        "(e.g. appmixer.trello or appmixer.google.gmail)",
    )


def test_descriptors_must_agree_on_the_module_name(acme: ModuleFiles) -> None:
    files = edited_json(acme, "service.json", lambda doc: doc.update(name="appmixer.acmedesk"))

    assert issues_of(files) == [
        Issue(
            "service.json",
            "/name",
            "is 'appmixer.acmedesk', but bundle.json names the module appmixer.acme; "
            "make them agree",
        )
    ]


def test_changelog_keys_must_be_versions(acme: ModuleFiles) -> None:
    def edit(bundle: dict[str, Any]) -> None:
        bundle["changelog"]["next/soon"] = ["Something."]

    (issue,) = issues_of(edited_json(acme, "bundle.json", edit))
    assert (issue.file, issue.pointer) == ("bundle.json", "/changelog/next~1soon")
    assert "is not a SemVer 2.0 version" in issue.detail


def test_invalid_port_schema_is_located_inside_the_schema(acme: ModuleFiles) -> None:
    path = "tickets/CreateTicket/component.json"

    def edit(doc: dict[str, Any]) -> None:
        doc["inPorts"][0]["schema"]["properties"]["subject"]["type"] = "text"

    (issue,) = issues_of(edited_json(acme, path, edit))
    assert issue.file == path
    assert issue.pointer == "/inPorts/0/schema/properties/subject/type"
    assert issue.detail.startswith("is not a valid JSON Schema: 'text' is not valid")


def test_malformed_component_json_names_the_file(acme: ModuleFiles) -> None:
    files = changed(acme, {"tickets/ListProjects/component.json": b'{"name": "appmixer.acme.'})

    (issue,) = issues_of(files)
    assert issue.file == "tickets/ListProjects/component.json"
    assert issue.pointer == ""
    assert issue.detail.startswith("is not valid JSON: Unterminated string")


def test_all_problems_are_reported_at_once(acme: ModuleFiles) -> None:
    files = changed(
        edited_json(acme, "bundle.json", lambda doc: doc.update(version="two")),
        {
            "tickets/CreateTicket/CreateTicket.js": None,
            "tickets/ListProjects/component.json": b"[]",
        },
    )

    assert sorted((issue.file, issue.pointer) for issue in issues_of(files)) == [
        ("bundle.json", "/version"),
        ("tickets/CreateTicket/component.json", "/name"),
        ("tickets/ListProjects/component.json", ""),
    ]


def test_flags_must_be_booleans(acme: ModuleFiles) -> None:
    path = "tickets/NewTicket/component.json"
    files = edited_json(acme, path, lambda doc: doc.update(tick="yes"))

    assert issues_of(files) == [Issue(path, "/tick", "is 'yes'; write true or false")]
