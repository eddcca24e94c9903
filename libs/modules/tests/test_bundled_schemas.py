from __future__ import annotations

import hashlib
import json
import socket
from typing import Any

import pytest

from modyard.modules.formats.base import IssueCollector, ModuleFiles, UnresolvedReference
from modyard.modules.formats.bundled_schemas import (
    SchemaBundle,
    candidate_paths,
    load_pinned,
    pin_schema,
    schema_problem,
    validator_for_pinned,
)
from modyard.modules.manifest import PinnedSchema

CELL = "newResellerClubCell"
URL = "https://repository.appcell.io/newresellerclubcell/schema"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def files_of(mapping: dict[str, Any]) -> ModuleFiles:
    return ModuleFiles(
        {
            path: value if isinstance(value, bytes) else json.dumps(value).encode()
            for path, value in mapping.items()
        }
    )


# -- where a reference points -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            f"{URL}/domain/register.schema.json",
            [
                "schema/domain/register.schema.json",
                "newresellerclubcell/schema/domain/register.schema.json",
            ],
        ),
        # The cell's name is matched ignoring case and separators.
        (
            "https://host.example/New-Reseller-Club-Cell/schema/a.json",
            ["schema/a.json", "New-Reseller-Club-Cell/schema/a.json"],
        ),
        # A schema of another prefix (shared, or of another cell) is bundled under that prefix,
        # or, for a cell renamed from another, under the rest of the path.
        (
            "https://repository.appcell.io/core/service.schema",
            ["core/service.schema", "service.schema"],
        ),
        (
            "http://repository.appcell.io/dns/schema/record.json#/definitions/a",
            ["dns/schema/record.json", "schema/record.json"],
        ),
        ("schema/domain/register.schema.json", ["schema/domain/register.schema.json"]),
        ("./schema/./domain/../domain/x%20y.json", ["schema/domain/x y.json"]),
    ],
)
def test_candidate_paths_drop_the_host_and_the_cell_name(
    reference: str, expected: list[str]
) -> None:
    assert candidate_paths(reference, cell_name=CELL) == expected


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("file:///etc/passwd", "'file' scheme"),
        ("urn:example:schema", "'urn' scheme"),
        ("../outside.json", "leaves the archive"),
        ("https://host.example/../../x.json", "leaves the archive"),
        ("", "is empty"),
    ],
)
def test_candidate_paths_refuse_references_that_cannot_name_a_bundled_file(
    reference: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        candidate_paths(reference, cell_name=CELL)


# -- pinning --------------------------------------------------------------------------------------


def test_pin_schema_pins_the_bundled_file_by_the_digest_of_its_bytes() -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    files = files_of({"Schema/Domain/Register.Schema.json": schema})
    pinned = pin_schema(
        files,
        f"{URL}/domain/register.schema.json",
        cell_name=CELL,
        source_file="plugins.json",
        pointer="/plugin/X/actions/create/0/$payload",
    )
    raw = files["Schema/Domain/Register.Schema.json"]
    assert pinned == PinnedSchema(
        reference=f"{URL}/domain/register.schema.json",
        path="Schema/Domain/Register.Schema.json",  # matched case-insensitively, stored as is
        digest=digest(raw),
    )
    assert load_pinned(files, pinned) == schema


def test_unresolvable_reference_names_the_file_pointer_reference_and_paths_tried() -> None:
    files = files_of({"schema/domain/other.json": {}})
    reference = f"{URL}/domain/missing.payload.json"
    with pytest.raises(UnresolvedReference) as raised:
        pin_schema(
            files, reference, cell_name=CELL, source_file="plugins.json", pointer="/a/$payload"
        )
    (issue,) = raised.value.issues
    assert (issue.file, issue.pointer) == ("plugins.json", "/a/$payload")
    assert reference in issue.detail
    assert "schema/domain/missing.payload.json" in issue.detail
    assert "newresellerclubcell/schema/domain/missing.payload.json" in issue.detail
    assert "never fetched" in issue.detail


def test_a_bundled_file_that_is_not_valid_json_schema_is_refused_with_where_it_is_wrong() -> None:
    files = files_of({"schema/bad.json": {"type": 12}})
    with pytest.raises(UnresolvedReference) as raised:
        pin_schema(
            files, f"{URL}/bad.json", cell_name=CELL, source_file="plugins.json", pointer="/p"
        )
    (issue,) = raised.value.issues
    assert (issue.file, issue.pointer) == ("plugins.json", "/p")
    assert "schema/bad.json, which is not a valid JSON Schema" in issue.detail
    assert "(at /type)" in issue.detail


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe", "is not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (
            b'{"$schema": "http://json-schema.org/draft-99/schema#"}',
            "not a known JSON Schema dialect",
        ),
    ],
)
def test_bundled_files_that_are_not_schemas_are_refused(content: bytes, problem: str) -> None:
    files = ModuleFiles({"schema/x.json": content})
    with pytest.raises(UnresolvedReference, match=problem):
        pin_schema(files, "schema/x.json", cell_name=None, source_file="plugins.json", pointer="/p")


