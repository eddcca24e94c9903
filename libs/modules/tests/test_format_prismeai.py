from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from modyard.modules.formats.base import ManifestError, ModuleFiles
from modyard.modules.formats.prismeai import PrismeAiAdapter
from modyard.modules.manifest import AppImport, Automation, Manifest, ModuleFormat, ModuleKind

Fixture = Callable[[str], ModuleFiles]


@pytest.fixture
def nlu(module_fixture: Fixture) -> ModuleFiles:
    return module_fixture("prismeai-nlu")


@pytest.fixture
def toolbox(module_fixture: Fixture) -> ModuleFiles:
    return module_fixture("prismeai-toolbox")


def parse(files: ModuleFiles) -> Manifest:
    return PrismeAiAdapter().parse(files)


def edited(files: ModuleFiles, path: str, change: Callable[[Any], None]) -> ModuleFiles:
    document = yaml.safe_load(files[path])
    change(document)
    return ModuleFiles({**files, path: yaml.safe_dump(document, sort_keys=False).encode()})


def issues_of(files: ModuleFiles) -> list[tuple[str, str, str]]:
    with pytest.raises(ManifestError) as raised:
        parse(files)
    return [(i.file, i.pointer, i.detail) for i in raised.value.issues]


def automation(manifest: Manifest, slug: str) -> Automation:
    return next(a for a in manifest.automations if a.slug == slug)


# -- detection ------------------------------------------------------------------------------------


def test_an_exported_workspace_and_a_single_file_workspace_are_recognised(
    nlu: ModuleFiles, toolbox: ModuleFiles
) -> None:
    assert PrismeAiAdapter().detect(nlu)
    assert PrismeAiAdapter().detect(toolbox)


@pytest.mark.parametrize(
    "files",
    [
        # An Appmixer bundle.
        {
            "bundle.json": json.dumps({"name": "appmixer.acme", "version": "1.0.0"}).encode(),
            "acme/service.json": b'{"name": "appmixer.acme"}',
            "acme/core/Send/component.json": b'{"name": "appmixer.acme.core.Send"}',
        },
        # Plain YAML: configuration, a CI workflow, a compose file.
        {"config.yml": b"name: my-settings\nretries: 3\nlevel: debug\n"},
        {"ci.yml": b"name: CI\non: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n"},
        {"docker-compose.yml": b"services:\n  web:\n    image: nginx\n"},
        # A native manifest is never a workspace, whatever keys it has.
        {"modyard.yaml": b"name: x\nversion: 1.0.0\nconfig:\n  schema: {}\n"},
        # An index.yml with nothing of a workspace beside it.
        {"index.yml": b"name: docs\n", "pages/home.yml": b"slug: home\n"},
        {"broken.yml": b"name: [unclosed\n"},
    ],
)
def test_files_that_are_not_a_workspace_are_not_prismeai(files: dict[str, bytes]) -> None:
    assert not PrismeAiAdapter().detect(ModuleFiles(files))


def test_a_cell_is_not_a_prismeai_app(module_fixture: Fixture) -> None:
    assert not PrismeAiAdapter().detect(module_fixture("appcell-newresellerclub"))


# -- the NLU app, field by field -----------------------------------------------------------------


def test_the_workspace_maps_to_the_module_header(nlu: ModuleFiles) -> None:
    manifest = parse(nlu)
    assert (manifest.name, manifest.version, manifest.format, manifest.kind) == (
        "nlu",
        "1.2.0",
        ModuleFormat.prismeai,
        ModuleKind.app,
    )
    assert manifest.label == "NLU"
    assert manifest.description == (
        "Detects intents in user messages, on top of the FrenchEmbeddings app."
    )
    assert manifest.icon == "https://cdn.prisme.example/apps/nlu.png"
    prismeai = manifest.extra["prismeai"]
    assert prismeai["slug"] == "nlu"
    assert set(prismeai["description"]) == {"en", "fr"}
    assert prismeai["workspace"] == {"labels": ["nlp"]}


