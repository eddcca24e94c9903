"""The Slingr adapter maps a package (fixtures/slingr-sample-complex) into the canonical manifest."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from modyard.modules.formats.base import Issue, ManifestError, ModuleFiles
from modyard.modules.formats.slingr import PLACEHOLDER_PATTERN, SlingrAdapter
from modyard.modules.manifest import (
    Component,
    ComponentRole,
    ConfigField,
    ConfigOption,
    Dependency,
    EventSpec,
    ExecutorType,
    Manifest,
    ModuleFile,
    ModuleFormat,
    ModuleKind,
)
from modyard.testing.archives import changed

Load = Callable[[str], ModuleFiles]
ADAPTER = SlingrAdapter()
PLACEHOLDER = {"type": "string", "pattern": PLACEHOLDER_PATTERN}


@pytest.fixture
def package(module_fixture: Load) -> ModuleFiles:
    return module_fixture("slingr-sample-complex")


@pytest.fixture
def manifest(package: ModuleFiles) -> Manifest:
    return ADAPTER.parse(package)


def config_field(manifest: Manifest, *names: str) -> ConfigField:
    """A configuration field by name; several names walk into fields groups."""
    fields = manifest.config.fields
    found: ConfigField | None = None
    for name in names:
        found = next(f for f in fields if f.name == name)
        fields = found.fields
    assert found is not None
    return found


def flow_step(manifest: Manifest, name: str) -> Component:
    return next(c for c in manifest.components if c.name == name)


def edited(
    files: ModuleFiles, edit: Callable[[dict[str, Any]], None], path: str = "package.json"
) -> ModuleFiles:
    document = json.loads(files[path])
    edit(document)
    return ModuleFiles({**files, path: json.dumps(document).encode()})


def issues_of(files: ModuleFiles) -> list[Issue]:
    with pytest.raises(ManifestError) as caught:
        ADAPTER.parse(files)
    return caught.value.issues


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x00\x00\x00\xff" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def configuration_index(files: ModuleFiles, name: str) -> int:
    fields = json.loads(files["package.json"])["configuration"]
    return next(i for i, item in enumerate(fields) if item["name"] == name)


# --- descriptor basics ----------------------------------------------------------------------------


def test_package_identity_and_v_prefixed_version(manifest: Manifest) -> None:
    assert manifest.name == "sample-complex"
    assert manifest.version == "1.4.2"
    assert manifest.format is ModuleFormat.slingr
    assert manifest.kind is ModuleKind.package
    assert manifest.label == "Sample Complex Package"
    assert manifest.description == (
        "Shows every configuration field type, a script library, listeners, flow steps and a UI "
        "service."
    )
    assert manifest.icon is None
    assert manifest.changelog == []


def test_dependencies_map_types_and_update_policies_to_npm_ranges(manifest: Manifest) -> None:
    assert manifest.dependencies == [
        Dependency(name="oauth", range="^1.0.15", type="module"),
        Dependency(name="utils", range="~2.3.0", type="module"),
    ]
    # The http service is the platform's own (dependencies.http): kept with its range, never a
    # module the installer would look for.
    assert manifest.requires.extra["slingr_services"] == {"http": "1.2.6"}


def test_events_are_declared_without_schema(manifest: Manifest) -> None:
    assert manifest.events == [
        EventSpec(
            name="inboundEvent",
            label="Inbound Event",
            description="Event triggered by the package when a request arrive to the root path "
            "of the service.",
        ),
        EventSpec(name="pong", label="Pong", description="Callback event for the Ping function"),
    ]


# --- configuration fields -------------------------------------------------------------------------


def test_configuration_keeps_every_top_level_field_in_order(manifest: Manifest) -> None:
    assert [(f.name, f.type) for f in manifest.config.fields] == [
        ("simpleLabel", "label"),
        ("information", "info"),
        ("labels", "fieldsGroup"),
        ("email", "text"),
        ("description", "text"),
        ("password", "password"),
        ("syncAutomatically", "toggle"),
        ("syncInterval", "text"),
        ("setEmail", "button"),
        ("multiSwitcher", "buttonsGroup"),
        ("multiCustomDropDown", "dropDown"),
        ("region", "dropDown"),
        ("advanced", "fieldsGroup"),
    ]


def test_label_field_keeps_its_read_only_value(manifest: Manifest) -> None:
    assert config_field(manifest, "simpleLabel") == ConfigField(
        name="simpleLabel",
        type="label",
        label="Simple",
        extra={"value": "Sample Complex Package"},
    )


def test_info_field_value_becomes_the_description(manifest: Manifest) -> None:
    info = config_field(manifest, "information")

    assert info.label == "Information"
    assert info.description is not None
    assert info.description.startswith("Follow these points to generate a new credentials:<ul>")
    assert info.extra == {"alertType": "warning"}


def test_fields_group_nests_its_fields(manifest: Manifest) -> None:
    labels = config_field(manifest, "labels")

    assert [(f.name, f.type, f.multiple) for f in labels.fields] == [
        ("concatenation", "label", False),
        ("multiLabel", "label", True),
    ]
    assert config_field(manifest, "labels", "multiLabel").extra["value"] == [
        "config.entity ? config.entity : 'No entity'",
        "config.entityField ? config.entityField : 'No field'",
    ]


def test_text_fields_keep_validation_and_representation(manifest: Manifest) -> None:
    email = config_field(manifest, "email")
    description = config_field(manifest, "description")

    assert (email.required, email.visibility, email.secret) == (True, True, False)
    assert email.extra == {"validation": "email"}
    assert description.required is False
    assert description.extra == {"representation": "textArea", "numberOfRows": 4}


def test_password_is_a_required_secret(manifest: Manifest) -> None:
    password = config_field(manifest, "password")

    assert (password.type, password.secret, password.required) == ("password", True, True)


def test_toggle_keeps_its_default(manifest: Manifest) -> None:
    toggle = config_field(manifest, "syncAutomatically")

    assert (toggle.type, toggle.default, toggle.multiple) == ("toggle", False, False)


def test_required_and_visibility_can_be_references_or_expressions(manifest: Manifest) -> None:
    interval = config_field(manifest, "syncInterval")
    secret = config_field(manifest, "advanced", "webhookSecret")

    assert interval.required == "@config.syncAutomatically"
    assert interval.visibility == "@config.syncAutomatically"
    assert interval.default == "15"
    assert secret.required == "config.syncAutomatically && utils.isPlaceHolder(config.apiUrl)"
    assert secret.visibility is False
    assert secret.label is None
    assert secret.extra == {"showLabel": False}


def test_button_keeps_color_and_client_side_action(manifest: Manifest) -> None:
    button = config_field(manifest, "setEmail")

    assert button.extra == {
        "color": "info",
        "action": "if (!config.inputs.email) { config.inputs.email = 'test1@slingr.io'; }",
    }


def test_buttons_group_maps_possible_values_multiplicity_and_allow_custom(
    manifest: Manifest,
) -> None:
    group = config_field(manifest, "multiSwitcher")

    assert group.options == [
        ConfigOption(value="danger", label="Danger"),
        ConfigOption(value="warn", label="Warning"),
        ConfigOption(value="info", label="Information"),
    ]
    assert (group.multiple, group.allow_custom, group.required) == (True, True, True)
    assert group.default == ["danger", "info"]


def test_drop_downs_with_and_without_placeholders(manifest: Manifest) -> None:
    multi = config_field(manifest, "multiCustomDropDown")
    region = config_field(manifest, "region")

    assert [o.value for o in multi.options] == ["NY", "AZ", "CA"]
    assert (multi.multiple, multi.allow_custom, multi.default) == (True, True, ["${TEST2}", "CA"])
    assert region.options == [
        ConfigOption(value="us", label="United States"),
        ConfigOption(value="eu", label="Europe"),
    ]
    assert (region.multiple, region.allow_custom, region.default) == (False, False, "us")


# --- configuration JSON Schema --------------------------------------------------------------------


def test_config_schema_is_valid_draft_2020_12(manifest: Manifest) -> None:
    schema = manifest.config.json_schema

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"


def test_fields_that_store_nothing_are_not_in_the_schema(manifest: Manifest) -> None:
    assert list(manifest.config.json_schema["properties"]) == [
        "email",
        "description",
        "password",
        "syncAutomatically",
        "syncInterval",
        "multiSwitcher",
        "multiCustomDropDown",
        "region",
        "advanced",
    ]


def test_only_unconditionally_required_visible_fields_are_required(manifest: Manifest) -> None:
    schema = manifest.config.json_schema

    assert schema["required"] == ["email", "password", "multiSwitcher", "region", "advanced"]
    assert schema["properties"]["advanced"]["required"] == ["apiUrl"]


def test_required_field_that_may_be_hidden_is_left_to_the_console(package: ModuleFiles) -> None:
    index = configuration_index(package, "syncInterval")
    files = edited(package, lambda doc: doc["configuration"][index].update(required=True))

    manifest = ADAPTER.parse(files)

    assert config_field(manifest, "syncInterval").required is True
    assert "syncInterval" not in manifest.config.json_schema["required"]


def test_field_schemas_follow_type_validation_and_multiplicity(manifest: Manifest) -> None:
    properties = manifest.config.json_schema["properties"]

    assert properties["email"] == {
        "anyOf": [{"type": "string", "format": "email"}, PLACEHOLDER],
        "title": "Email",
    }
    assert properties["password"] == {"type": "string", "title": "Password", "writeOnly": True}
    assert properties["syncAutomatically"] == {
        "type": "boolean",
        "title": "Sync Automatically",
        "default": False,
    }
    assert properties["multiSwitcher"] == {
        "type": "array",
        "items": {"anyOf": [{"enum": ["danger", "warn", "info"]}, {"type": "string"}]},
        "title": "Multi",
        "default": ["danger", "info"],
    }
    assert properties["region"] == {"enum": ["us", "eu"], "title": "Region", "default": "us"}
    assert properties["advanced"]["properties"]["webhookSecret"] == {
        "type": "string",
        "writeOnly": True,
    }


def test_schema_accepts_a_real_configuration_and_rejects_a_wrong_one(manifest: Manifest) -> None:
    validator = Draft202012Validator(manifest.config.json_schema)
    good = {
        "email": "${SUPPORT_EMAIL}",
        "password": "s3cret",
        "syncInterval": "30",
        "multiSwitcher": ["warn"],
        "multiCustomDropDown": ["${STATES}"],
        "region": "eu",
        "advanced": {"apiUrl": "https://api.example.com"},
    }
    bad = {**good, "region": "mars", "syncInterval": "soon"}
    del bad["password"]

    assert list(validator.iter_errors(good)) == []
    assert sorted(e.message for e in validator.iter_errors(bad)) == [
        "'mars' is not one of ['us', 'eu']",
        "'password' is a required property",
        "'soon' does not match '^(-?[0-9]+(\\\\.[0-9]+)?|\\\\$\\\\{[^}]+\\\\})$'",
    ]


def test_user_configuration_is_kept_in_extra_with_its_schema(manifest: Manifest) -> None:
    user = manifest.extra["userConfiguration"]

    assert user["schema"]["properties"] == {"signature": {"type": "string", "title": "Signature"}}
    assert [(f["name"], f["extra"]) for f in user["fields"]] == [
        ("signature", {"representation": "textArea", "numberOfRows": 3})
    ]


# --- metadata, flow steps, UI services ------------------------------------------------------------


def test_metadata_files_resolve_to_archive_paths(manifest: Manifest) -> None:
    assert [(f.role, f.path, f.name) for f in manifest.files] == [
        ("script", "scripts/functions.js", "functions"),
        ("script", "scripts/helpers/dates.js", "dates"),
        ("script", "scripts/helpers/numbers.js", "numbers"),
        ("listener", "listeners/listeners.js", "listeners"),
        ("flowStep", "flowSteps/numberGenerator/step.js", "numberGenerator"),
        ("flowStep", "flowSteps/calculator/step.js", "calculator"),
        ("uiService", "uiServices/notifications/uiService.js", "notifications"),
    ]


def test_listener_file_lists_the_listeners_it_defines(manifest: Manifest) -> None:
    listener = next(f for f in manifest.files if f.role == "listener")

    assert listener.extra == {
        "listeners": ["defaultWebhookSampleComplex", "listenerForCompaniesChanges"]
    }


def test_ui_service_file_carries_its_descriptor_config(manifest: Manifest) -> None:
    ui = next(f for f in manifest.files if f.role == "uiService")

    assert ui.extra["descriptor"] == "uiServices/notifications/uiService.json"
    config = ui.extra["config"]
    assert config["places"] == ["app", "login"]
    assert [d["placement"] for d in config["dependencies"]] == ["head", "head"]
    assert config["functions"] == [
        {"label": "Show toast", "name": "showToast", "callbacks": {"onClick": "toastClicked"}}
    ]
    assert config["events"] == [{"label": "Toast clicked", "name": "toastClicked"}]


def test_flow_steps_become_js_actions(manifest: Manifest) -> None:
    generator = flow_step(manifest, "numberGenerator")

    assert [c.name for c in manifest.components] == ["numberGenerator", "calculator"]
    assert generator.role is ComponentRole.action
    assert generator.label == "Random number"
    assert generator.description == "Generates a new random number."
    assert generator.icon == "flowSteps/numberGenerator/icon.png"
    assert generator.executor.type is ExecutorType.js
    assert generator.executor.entrypoint == "flowSteps/numberGenerator/step.js"
    assert generator.extra == {"category": "integrations"}
    assert generator.polling_interval_seconds is None
    assert generator.properties_schema is None


def test_step_inputs_become_the_in_port_schema(manifest: Manifest) -> None:
    (in_port,) = flow_step(manifest, "calculator").in_ports

    assert in_port.name == "in"
    assert in_port.json_schema == {
        "type": "object",
        "properties": {
            "operation": {
                "enum": ["SUM", "REST", "DIV", "MULT"],
                "title": "Operation",
                "default": "SUM",
            },
            "firstOperand": {
                "type": "string",
                "title": "First operand",
                "description": "First operand",
            },
            "secondOperand": {
                "type": "string",
                "title": "Second operand",
                "description": "Second operand",
            },
        },
        "required": ["operation", "firstOperand"],
    }
    assert [f["name"] for f in in_port.extra["fields"]] == [
        "operation",
        "firstOperand",
        "secondOperand",
    ]


def test_step_outputs_become_the_out_port_schema_and_options(manifest: Manifest) -> None:
    (out_port,) = flow_step(manifest, "numberGenerator").out_ports

    assert out_port.name == "out"
    assert out_port.json_schema == {
        "type": "object",
        "properties": {
            "generatedNumber": {
                "type": "number",
                "title": "Generated number",
                "description": "The generated random number",
            }
        },
    }
    assert out_port.options == [{"label": "Generated number", "value": "generatedNumber"}]


def test_encrypted_app_storage_use_is_a_storage_requirement(manifest: Manifest) -> None:
    assert manifest.requires.storage == ["kv"]
    assert manifest.requires.extra["storage"] == {
        "encrypted": True,
        "used_by": ["scripts/functions.js"],
    }


def test_package_without_storage_calls_requires_none(package: ModuleFiles) -> None:
    functions = package["scripts/functions.js"].replace(b"sys.storage.", b"cache.")

    manifest = ADAPTER.parse(changed(package, {"scripts/functions.js": functions}))

    assert manifest.requires.storage == []
    assert "storage" not in manifest.requires.extra


def test_metadata_path_may_name_a_file_inside_a_flow_step_folder(package: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["metadata"][3]["path"] = "/flowSteps/numberGenerator/step.json"

    manifest = ADAPTER.parse(edited(package, edit))

    assert flow_step(manifest, "numberGenerator").executor.entrypoint == (
        "flowSteps/numberGenerator/step.js"
    )


def test_unlisted_flow_step_folder_is_not_part_of_the_package(package: ModuleFiles) -> None:
    manifest = ADAPTER.parse(edited(package, lambda doc: doc["metadata"].pop(4)))

    assert [c.name for c in manifest.components] == ["numberGenerator"]
    assert (
        ModuleFile(
            role="flowStep",
            path="flowSteps/calculator/step.js",
            name="calculator",
            extra={"descriptor": "flowSteps/calculator/step.json"},
        )
        not in manifest.files
    )


# --- detection ------------------------------------------------------------------------------------


def test_detects_a_slingr_package(package: ModuleFiles) -> None:
    assert ADAPTER.detect(package)


def test_detects_a_package_whose_descriptor_is_broken(package: ModuleFiles) -> None:
    assert ADAPTER.detect(changed(package, {"package.json": b'{"name": "sample-complex",'}))


def test_does_not_claim_an_npm_package(package: ModuleFiles) -> None:
    npm = {
        "name": "left-pad",
        "version": "1.3.0",
        "dependencies": {"lodash": "^4.17.21"},
        "files": ["index.js"],
        "keywords": ["events", "configuration"],
    }
    only_npm = ModuleFiles({"package.json": json.dumps(npm).encode(), "index.js": b""})
    npm_with_lists = {**npm, "configuration": [], "metadata": []}

    assert not ADAPTER.detect(only_npm)
    assert not ADAPTER.detect(ModuleFiles({"package.json": json.dumps(npm_with_lists).encode()}))
    assert not ADAPTER.detect(ModuleFiles({"package.json": b"{broken", "index.js": b""}))


def test_does_not_claim_an_appmixer_module(module_fixture: Load) -> None:
    acme = module_fixture("appmixer-acme")
    slingr_like = {"name": "acme", "version": "v1.0.0", "dependencies": [], "configuration": []}

    assert not ADAPTER.detect(acme)
    assert not ADAPTER.detect(
        ModuleFiles({**acme, "package.json": json.dumps(slingr_like).encode()})
    )


def test_does_not_claim_files_without_a_top_level_descriptor(package: ModuleFiles) -> None:
    nested = ModuleFiles({f"pkg/{path}": data for path, data in package.items()})
    assert not ADAPTER.detect(nested)


# --- validation -----------------------------------------------------------------------------------


def test_version_must_be_vxyz(package: ModuleFiles) -> None:
    (issue,) = issues_of(edited(package, lambda doc: doc.update(version="v1.4")))

    assert (issue.file, issue.pointer) == ("package.json", "/version")
    assert issue.detail == (
        "'v1.4' is not a SemVer 2.0 version (MAJOR.MINOR.PATCH, e.g. 1.4.0); Slingr writes "
        "vX.Y.Z, e.g. v1.0.0"
    )


def test_dependency_version_must_be_a_range(package: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["dependencies"][1]["version"] = "^latest"

    (issue,) = issues_of(edited(package, edit))

    assert (issue.file, issue.pointer) == ("package.json", "/dependencies/1/version")
    assert issue.detail == (
        "'^latest' is not an npm-style range (e.g. ^1.2.0, ~1.2, >=2.0.0 <3, 1.x, or a || b); "
        "Slingr writes vX.Y.Z (fixed), ^vX.Y.Z (compatible) or ~vX.Y.Z (bug fixes)"
    )


def test_dependency_type_must_be_service_or_package(package: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["dependencies"][0]["type"] = "endpoint"

    assert issues_of(edited(package, edit)) == [
        Issue(
            "package.json",
            "/dependencies/0/type",
            "is 'endpoint'; a dependency is of type service or package",
        )
    ]


def test_metadata_pointing_at_a_missing_file_is_an_issue(package: ModuleFiles) -> None:
    files = changed(package, {"listeners/listeners.js": None})

    assert issues_of(files) == [
        Issue(
            "package.json",
            "/metadata/2/path",
            "'/listeners/listeners.js' names no file or folder in the archive; add it or fix "
            "the path",
        )
    ]


def test_metadata_path_with_wrong_case_suggests_the_right_one(package: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["metadata"][0]["path"] = "/scripts/Functions.js"

    (issue,) = issues_of(edited(package, edit))

    assert issue.pointer == "/metadata/0/path"
    assert issue.detail.endswith("(did you mean /scripts/functions.js? paths are case-sensitive)")


def test_metadata_type_must_be_known(package: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["metadata"][0]["type"] = "library"

    assert issues_of(edited(package, edit)) == [
        Issue(
            "package.json",
            "/metadata/0/type",
            "is 'library'; metadata is of type script, listener, flowStep, uiService",
        )
    ]


def test_flow_step_without_code_is_an_issue(package: ModuleFiles) -> None:
    files = changed(package, {"flowSteps/calculator/step.js": None})

    assert issues_of(files) == [
        Issue(
            "package.json",
            "/metadata/4/path",
            "flow step flowSteps/calculator lacks flowSteps/calculator/step.js; a flow step "
            "needs step.json and step.js (and may have an 18x18 icon.png)",
        )
    ]


def test_step_js_must_define_the_step(package: ModuleFiles) -> None:
    files = changed(package, {"flowSteps/calculator/step.js": b"step.calc = function (inputs) {};"})

    assert issues_of(files) == [
        Issue(
            "flowSteps/calculator/step.js",
            "",
            "does not define step.calculator; add step.calculator = function (inputs) { … }",
        )
    ]


def test_step_icon_must_be_an_18_pixel_png(package: ModuleFiles) -> None:
    files = changed(
        package,
        {
            "flowSteps/calculator/icon.png": png(32, 32),
            "flowSteps/numberGenerator/icon.png": b"GIF89a",
        },
    )

    assert issues_of(files) == [
        Issue(
            "flowSteps/numberGenerator/icon.png",
            "",
            "is not a PNG image; the flow editor needs an 18x18 PNG",
        ),
        Issue(
            "flowSteps/calculator/icon.png",
            "",
            "is 32x32 pixels; the flow editor needs 18x18",
        ),
    ]


def test_malformed_package_json_names_the_file(package: ModuleFiles) -> None:
    files = changed(package, {"package.json": b'{"name": "sample-complex",\n  "version": }'})

    assert issues_of(files) == [
        Issue("package.json", "", "is not valid JSON: Expecting value at line 2 column 14")
    ]


def test_malformed_step_json_names_the_file(package: ModuleFiles) -> None:
    files = changed(package, {"flowSteps/numberGenerator/step.json": b'{"name": "x" "label"}'})

    (issue,) = issues_of(files)
    assert (issue.file, issue.pointer) == ("flowSteps/numberGenerator/step.json", "")
    assert issue.detail.startswith("is not valid JSON: Expecting ',' delimiter")


def test_ui_service_dependency_file_must_exist(package: ModuleFiles) -> None:
    files = changed(package, {"uiServices/notifications/toastify.css": None})

    assert issues_of(files) == [
        Issue(
            "uiServices/notifications/uiService.json",
            "/dependencies/1/file",
            "'toastify.css' is neither a URL nor a file in the archive "
            "(uiServices/notifications/toastify.css); add the file",
        )
    ]


def test_default_value_must_be_one_of_the_options(package: ModuleFiles) -> None:
    index = configuration_index(package, "region")

    def edit(doc: dict[str, Any]) -> None:
        doc["configuration"][index]["defaultValue"] = "asia"

    (issue,) = issues_of(edited(package, edit))
    assert (issue.file, issue.pointer) == ("package.json", f"/configuration/{index}/defaultValue")
    assert issue.detail.startswith("'asia' is not a value this dropDown field accepts")


def test_button_does_not_allow_multiplicity_many(package: ModuleFiles) -> None:
    index = configuration_index(package, "setEmail")

    def edit(doc: dict[str, Any]) -> None:
        doc["configuration"][index]["multiplicity"] = "many"

    assert issues_of(edited(package, edit)) == [
        Issue(
            "package.json",
            f"/configuration/{index}/multiplicity",
            "a button does not allow many; remove it",
        )
    ]


def test_documented_type_options_are_checked(package: ModuleFiles) -> None:
    email = configuration_index(package, "email")
    info = configuration_index(package, "information")

    def edit(doc: dict[str, Any]) -> None:
        doc["configuration"][email]["typeOptions"]["validation"] = "phone"
        doc["configuration"][info]["typeOptions"]["alertType"] = "error"
        doc["configuration"][email]["multiplicity"] = "several"

    assert issues_of(edited(package, edit)) == [
        Issue(
            "package.json",
            f"/configuration/{info}/typeOptions/alertType",
            "is 'error'; a info field's alertType is one of info, success, warning, danger",
        ),
        Issue(
            "package.json",
            f"/configuration/{email}/multiplicity",
            "is 'several'; write one (the default) or many",
        ),
        Issue(
            "package.json",
            f"/configuration/{email}/typeOptions/validation",
            "is 'phone'; a text field's validation is one of email, number, url",
        ),
    ]


def test_nested_field_problems_point_into_the_group(package: ModuleFiles) -> None:
    index = configuration_index(package, "advanced")

    def edit(doc: dict[str, Any]) -> None:
        del doc["configuration"][index]["typeOptions"]["fields"][0]["label"]
        doc["configuration"][index]["typeOptions"]["fields"][1]["required"] = 3

    assert issues_of(edited(package, edit)) == [
        Issue(
            "package.json",
            f"/configuration/{index}/typeOptions/fields/0/label",
            "is required unless showLabel is false; add a label",
        ),
        Issue(
            "package.json",
            f"/configuration/{index}/typeOptions/fields/1/required",
            "is 3; write true, false, a reference like @config.otherField or an expression like "
            "config.otherField && utils.isPlaceHolder(config.anotherValue)",
        ),
    ]


def test_all_problems_are_reported_at_once(package: ModuleFiles) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["version"] = "one"
        doc["dependencies"][0]["version"] = "v1.2.x.y"
        doc["events"][1] = {"label": "No name"}

    files = changed(edited(package, edit), {"scripts/functions.js": None})

    assert [(i.file, i.pointer) for i in issues_of(files)] == [
        ("package.json", "/version"),
        ("package.json", "/dependencies/0/version"),
        ("package.json", "/events/1/name"),
        ("package.json", "/metadata/0/path"),
    ]
