"""Container modules as OneEntry's module form takes them (issue 19, container cases 1-3), on the
look-alike fixture ``container-oneentry-digest``: each case's canonical manifest fields, and for
each a twin with a genuine defect, refused at the right file and JSON pointer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from modyard.modules.formats.base import Issue, ManifestError, ModuleFiles
from modyard.modules.formats.container import ContainerAdapter, parse_container_document
from modyard.modules.manifest import Manifest, ModuleFormat, ModuleKind

Fixture = Callable[[str], ModuleFiles]
DIGEST = "sha256:4f1c3e6b2a9d8c7e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60"
REPOSITORY = "registry.gitlab.com/acme-oneentry/catalog-sync"


@pytest.fixture
def document(module_fixture: Fixture) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        module_fixture("container-oneentry-digest")["container.json"]
    )
    return loaded


def parse(document: dict[str, Any]) -> Manifest:
    return parse_container_document(document, file="(body)")


def refused(document: dict[str, Any]) -> list[Issue]:
    with pytest.raises(ManifestError) as raised:
        parse(document)
    return raised.value.issues


def env(manifest: Manifest) -> list[tuple[str, bool, str | None]]:
    assert manifest.container is not None
    return [(v.name, v.secret, v.default) for v in manifest.container.env]


def test_the_zipped_look_alike_is_a_container_module(module_fixture: Fixture) -> None:
    files = module_fixture("container-oneentry-digest")
    assert ContainerAdapter().detect(files)
    manifest = ContainerAdapter().parse(files)
    assert (manifest.name, manifest.version, manifest.format, manifest.kind) == (
        "acme-catalog-sync",
        "1.2.0",
        ModuleFormat.container,
        ModuleKind.container,
    )
    assert manifest.container is not None
    assert manifest.container.ports == [8080]


# -- case 1: digest references ------------------------------------------------------------------


def test_a_digest_reference_keeps_the_repository_tag_and_digest(document: dict[str, Any]) -> None:
    container = parse(document).container
    assert container is not None
    assert (container.image, container.default_tag, container.digest) == (
        REPOSITORY,
        "prod-v1.2.0",
        DIGEST,
    )


def test_a_digest_alone_leaves_no_default_tag(document: dict[str, Any]) -> None:
    container = parse({**document, "image": f"{REPOSITORY}@{DIGEST}"}).container
    assert container is not None
    assert (container.image, container.default_tag, container.digest) == (REPOSITORY, None, DIGEST)


@pytest.mark.parametrize(
    ("image", "says"),
    [
        (f"{REPOSITORY}@sha256:{'a' * 63}", "not a content digest"),
        (f"{REPOSITORY}@sha256:{'A' * 64}", "not a content digest"),
        (f"{REPOSITORY}@md5:{'a' * 32}", "not a content digest"),
        (f"{REPOSITORY}@sha256:", "not an image reference"),
    ],
)
def test_a_digest_that_is_not_one_is_refused(
    document: dict[str, Any], image: str, says: str
) -> None:
    (issue,) = refused({**document, "image": image})
    assert (issue.file, issue.pointer) == ("(body)", "/image")
    assert says in issue.detail


# -- case 2: env as a mapping or a list ---------------------------------------------------------


def test_env_as_a_mapping_gives_one_variable_per_name(document: dict[str, Any]) -> None:
    assert env(parse(document)) == [
        ("API_URL", False, "https://api.acme.example"),
        ("GITLAB_TOKEN", True, None),
        ("SYNC_INTERVAL_SECONDS", False, "300"),
        ("DRY_RUN", False, "false"),
    ]


def test_env_as_a_list_and_as_a_mapping_of_fields_mean_the_same(
    document: dict[str, Any],
) -> None:
    listed = parse(
        {
            **document,
            "env": [
                {"name": "API_URL", "required": True, "default": "https://api.acme.example"},
                {"name": "GITLAB_TOKEN", "description": "read-registry token"},
            ],
        }
    )
    mapped = parse(
        {
            **document,
            "env": {
                "API_URL": {"required": True, "default": "https://api.acme.example"},
                "GITLAB_TOKEN": {"description": "read-registry token"},
            },
        }
    )
    assert listed.container == mapped.container
    assert listed.container is not None
    assert [(v.name, v.required, v.description) for v in listed.container.env] == [
        ("API_URL", True, None),
        ("GITLAB_TOKEN", False, "read-registry token"),
    ]


def test_a_mapping_name_that_is_no_variable_name_is_refused_at_its_key(
    document: dict[str, Any],
) -> None:
    (issue,) = refused({**document, "env": {"API_URL": "x", "1BAD": "y"}})
    assert (issue.file, issue.pointer) == ("(body)", "/env/1BAD")
    assert "not a variable name" in issue.detail


def test_a_default_that_is_not_text_is_refused(document: dict[str, Any]) -> None:
    issues = refused(
        {**document, "env": [{"name": "OK", "default": {"nested": 1}}, {"name": "A", "x": 1}]}
    )
    assert [(i.file, i.pointer) for i in issues] == [
        ("(body)", "/env/0/default"),
        ("(body)", "/env/1/x"),
    ]


def test_env_that_is_neither_list_nor_mapping_is_refused(document: dict[str, Any]) -> None:
    (issue,) = refused({**document, "env": "API_URL=x"})
    assert (issue.file, issue.pointer) == ("(body)", "/env")


# -- case 3: secrets' defaults are never published ---------------------------------------------


def test_a_secret_variables_default_is_never_in_the_manifest(document: dict[str, Any]) -> None:
    manifest = parse(
        {
            **document,
            "env": [
                {"name": "SIGNING_KEY", "secret": True, "default": "s3cr3t"},
                {"name": "DB_PASSWORD", "default": "hunter2"},
                {"name": "TOKEN_HEADER", "secret": False, "default": "Authorization"},
                {"name": "PASSPORT_URL", "default": "https://passport.example"},
            ],
        }
    )
    assert env(manifest) == [
        ("SIGNING_KEY", True, None),
        ("DB_PASSWORD", True, None),
        ("TOKEN_HEADER", False, "Authorization"),
        ("PASSPORT_URL", False, "https://passport.example"),
    ]
    published = manifest.model_dump_json()
    assert "s3cr3t" not in published
    assert "hunter2" not in published
    assert "glpat-" not in parse(document).model_dump_json()


def test_a_secret_flag_that_is_not_a_boolean_is_refused(document: dict[str, Any]) -> None:
    (issue,) = refused({**document, "env": {"GITLAB_TOKEN": {"secret": "yes", "default": "x"}}})
    assert (issue.file, issue.pointer) == ("(body)", "/env/GITLAB_TOKEN/secret")
    assert "true or false" in issue.detail


# -- OneEntry's module form: tag, registry host, port, a version from the release tag -----------

FORM = {
    "name": "test-module",
    "image": "registry.gitlab.com/oneentry-skd-js/test-module",
    "tag": "prod-v1.0.10",
    "registry_host": "https://registry.gitlab.com/",
    "port": 3000,
    "env": [{"name": "DEVELOPER_API_HOST", "value": "https://example.oneentry.cloud"}],
}


def test_the_forms_fields_name_the_images_parts_and_the_tag_gives_the_version() -> None:
    manifest = parse(dict(FORM))
    assert manifest.version == "1.0.10"
    assert manifest.container is not None
    assert (manifest.container.image, manifest.container.default_tag) == (
        "registry.gitlab.com/oneentry-skd-js/test-module",
        "prod-v1.0.10",
    )
    assert manifest.container.ports == [3000]
    assert env(manifest) == [("DEVELOPER_API_HOST", False, "https://example.oneentry.cloud")]


@pytest.mark.parametrize(
    ("tag", "version"),
    [("1.4.0", "1.4.0"), ("v2.0.1", "2.0.1"), ("release-v0.3.9", "0.3.9")],
)
def test_a_release_tag_gives_the_version(tag: str, version: str) -> None:
    assert parse({**FORM, "tag": tag}).version == version


def test_the_request_version_wins_over_the_tag_and_the_documents_over_both() -> None:
    requested = parse_container_document(dict(FORM), file="(body)", version="1.0.11")
    assert requested.version == "1.0.11"
    written = parse_container_document({**FORM, "version": "1.0.9"}, file="(body)", version=None)
    assert written.version == "1.0.9"


@pytest.mark.parametrize(
    ("change", "pointer", "words"),
    [
        ({"tag": "main"}, "/version", "tag the image with it"),
        ({"image": FORM["image"] + ":prod-v1.0.9"}, "/tag", "the image says 'prod-v1.0.9'"),
        ({"registry_host": "ghcr.io"}, "/registry_host", "registry.gitlab.com"),
        ({"port": 70000}, "/port", "1-65535"),
        ({"token": "glpat-x"}, "/token", "the deployer takes when you deploy"),
        ({"token_id": "deploy"}, "/token_id", "never carries"),
        (
            {"env": [{"name": "A", "value": "x", "default": "y"}]},
            "/env/0/value",
            "keep one",
        ),
    ],
)
def test_form_fields_that_disagree_are_refused_saying_what_to_change(
    change: dict[str, Any], pointer: str, words: str
) -> None:
    issues = refused({**FORM, **change})
    assert [issue.pointer for issue in issues] == [pointer]
    assert words in issues[0].detail
