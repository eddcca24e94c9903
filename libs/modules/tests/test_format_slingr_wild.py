"""Slingr packages shaped like the official ``*-package`` repositories (issue 19, Slingr 1-4).

The fixture ``fixtures/slingr/chatter`` is a look-alike written from what public packages look
like (no version in package.json, namespaced scripts, a password field with a default, typed
step inputs); each case is asserted on the canonical manifest, and a twin with a genuine defect
is refused naming the file and JSON pointer.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from modyard.modules.formats.base import ModuleFiles
from modyard.modules.manifest import ModuleFile

from .wild_fixtures import edited_json, fixture, parsed, published_text, refused

STEP = "flowSteps/sendChatter/step.json"


@pytest.fixture
def chatter() -> ModuleFiles:
    return fixture("slingr/chatter")


def script(files: list[ModuleFile], path: str) -> ModuleFile:
    return next(item for item in files if item.path == path)


# --- 1. the version comes from the publish request -------------------------------------------


def test_a_package_without_a_version_takes_the_requests(chatter: ModuleFiles) -> None:
    manifest = parsed(chatter, version="1.2.0")

    assert (manifest.name, manifest.version, manifest.format, manifest.kind) == (
        "chatter",
        "1.2.0",
        "slingr",
        "package",
    )


def test_a_package_without_a_version_and_none_requested_is_refused_saying_how(
    chatter: ModuleFiles,
) -> None:
    (issue,) = refused(chatter, version=None)

    assert (issue.file, issue.pointer, issue.slug) == (
        "package.json",
        "/version",
        "version-required",
    )
    assert "Slingr packages carry no version" in issue.detail
    assert "modyard publish --version v1.2.0" in issue.detail
    assert "`version` form field or query parameter of POST /v1/modules" in issue.detail


def test_a_written_version_that_disagrees_with_the_request_is_refused(
    chatter: ModuleFiles,
) -> None:
    tagged = edited_json(chatter, "package.json", lambda doc: doc.update(version="v1.0.0"))

    assert parsed(tagged, version="1.0.0").version == "1.0.0"
    assert parsed(tagged, version=None).version == "1.0.0"
    (issue,) = refused(tagged, version="2.0.0")
    assert (issue.file, issue.pointer) == ("package.json", "/version")
    assert issue.detail.startswith("is 1.0.0 but the publish request says 2.0.0")


# --- 2. metadata namespaces -----------------------------------------------------------------


def test_scripts_keep_their_namespace_and_are_addressed_under_it(chatter: ModuleFiles) -> None:
    files = parsed(chatter).files

    assert script(files, "scripts/api.js").extra == {
        "namespace": "api",
        "functions": ["post", "get"],
        "address": "pkg.chatter.api",
    }
    assert script(files, "scripts/utils.js").extra["address"] == "pkg.chatter.utils"
    assert script(files, "listeners/webhooks.js").extra == {
        "namespace": "webhooks",
        "listeners": ["onChatterMessage"],
    }


def test_a_namespace_that_is_no_javascript_identifier_is_refused(chatter: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["metadata"][1]["namespace"] = "chat-utils"

    (issue,) = refused(edited_json(chatter, "package.json", edit))

    assert (issue.file, issue.pointer) == ("package.json", "/metadata/1/namespace")
    assert "is 'chat-utils'; a namespace is a JavaScript identifier" in issue.detail


# --- 3. a password's default is never published ---------------------------------------------


def test_a_password_default_is_published_nowhere(chatter: ModuleFiles) -> None:
    manifest = parsed(chatter)
    token = next(f for f in manifest.config.fields if f.name == "apiToken")

    assert (token.type, token.secret, token.default, token.required) == (
        "password",
        True,
        None,
        True,
    )
    assert manifest.config.json_schema["properties"]["apiToken"] == {
        "type": "string",
        "title": "API token",
        "writeOnly": True,
    }
    (step,) = manifest.components
    assert "default" not in step.in_ports[0].json_schema["properties"]["roomPassword"]  # type: ignore[index]
    text = published_text(manifest)
    assert "changeme-token" not in text
    assert "room-secret-42" not in text


def test_a_password_default_that_is_not_text_is_refused(chatter: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["configuration"][0]["defaultValue"] = 1234

    (issue,) = refused(edited_json(chatter, "package.json", edit))

    assert (issue.file, issue.pointer) == ("package.json", "/configuration/0/defaultValue")
    assert "1234 is not a value this password field accepts" in issue.detail


# --- 4. typed fields and step inputs ------------------------------------------------------------


def test_configuration_types_get_schemas_that_say_what_they_hold(chatter: ModuleFiles) -> None:
    properties = parsed(chatter).config.json_schema["properties"]

    # allowCustom: a value of the list or any other text (this default is custom).
    assert properties["regions"]["items"] == {"anyOf": [{"enum": ["eu", "us"]}, {"type": "string"}]}
    assert properties["regions"]["default"] == ["custom-zone"]
    assert properties["extraHeaders"]["anyOf"][0] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    assert properties["healthCheck"]["properties"]["paramsValue"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    assert properties["template"]["type"] == ["object", "array", "string"]
    assert properties["contacts"]["format"] == "slingr-entity"
    assert properties["contactEmail"]["format"] == "slingr-entity-field"
    assert properties["onMessage"]["contentMediaType"] == "application/javascript"
    assert "apiUrl" not in properties  # a label stores nothing


def test_step_inputs_keep_drop_down_values_and_typed_schemas(chatter: ModuleFiles) -> None:
    (step,) = parsed(chatter).components
    schema = step.in_ports[0].json_schema
    assert schema is not None
    inputs = schema["properties"]

    # Slingr writes a single choice's default as a one-element list.
    assert inputs["format"] == {
        "enum": ["plain", "markdown"],
        "default": "plain",
        "title": "Format",
    }
    assert inputs["endpoint"]["properties"]["urlValue"]["enum"] == [
        "POST /rooms/{room_id}/messages",
        "GET /rooms",
    ]
    assert inputs["notify"] == {"type": "boolean", "default": False, "title": "Notify"}
    validator = Draft202012Validator(schema)
    assert validator.is_valid(
        {
            "format": "markdown",
            "endpoint": {"urlValue": "GET /rooms", "paramsValue": []},
            "headers": "a=1,b=2",
            "body": {"text": "hi"},
        }
    )
    assert not validator.is_valid({"format": "html"})
    assert not validator.is_valid({"format": "plain", "headers": {"a": 1}})


def test_a_step_default_outside_its_possible_values_is_refused(chatter: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["inputs"][0]["defaultValue"] = "html"

    (issue,) = refused(edited_json(chatter, STEP, edit))

    assert (issue.file, issue.pointer) == (STEP, "/inputs/0/defaultValue")
    assert "'html' is not a value this dropDown input accepts" in issue.detail


def test_a_configuration_default_of_the_wrong_type_is_refused(chatter: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["configuration"][2]["defaultValue"] = ["not", "a", "map"]

    (issue,) = refused(edited_json(chatter, "package.json", edit))

    assert (issue.file, issue.pointer) == ("package.json", "/configuration/2/defaultValue")


# --- 5. shapes of the official packages (probe of slack, github, google-workspace, quickbooks) --

BUILDER = b"""/* Configuration builder: configures the package's dependencies. */

