from __future__ import annotations

from collections.abc import Callable

import pytest

from modyard.modules.formats.base import ManifestError, ModuleFiles
from modyard.modules.formats.container import (
    ContainerAdapter,
    parse_container_document,
    split_image,
)
from modyard.modules.formats.native import NativeAdapter
from modyard.modules.manifest import ComponentRole, ExecutorType, ModuleFormat, ModuleKind

Fixture = Callable[[str], ModuleFiles]


def test_native_module_maps_field_by_field(module_fixture: Fixture) -> None:
    files = module_fixture("native-weather")
    assert NativeAdapter().detect(files)
    manifest = NativeAdapter().parse(files)
    assert (manifest.name, manifest.version, manifest.format, manifest.kind) == (
        "acme-weather",
        "1.4.0",
        ModuleFormat.native,
        ModuleKind.connector,
    )
    assert manifest.label == "ACME Weather"
    assert [(c.version, c.breaking) for c in manifest.changelog] == [
        ("1.4.0", False),
        ("1.0.0", True),
    ]
    assert [(d.name, d.range, d.type) for d in manifest.dependencies] == [
        ("acme-http", "^2.1.0", "module"),
        ("geo", ">=1.0.0 <3", "service"),
    ]
    assert manifest.requires.platform == "^1.0.0"
    assert manifest.config.json_schema["required"] == ["apiKey"]
    assert [(f.name, f.type, f.secret) for f in manifest.config.fields] == [
        ("apiKey", "password", True),
        ("units", "dropDown", False),
    ]
    trigger, action = manifest.components
    assert (trigger.role, trigger.polling_interval_seconds) == (ComponentRole.trigger, 300)
    assert action.role is ComponentRole.action
    assert action.in_ports[0].json_schema is not None
    assert action.executor.type is ExecutorType.js
    assert action.executor.entrypoint == "lib/forecast.js"
    assert [event.name for event in manifest.events] == ["alert.raised"]


def test_native_entrypoint_missing_from_the_archive_is_an_issue(module_fixture: Fixture) -> None:
    files = dict(module_fixture("native-weather"))
    del files["lib/forecast.js"]
    with pytest.raises(ManifestError) as caught:
        NativeAdapter().parse(ModuleFiles(files))
    issue = caught.value.issues[0]
    assert (issue.file, issue.pointer) == ("modyard.yaml", "/components/1/executor/entrypoint")
    assert "lib/forecast.js" in issue.detail


def test_native_field_errors_are_all_reported_with_pointers() -> None:
    files = ModuleFiles({"modyard.yaml": b"name: Bad Name\nversion: '1.2'\nkind: gadget\n"})
    with pytest.raises(ManifestError) as caught:
        NativeAdapter().parse(files)
    pointers = {issue.pointer for issue in caught.value.issues}
    assert {"/name", "/version", "/kind"} <= pointers


def test_native_yaml_that_does_not_parse_names_the_file() -> None:
    with pytest.raises(ManifestError) as caught:
        NativeAdapter().parse(ModuleFiles({"modyard.yaml": b"name: [unclosed"}))
    assert caught.value.issues[0].file == "modyard.yaml"
    assert "YAML" in caught.value.issues[0].detail


def test_container_manifest_splits_the_image_reference() -> None:
    manifest = parse_container_document(
        {
            "name": "test-module",
            "version": "1.0.10",
            "label": "Test module",
            "image": "registry.gitlab.com/oneentry-skd-js/test-module:prod-v1.0.10",
            "env": [
                {"name": "API_URL", "required": True, "description": "Where the module calls"},
                {"name": "API_TOKEN", "secret": True},
            ],
            "ports": [8080],
        },
        file="(body)",
    )
    assert (manifest.format, manifest.kind) == (ModuleFormat.container, ModuleKind.container)
    assert manifest.container is not None
    assert manifest.container.image == "registry.gitlab.com/oneentry-skd-js/test-module"
    assert manifest.container.default_tag == "prod-v1.0.10"
    assert [(e.name, e.required, e.secret) for e in manifest.container.env] == [
        ("API_URL", True, False),
        ("API_TOKEN", False, True),
    ]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("busybox", ("busybox", None)),
        ("127.0.0.1:5000/modules/echo:1.2.0", ("127.0.0.1:5000/modules/echo", "1.2.0")),
        ("registry.gitlab.com/a/b/c:v1", ("registry.gitlab.com/a/b/c", "v1")),
    ],
)
def test_image_references(reference: str, expected: tuple[str, str | None]) -> None:
    assert split_image(reference) == expected


@pytest.mark.parametrize("reference", ["UPPER/case", "a b", "repo:", "-lead/x"])
def test_bad_image_reference_is_an_issue(reference: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_container_document(
            {"name": "m", "version": "1.0.0", "image": reference}, file="(body)"
        )
    assert caught.value.issues[0].pointer == "/image"


def test_container_manifest_refuses_unknown_fields_and_bad_env_names() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_container_document(
            {
                "name": "m",
                "version": "1.0.0",
                "image": "a/b",
                "token": "glpat-x",
                "env": [{"name": "1BAD"}],
            },
            file="(body)",
        )
    pointers = [issue.pointer for issue in caught.value.issues]
    # Every problem at once: the unknown field and the variable's name.
    assert pointers == ["/token", "/env/0/name"]


def test_zipped_container_json_is_detected() -> None:
    files = ModuleFiles({"container.json": b'{"name": "m", "version": "1.0.0", "image": "a/b:1"}'})
    assert ContainerAdapter().detect(files)
    assert ContainerAdapter().parse(files).container is not None