def test_config_schema_and_values_become_the_config_spec_with_defaults(nlu: ModuleFiles) -> None:
    manifest = parse(nlu)
    schema = manifest.config.json_schema
    assert schema["type"] == "object"
    properties = schema["properties"]
    assert list(properties) == [
        "API_URL",
        "API_KEY",
        "language",
        "threshold",
        "model",
        "warmupSentences",
        "someRawJSON",
    ]
    assert properties["API_URL"]["default"] == "https://nlu.prisme.example/v2"
    assert properties["threshold"] == {
        "type": "number",
        "title": "Minimum confidence",
        "default": 0.6,
    }
    assert properties["model"]["default"] == {"name": "intents-base", "revision": 3}
    assert "default" not in properties["someRawJSON"]
    assert [(f.name, f.type, f.secret, f.multiple) for f in manifest.config.fields] == [
        ("API_URL", "text", False, False),
        ("API_KEY", "password", True, False),
        ("language", "dropDown", False, False),
        ("threshold", "number", False, False),
        ("model", "fieldsGroup", False, False),
        ("warmupSentences", "text", False, True),
        ("someRawJSON", "json", False, False),
    ]
    fields = {f.name: f for f in manifest.config.fields}
    assert [o.value for o in fields["language"].options] == ["fr", "en"]
    assert [(f.name, f.type) for f in fields["model"].fields] == [
        ("name", "text"),
        ("revision", "number"),
    ]
    assert fields["API_URL"].label == "NLU API URL"
    # Environment overrides are built from the app slug.
    assert fields["API_KEY"].extra["env"] == "APP_CONFIG_nlu_API_KEY"
    assert manifest.extra["prismeai"]["config_env_prefix"] == "APP_CONFIG_nlu_"
    # Values without a schema entry are still the app's config an instance falls back to.
    assert manifest.extra["prismeai"]["config_value"]["LOGIN_URL"] == "{{config.API_URL}}/login"


def test_secret_config_values_are_never_copied_into_the_manifest(nlu: ModuleFiles) -> None:
    with_key = edited(
        nlu, "index.yml", lambda d: d["config"]["value"].update(API_KEY="sk-live-123")
    )
    manifest = parse(with_key)
    assert "sk-live-123" not in manifest.model_dump_json()
    assert manifest.config.json_schema["properties"]["API_KEY"]["writeOnly"] is True


def test_automations_keep_triggers_instructions_output_and_privacy(nlu: ModuleFiles) -> None:
    manifest = parse(nlu)
    assert [(a.slug, a.private, a.when) for a in manifest.automations] == [
        ("computeIntent", True, {}),
        ("parse", False, {"endpoint": True}),
        ("retrain", False, {"schedules": ["0 3 * * *"]}),
        ("warmup", False, {"events": ["workspaces.apps.configured", "warmup.requested"]}),
    ]
    parse_message = automation(manifest, "parse")
    assert parse_message.name == "Parse message"
    assert parse_message.arguments == {"text": {"type": "string"}}
    assert parse_message.output == "{{result}}"
    assert [next(iter(step)) for step in parse_message.do] == [
        "conditions",
        "french.embed",
        "computeIntent",
        "emit",
    ]
    assert parse_message.extra == {
        "calls": ["computeIntent", "french.embed"],
        "emits": ["processed"],
    }
    assert automation(manifest, "computeIntent").arguments == {
        "embedding": {"type": "array", "items": {"type": "number"}}
    }


def test_repeat_on_is_read_as_a_string_as_prismeai_reads_yaml(nlu: ModuleFiles) -> None:
    repeat = automation(parse(nlu), "warmup").do[0]["repeat"]
    assert repeat["on"] == "{{config.warmupSentences}}"


def test_emitted_events_are_listed_and_computed_names_kept_apart(nlu: ModuleFiles) -> None:
    manifest = parse(nlu)
    assert [(e.name, e.extra.get("emitted_by")) for e in manifest.events] == [
        ("intent.unknown", ["computeIntent"]),  # inside a conditions branch
        ("processed", ["parse"]),
        ("model.retrained", ["retrain"]),
        ("warmup.requested", None),  # the playground page's form emits it
    ]
    assert manifest.extra["prismeai"]["dynamic_events"] == [
        {
            "automation": "warmup",
            "event": "warmed.{{config.language}}",
            "autocomplete": {"config.language": {"from": "config", "path": "language"}},
        }
    ]


def test_nested_app_imports_become_imports_and_module_dependencies(nlu: ModuleFiles) -> None:
    manifest = parse(nlu)
    assert manifest.imports == [
        AppImport(
            slug="french",
            app="frenchembeddings",
            version="3.0.0",
            config={"dimensions": 768, "API_KEY": "{{config.API_KEY}}"},
        )
    ]
    assert [(d.name, d.range, d.type) for d in manifest.dependencies] == [
        ("frenchembeddings", "3.0.0", "module")
    ]


def test_pages_are_carried_as_files(nlu: ModuleFiles) -> None:
    assert [(f.role, f.path, f.name) for f in parse(nlu).files] == [
        ("page", "pages/playground.yml", "playground")
    ]


