"""Prisme.ai apps shaped like exported workspaces and templates (issue 19, Prisme.ai 1-4).

The fixture ``fixtures/prismeai/helpdesk`` is a look-alike written from what exported workspaces
look like (no version, an import whose config is the template ``'{{config}}'``, a page whose
blocks name events, a config field with ``ui:widget: password``); each case is asserted on the
canonical manifest, and a twin with a genuine defect is refused naming the file and JSON pointer.
"""

from __future__ import annotations

from typing import Any

import pytest

from modyard.modules.formats.base import ModuleFiles
from modyard.modules.manifest import AppImport, Dependency

from .wild_fixtures import edited_yaml, fixture, parsed, published_text, refused


@pytest.fixture
def helpdesk() -> ModuleFiles:
    return fixture("prismeai/helpdesk")


# --- 1. the version comes from the publish request -------------------------------------------


def test_an_exported_app_without_a_version_takes_the_requests(helpdesk: ModuleFiles) -> None:
    manifest = parsed(helpdesk, version="3.1.0")

    assert (manifest.name, manifest.version, manifest.format, manifest.kind) == (
        "helpdesk",
        "3.1.0",
        "prismeai",
        "app",
    )
    assert manifest.label == "Helpdesk"


def test_an_app_without_a_version_and_none_requested_is_refused_saying_how(
    helpdesk: ModuleFiles,
) -> None:
    (issue,) = refused(helpdesk, version=None)

    assert (issue.file, issue.pointer, issue.slug) == ("index.yml", "/version", "version-required")
    assert "exported Prisme.ai workspaces and apps carry no version" in issue.detail
    assert "modyard publish --version v1.2.0" in issue.detail


def test_a_publish_number_that_disagrees_with_the_request_is_refused(helpdesk: ModuleFiles) -> None:
    numbered = edited_yaml(helpdesk, "index.yml", lambda doc: doc.update(version=4))

    assert parsed(numbered, version="4.0.0").version == "4.0.0"
    (issue,) = refused(numbered, version="4.1.0")
    assert (issue.file, issue.pointer) == ("index.yml", "/version")


# --- 2. an import's config may be any value -----------------------------------------------------


def test_an_import_config_may_be_a_template_string(helpdesk: ModuleFiles) -> None:
    manifest = parsed(helpdesk)

    assert manifest.imports == [
        AppImport(
            slug="knowledgeBase",
            app="knowledge-base",
            version=None,
            config={},
            config_expression="{{config}}",
        )
    ]
    assert manifest.dependencies == [Dependency(name="knowledge-base", range="*")]


def test_an_import_config_mapping_stays_the_config(helpdesk: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["config"] = {"index": "{{config.greeting}}-kb"}

    (item,) = parsed(edited_yaml(helpdesk, "imports/knowledgeBase.yml", edit)).imports
    assert (item.config, item.config_expression) == ({"index": "{{config.greeting}}-kb"}, None)


def test_an_import_without_the_app_it_imports_is_refused(helpdesk: ModuleFiles) -> None:
    (issue,) = refused(
        edited_yaml(helpdesk, "imports/knowledgeBase.yml", lambda doc: doc.pop("appSlug"))
    )

    assert (issue.file, issue.pointer) == ("imports/knowledgeBase.yml", "/appSlug")


# --- 3. page events -----------------------------------------------------------------------------


def test_page_events_appear_in_the_manifest(helpdesk: ModuleFiles) -> None:
    events = {event.name: event.extra for event in parsed(helpdesk).events}

    assert set(events) == {"ticketAnswered", "supportOpened", "ticketSubmitted", "feedbackGiven"}
    assert events["ticketSubmitted"]["pages"] == [
        {
            "page": "index",
            "file": "pages/index.yml",
            "pointer": "/blocks/0/onSubmit",
            "on": "onSubmit",
            "emits": True,
        }
    ]
    assert events["ticketAnswered"] == {
        "emitted_by": ["answerTicket"],
        "pages": [
            {
                "page": "index",
                "file": "pages/index.yml",
                "pointer": "/blocks/1/updateOn",
                "on": "updateOn",
                "listens": True,
            }
        ],
    }
    assert events["supportOpened"]["pages"][0]["pointer"] == "/onInit"
    assert events["feedbackGiven"]["pages"][0]["pointer"] == "/blocks/2/blocks/0/onChange"


def test_a_page_event_that_names_nothing_is_refused(helpdesk: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["blocks"][0]["onSubmit"] = 42

    (issue,) = refused(edited_yaml(helpdesk, "pages/index.yml", edit))

    assert (issue.file, issue.pointer) == ("pages/index.yml", "/blocks/0/onSubmit")
    assert "onSubmit names an event" in issue.detail


# --- 4. ui:widget password is a secret ------------------------------------------------------------


def test_a_password_widget_marks_the_field_secret(helpdesk: ModuleFiles) -> None:
    manifest = parsed(helpdesk)
    api_key = next(f for f in manifest.config.fields if f.name == "apiKey")

    assert (api_key.type, api_key.secret, api_key.default) == ("password", True, None)
    assert manifest.config.json_schema["properties"]["apiKey"]["writeOnly"] is True
    assert "default" not in manifest.config.json_schema["properties"]["apiKey"]
    assert "dev-key-0042" not in published_text(manifest)
    assert manifest.extra["prismeai"]["config_value"] == {"greeting": "Hello"}


def test_a_password_widget_on_a_field_that_holds_no_text_is_refused(helpdesk: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["config"]["schema"]["apiKey"]["type"] = "object"

    (issue,) = refused(edited_yaml(helpdesk, "index.yml", edit))

    assert (issue.file, issue.pointer) == ("index.yml", "/config/schema/apiKey/type")
    assert "ui:widget password holds text" in issue.detail