let configurationBuilder = function (config) {
    config.oauth = {clientId: config.clientId};
    return config;
};
"""


def with_builder(files: ModuleFiles, path: str, source: bytes | None) -> ModuleFiles:
    def edit(doc: dict[str, Any]) -> None:
        doc["configurationBuilder"] = path

    edited = edited_json(files, "package.json", edit)
    return ModuleFiles({**edited, "configurationBuilder.js": source}) if source else edited


def test_a_configuration_builder_file_is_listed(chatter: ModuleFiles) -> None:
    # github-package: "configurationBuilder": "/configurationBuilder.js".
    manifest = parsed(with_builder(chatter, "/configurationBuilder.js", BUILDER))

    builder = script(manifest.files, "configurationBuilder.js")
    assert (builder.role, builder.name) == ("configurationBuilder", "configurationBuilder")
    assert manifest.extra["configurationBuilder"] == "/configurationBuilder.js"


def test_an_inline_configuration_builder_still_parses(chatter: ModuleFiles) -> None:
    source = "function (config) { config.x = 1; return config; }"
    manifest = parsed(with_builder(chatter, source, None))

    assert manifest.extra["configurationBuilder"] == source
    assert not [f for f in manifest.files if f.role == "configurationBuilder"]


def test_a_configuration_builder_path_naming_no_file_is_refused(chatter: ModuleFiles) -> None:
    (issue,) = refused(with_builder(chatter, "/configBuilder.js", BUILDER))

    assert (issue.file, issue.pointer) == ("package.json", "/configurationBuilder")
    assert "'/configBuilder.js' names no file or folder in the archive" in issue.detail


def test_a_configuration_builder_file_without_the_function_is_refused(
    chatter: ModuleFiles,
) -> None:
    source = b"var build = function (config) { return config; };\n"
    (issue,) = refused(with_builder(chatter, "/configurationBuilder.js", source))

    assert (issue.file, issue.pointer) == ("configurationBuilder.js", "")
    assert "does not declare configurationBuilder" in issue.detail


def test_a_number_text_field_with_a_numeric_default_publishes_it_as_text(
    chatter: ModuleFiles,
) -> None:
    # quickbooks-package: minorVersion, a text field validated as a number, defaultValue 69.
    def edit(doc: dict[str, Any]) -> None:
        doc["configuration"].append(
            {
                "name": "minorVersion",
                "label": "Minor Version",
                "description": "The API's minor version.",
                "defaultValue": 69,
                "type": "text",
                "typeOptions": {"validation": "number"},
            }
        )

    manifest = parsed(edited_json(chatter, "package.json", edit))

    field = next(f for f in manifest.config.fields if f.name == "minorVersion")
    assert (field.default, field.description) == ("69", "The API's minor version.")
    assert "description" not in field.extra
    schema = manifest.config.json_schema["properties"]["minorVersion"]
    assert (schema["default"], schema["description"]) == ("69", "The API's minor version.")
    assert Draft202012Validator(schema).is_valid("70")


def test_an_info_field_s_value_stays_its_description(chatter: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["configuration"].append(
            {
                "name": "help",
                "label": "Help",
                "type": "info",
                "value": "<b>Paste the URL</b>",
                "description": "shown on hover",
            }
        )

    manifest = parsed(edited_json(chatter, "package.json", edit))

    field = next(f for f in manifest.config.fields if f.name == "help")
    assert field.description == "<b>Paste the URL</b>"
    assert field.extra["description"] == "shown on hover"