# -- the single-file Toolbox app -----------------------------------------------------------------


def test_a_single_file_workspace_maps_like_an_exported_one(toolbox: ModuleFiles) -> None:
    manifest = parse(toolbox)
    assert (manifest.name, manifest.version, manifest.label) == ("toolbox", "5.0.0", "Toolbox")
    assert [(a.slug, a.private, a.when) for a in manifest.automations] == [
        ("execute", False, {"endpoint": True}),
        ("privateAutomation", True, {}),
    ]
    assert automation(manifest, "privateAutomation").output == "{{output}}"
    (custom_code,) = manifest.imports
    assert (custom_code.slug, custom_code.app, custom_code.version) == (
        "Custom Code",
        "custom-code",
        "5.0.0",
    )
    assert custom_code.config["functions"]["hello"]["parameters"] == {"name": {"type": "string"}}
    assert [e.name for e in manifest.events] == ["executed"]
    assert automation(manifest, "execute").extra["calls"] == ["Custom Code.run function"]


def test_both_layouts_together_are_one_workspace(nlu: ModuleFiles) -> None:
    def add_inline(document: Any) -> None:
        document["automations"] = {"ping": {"name": "ping", "when": {"endpoint": True}, "do": []}}

    manifest = parse(edited(nlu, "index.yml", add_inline))
    assert [a.slug for a in manifest.automations] == [
        "ping",
        "computeIntent",
        "parse",
        "retrain",
        "warmup",
    ]


@pytest.mark.parametrize(
    ("app_version", "expected"),
    [("latest", None), (None, None), ("^2.1.0", "^2.1.0"), (7, "7.0.0"), ("1.4.2", "1.4.2")],
)
def test_app_versions_of_imports_are_pinned_ranges_or_follow_updates(
    nlu: ModuleFiles, app_version: Any, expected: str | None
) -> None:
    def set_version(document: Any) -> None:
        if app_version is None:
            del document["appVersion"]
        else:
            document["appVersion"] = app_version

    manifest = parse(edited(nlu, "imports/french.yml", set_version))
    assert manifest.imports[0].version == expected
    assert manifest.dependencies[0].range == (expected or "*")


# -- problems -------------------------------------------------------------------------------------


def test_an_automation_without_do_is_refused(nlu: ModuleFiles) -> None:
    missing = edited(nlu, "automations/retrain.yml", lambda d: d.pop("do"))
    ((file, pointer, detail),) = issues_of(missing)
    assert (file, pointer) == ("automations/retrain.yml", "/do")
    assert "do: []" in detail


def test_an_inline_automation_without_do_is_located_in_the_workspace_file(
    toolbox: ModuleFiles,
) -> None:
    missing = edited(toolbox, "toolbox.yml", lambda d: d["automations"]["execute"].pop("do"))
    ((file, pointer, _),) = issues_of(missing)
    assert (file, pointer) == ("toolbox.yml", "/automations/execute/do")


@pytest.mark.parametrize(
    ("version", "problem"),
    [(None, "is missing"), ("v1.x", "not a SemVer"), (True, "not a version")],
)
def test_the_app_version_must_be_given_and_be_semver(
    nlu: ModuleFiles, version: Any, problem: str
) -> None:
    def set_version(document: Any) -> None:
        if version is None:
            del document["version"]
        else:
            document["version"] = version

    ((file, pointer, detail),) = issues_of(edited(nlu, "index.yml", set_version))
    assert (file, pointer) == ("index.yml", "/version")
    assert problem in detail


def test_triggers_are_checked(nlu: ModuleFiles) -> None:
    def damage(document: Any) -> None:
        document["when"] = {"schedules": ["every day"], "events": "warmup", "endpoint": 3}

    found = [(f, p) for f, p, _ in issues_of(edited(nlu, "automations/retrain.yml", damage))]
    assert found == [
        ("automations/retrain.yml", "/when/events"),
        ("automations/retrain.yml", "/when/endpoint"),
        ("automations/retrain.yml", "/when/schedules/0"),
    ]


def test_instructions_arguments_and_emits_are_checked(nlu: ModuleFiles) -> None:
    def damage(document: Any) -> None:
        document["arguments"]["text"] = {"type": 12}
        document["do"][1] = {"french.embed": {}, "set": {}}
        document["do"][3]["emit"].pop("event")

    found = [(f, p) for f, p, _ in issues_of(edited(nlu, "automations/parse.yml", damage))]
    assert found == [
        ("automations/parse.yml", "/arguments/text"),
        ("automations/parse.yml", "/do/1"),
        ("automations/parse.yml", "/do/3/emit/event"),
    ]