def test_a_fragment_must_point_at_an_existing_part_of_the_file() -> None:
    files = files_of({"defs.json": {"definitions": {"domain": {"type": "string"}}}})
    pinned = pin_schema(
        files, "defs.json#/definitions/domain", cell_name=None, source_file="f.json", pointer=""
    )
    assert load_pinned(files, pinned) == {"type": "string"}
    with pytest.raises(UnresolvedReference, match="fragment"):
        pin_schema(
            files, "defs.json#/definitions/nope", cell_name=None, source_file="f.json", pointer=""
        )


def test_a_bundle_collects_every_problem_before_anything_is_raised() -> None:
    issues = IssueCollector()
    bundle = SchemaBundle(files_of({"ok.json": {"type": "object"}}), cell_name=CELL, issues=issues)
    assert bundle.pin("ok.json", source_file="a.json", pointer="/1") is not None
    assert bundle.pin("missing-1.json", source_file="a.json", pointer="/2") is None
    assert bundle.pin("missing-2.json", source_file="b.json", pointer="/3") is None
    assert [(i.file, i.pointer) for i in issues.issues] == [("a.json", "/2"), ("b.json", "/3")]


# -- $ref inside bundled schemas -----------------------------------------------------------------


NAMESERVERS = {
    "definitions": {
        "host": {"type": "string"},
        "pair": {"type": "object", "properties": {"ns1": {"$ref": "#/definitions/host"}}},
    }
}


def test_relative_refs_inside_a_bundled_schema_are_resolved_and_pinned_too() -> None:
    register = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "properties": {"nameservers": {"$ref": "../common/ns.json#/definitions/pair"}},
    }
    files = files_of(
        {"schema/domain/register.json": register, "schema/common/ns.json": NAMESERVERS}
    )
    bundle = SchemaBundle(files, cell_name=CELL)
    pinned = bundle.pin(f"{URL}/domain/register.json", source_file="plugins.json", pointer="/p")
    assert pinned is not None
    assert not bundle.issues.issues
    assert [(f.path, f.digest, f.role) for f in bundle.files] == [
        ("schema/common/ns.json", digest(files["schema/common/ns.json"]), "schema"),
        ("schema/domain/register.json", digest(files["schema/domain/register.json"]), "schema"),
    ]


def test_refs_follow_the_schemas_own_id_url_to_the_bundled_file() -> None:
    register = {
        "$id": f"{URL}/domain/register.json",
        "properties": {"ns": {"$ref": "../common/ns.json#/definitions/pair"}},
    }
    files = files_of(
        {"schema/domain/register.json": register, "schema/common/ns.json": NAMESERVERS}
    )
    bundle = SchemaBundle(files, cell_name=CELL)
    assert bundle.pin("schema/domain/register.json", source_file="p.json", pointer="") is not None
    assert not bundle.issues.issues
    assert "schema/common/ns.json" in [f.path for f in bundle.files]


def test_unresolvable_refs_inside_a_bundled_schema_are_reported_where_the_ref_is() -> None:
    register = {
        "properties": {
            "a": {"$ref": "missing.json"},
            "b": {"$ref": "#/definitions/nope"},
            "c": {"$ref": "common.json#/definitions/nope"},
        }
    }
    files = files_of({"schema/register.json": register, "schema/common.json": {"definitions": {}}})
    bundle = SchemaBundle(files, cell_name=CELL)
    bundle.pin("schema/register.json", source_file="plugins.json", pointer="/p")
    found = {(i.file, i.pointer): i.detail for i in bundle.issues.issues}
    assert set(found) == {
        ("schema/register.json", "/properties/a/$ref"),
        ("schema/register.json", "/properties/b/$ref"),
        ("schema/register.json", "/properties/c/$ref"),
    }
    assert "tried: schema/missing.json" in found[("schema/register.json", "/properties/a/$ref")]
    assert "does not exist" in found[("schema/register.json", "/properties/b/$ref")]