def test_an_emit_without_event_inside_a_condition_is_found(nlu: ModuleFiles) -> None:
    def damage(document: Any) -> None:
        branch = document["do"][1]["conditions"]["{{output.confidence}} < {{config.threshold}}"]
        branch[0]["emit"] = {"payload": {}}

    ((file, pointer, _),) = issues_of(edited(nlu, "automations/computeIntent.yml", damage))
    assert file == "automations/computeIntent.yml"
    assert pointer == "/do/1/conditions/{{output.confidence}} < {{config.threshold}}/0/emit/event"


def test_an_automation_defined_twice_is_refused(nlu: ModuleFiles) -> None:
    def duplicate(document: Any) -> None:
        document["automations"] = {"parse": {"name": "parse", "do": []}}

    ((file, _, detail),) = issues_of(edited(nlu, "index.yml", duplicate))
    assert file == "automations/parse.yml"
    assert "again" in detail


def test_an_import_needs_an_app_slug(nlu: ModuleFiles) -> None:
    ((file, pointer, _),) = issues_of(edited(nlu, "imports/french.yml", lambda d: d.pop("appSlug")))
    assert (file, pointer) == ("imports/french.yml", "/appSlug")


def test_a_bad_config_schema_is_reported_at_its_field(nlu: ModuleFiles) -> None:
    damaged = edited(
        nlu, "index.yml", lambda d: d["config"]["schema"].update(threshold={"type": 3})
    )
    ((file, pointer, detail),) = issues_of(damaged)
    assert (file, pointer) == ("index.yml", "/config/schema/threshold")
    assert "not a valid JSON Schema" in detail


def test_git_repositories_of_the_workspace_are_not_published(nlu: ModuleFiles) -> None:
    def add_repository(document: Any) -> None:
        document["repositories"] = {
            "github": {"type": "git", "config": {"auth": {"password": "hunter2"}}}
        }

    manifest = parse(edited(nlu, "index.yml", add_repository))
    assert "hunter2" not in manifest.model_dump_json()


def test_several_candidate_workspace_files_are_ambiguous(toolbox: ModuleFiles) -> None:
    twice = ModuleFiles({**toolbox, "other.yml": toolbox["toolbox.yml"]})
    ((_, _, detail),) = issues_of(twice)
    assert "other.yml, toolbox.yml" in detail


# -- forms the runtime runs, and those it does not ------------------------------------------------


def test_localized_names_disabled_and_try_branches(nlu: ModuleFiles) -> None:
    def change(document: Any) -> None:
        document["name"] = {"fr": "Réentraîner", "en": "nlu/Retrain"}
        document["disabled"] = True
        document["validateArguments"] = True
        document["do"] = [
            {
                "try": {
                    "do": [{"Custom Code.run": {}}, {"emit": {"event": "retrain.done"}}],
                    "catch": [{"emit": {"event": "retrain.failed"}}],
                }
            }
        ]

    manifest = parse(edited(nlu, "automations/retrain.yml", change))
    retrain = automation(manifest, "retrain")
    assert retrain.name == "nlu/Retrain"
    assert retrain.extra["localized_name"] == {"fr": "Réentraîner", "en": "nlu/Retrain"}
    assert (retrain.extra["disabled"], retrain.extra["validateArguments"]) == (True, True)
    # try's branches are walked: their calls and events are known; try is no call.
    assert retrain.extra["calls"] == ["Custom Code.run"]
    assert retrain.extra["emits"] == ["retrain.done", "retrain.failed"]


def test_instructions_and_endpoints_the_runtime_cannot_run_are_refused_by_name(
    nlu: ModuleFiles,
) -> None:
    def change(document: Any) -> None:
        document["when"] = {"endpoint": "v1/users/{id}"}
        document["do"] = [{"rateLimit": {"limit": 1}}, {"runWorkflow": {}}]

    found = issues_of(edited(nlu, "automations/retrain.yml", change))
    assert [pointer for _, pointer, _ in found] == [
        "/when/endpoint",
        "/do/0/rateLimit",
        "/do/1/runWorkflow",
    ]
    assert ":id" in found[0][2]
    assert "rateLimit" in found[1][2]

    def with_parameters(document: Any) -> None:
        document["when"] = {"endpoint": "v1/users/:id"}

    manifest = parse(edited(nlu, "automations/retrain.yml", with_parameters))
    assert automation(manifest, "retrain").when == {"endpoint": "v1/users/:id"}