def test_a_schema_reached_by_ref_that_does_not_compile_is_reported_at_that_file() -> None:
    files = files_of({"a.json": {"$ref": "b.json"}, "b.json": {"type": 12}})
    bundle = SchemaBundle(files)
    bundle.pin("a.json", source_file="plugins.json", pointer="/p")
    assert [(i.file, i.pointer) for i in bundle.issues.issues] == [
        ("b.json", ""),
        ("a.json", "/$ref"),
    ]
    assert "12 is not valid" in bundle.issues.issues[0].detail


def test_ref_keys_in_data_and_property_names_are_not_references() -> None:
    schema = {
        "properties": {"$ref": {"type": "string"}},  # a property called "$ref"
        "examples": [{"$ref": "not-a-reference.json"}],
        "enum": [{"$ref": "nor-this.json"}],
    }
    bundle = SchemaBundle(files_of({"s.json": schema}))
    assert bundle.pin("s.json", source_file="p.json", pointer="") is not None
    assert not bundle.issues.issues


def test_inline_schemas_are_checked_and_their_refs_resolved_from_the_file_they_are_in() -> None:
    files = files_of({"schema/common.json": NAMESERVERS})
    bundle = SchemaBundle(files)
    good = {"properties": {"ns": {"$ref": "schema/common.json#/definitions/pair"}}}
    assert bundle.check_inline(good, source_file="plugins.json", pointer="/a/payload")
    assert not bundle.check_inline(
        {"type": "objekt"}, source_file="plugins.json", pointer="/b/payload"
    )
    assert not bundle.check_inline(
        {"$ref": "schema/nope.json"}, source_file="plugins.json", pointer="/c/payload"
    )
    assert [(i.file, i.pointer) for i in bundle.issues.issues] == [
        ("plugins.json", "/b/payload"),
        ("plugins.json", "/c/payload/$ref"),
    ]


def test_resolving_references_never_opens_a_network_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a schema reference tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    schema = {
        "properties": {
            "meta": {"$ref": "http://json-schema.org/draft-07/schema#"},  # shipped with jsonschema
            "remote": {"$ref": "https://schemas.example.org/not/bundled.json"},
        }
    }
    bundle = SchemaBundle(files_of({"s.json": schema}))
    bundle.pin("s.json", source_file="p.json", pointer="")
    bundle.pin("https://schemas.example.org/elsewhere.json", source_file="p.json", pointer="/x")
    assert [i.pointer for i in bundle.issues.issues] == ["/properties/remote/$ref", "/x"]


# -- using a pin later --------------------------------------------------------------------------


def test_a_pinned_schema_validates_with_its_refs_resolved_from_the_archive() -> None:
    register = {
        "type": "object",
        "required": ["nameservers"],
        "properties": {"nameservers": {"$ref": "../common/ns.json#/definitions/pair"}},
    }
    files = files_of(
        {"schema/domain/register.json": register, "schema/common/ns.json": NAMESERVERS}
    )
    pinned = pin_schema(
        files, f"{URL}/domain/register.json", cell_name=CELL, source_file="p", pointer=""
    )
    validator = validator_for_pinned(files, pinned, cell_name=CELL)
    assert validator.is_valid({"nameservers": {"ns1": "ns1.example.com"}})
    assert not validator.is_valid({"nameservers": {"ns1": 42}})


def test_loading_a_pin_refuses_a_file_whose_bytes_changed() -> None:
    files = files_of({"s.json": {"type": "object"}})
    pinned = pin_schema(files, "s.json", cell_name=None, source_file="p", pointer="")
    tampered = files_of({"s.json": {"type": "string"}})
    with pytest.raises(UnresolvedReference, match="does not match its pinned digest"):
        load_pinned(tampered, pinned)
    with pytest.raises(UnresolvedReference, match="not in the archive"):
        load_pinned(files_of({}), pinned)


def test_a_schema_wrong_at_its_root_says_so_in_words_not_with_the_pointer_slash() -> None:
    # "/" is the pointer of the member named "" (RFC 6901); the root is "", said in words.
    problem = schema_problem(
        {"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": True}
    )
    assert problem is not None
    assert problem.endswith("(at the schema's root)")
    assert "(at /)" not in problem
