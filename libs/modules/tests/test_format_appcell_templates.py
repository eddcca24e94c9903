"""Plugin payloads as real AppCell cells write them: templates over Billia's data, with example
results, next to the resources' JSON Schemas (look-alike ``appcell-templated-registrar``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from modyard.modules.formats.appcell import AppCellAdapter
from modyard.modules.formats.appcell_payload import render, template_problem
from modyard.modules.formats.base import ManifestError, ModuleFiles, UnresolvedReference
from modyard.modules.manifest import CellAction, Manifest

Fixture = Callable[[str], ModuleFiles]
PLUGIN = "/plugin/TemplatedRegistrar/actions"
R = "https://repository.appcell.io/templatedregistrarcell/schema"


@pytest.fixture
def cell(module_fixture: Fixture) -> ModuleFiles:
    return module_fixture("appcell-templated-registrar")


def parse(files: ModuleFiles) -> Manifest:
    return AppCellAdapter().parse(files, version="1.0.0")


def action(manifest: Manifest, key: str) -> CellAction:
    assert manifest.cell is not None
    (found,) = [a for a in manifest.cell.actions if a.extra["key"] == key]
    return found


def edited(files: ModuleFiles, path: str, change: Callable[[Any], None]) -> ModuleFiles:
    document = json.loads(files[path])
    change(document)
    return ModuleFiles({**files, path: json.dumps(document).encode()})


def test_payload_templates_and_example_results_are_not_read_as_schemas(cell: ModuleFiles) -> None:
    # register.payload.json has a key "type" whose value is a placeholder, and domain.result.json
    # an example {"type": "A", "required": true}: read as JSON Schemas they were refused
    # ("'{{product.option.record_type}}' is not valid under any of the given schemas").
    manifest = parse(cell)
    create = action(manifest, "create")
    assert create.payload is None
    assert create.result is None
    template = create.extra["payload_template"]["pinned"]
    assert template["path"] == "schema/domain/register.payload.json"
    assert create.extra["result_example"]["pinned"]["path"] == "schema/domain/domain.result.json"
    update = action(manifest, "update")
    assert update.extra["payload_template"] == {
        "inline": {
            "domain": "{{product.option.domain}}",
            "type": "{{product.option.record_type|default('A')}}",
        }
    }
    roles = {item.path: item.role for item in manifest.files}
    assert roles["schema/domain/register.payload.json"] == "payload-template"
    assert roles["schema/domain/domain.result.json"] == "result-example"
    assert roles["schema/domain/register.schema.json"] == "schema"
    # The resource's schemas are what validates (the gateway's catalogue applies them).
    assert manifest.cell is not None
    (domain,) = [r for r in manifest.cell.resources if r.extra["name"] == "Domain"]
    assert domain.payload is not None
    assert domain.payload.pinned is not None
    assert domain.payload.pinned.path == "schema/domain/register.schema.json"


def test_a_plugin_document_declaring_schema_is_still_a_schema(cell: ModuleFiles) -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["domain"],
    }
    files = ModuleFiles({**cell, "schema/domain/domain.payload.json": json.dumps(schema).encode()})
    fetch = action(parse(files), "fetch")
    assert fetch.payload is not None
    assert fetch.payload.pinned is not None
    assert "payload_template" not in fetch.extra


def test_a_template_that_cannot_be_compiled_is_refused_where_it_is_named(
    cell: ModuleFiles,
) -> None:
    files = ModuleFiles(
        {
            **cell,
            "schema/domain/domain.payload.json": b'{"domain": "{{product.option.domain"}',
            "schema/domain/checkAvailability.payload.json": b'{"sld": "{{sld|reverse}}"}',
        }
    )
    with pytest.raises(UnresolvedReference) as raised:
        parse(files)
    found = {(i.pointer, i.detail.split(":")[0]) for i in raised.value.issues}
    assert (
        f"{PLUGIN}/fetch/0/$payload",
        "resolves to schema/domain/domain.payload.json, which is a payload template that cannot be compiled",
    ) in found
    details = " ".join(i.detail for i in raised.value.issues)
    assert "'{{' is not closed" in details
    assert "the filter 'reverse'" in details


def test_an_inline_template_that_is_not_an_object_is_refused(cell: ModuleFiles) -> None:
    def listed(document: Any) -> None:
        document["plugin"]["TemplatedRegistrar"]["actions"]["update"][0]["payload"] = ["x"]

    with pytest.raises(ManifestError) as raised:
        parse(edited(cell, "plugins.json", listed))
    (issue,) = raised.value.issues
    assert issue.pointer == f"{PLUGIN}/update/0/payload"
    assert "object of the payload's fields" in issue.detail


def test_templates_render_as_twig_renders_text() -> None:
    template = {
        "domain": "{{ product.option.domain }}",
        "numyears": "{{order.quantity|default(1)}}",
        "label": "{{customer.name|upper}} ({{customer.email}})",
        "flags": ["{{order.renew}}", "{{order.gift}}", "{{order.lines[0].sku}}"],
    }
    data = {
        "product": {"option": {"domain": "example.com"}},
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "order": {"renew": True, "gift": False, "lines": [{"sku": 7}]},
    }
    rendered = render(template, data)
    assert rendered.missing == []
    assert rendered.value == {
        "domain": "example.com",
        "numyears": "1",
        "label": "ADA (ada@example.com)",
        "flags": ["1", "", "7"],
    }


def test_missing_data_is_listed_not_sent_empty() -> None:
    rendered = render({"email": "{{customer.email}}", "n": "{{order.quantity|default(2)}}"}, {})
    assert [(m.pointer, m.path) for m in rendered.missing] == [("/email", "customer.email")]
    assert rendered.value["n"] == "2"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ({"a": "{{ }}"}, "data path"),
        ({"a": "{{x|default(nope)}}"}, "default() needs"),
        ({"a": "{{x|lower(1)}}"}, "takes no argument"),
        ({"a": {"b": "text {{x"}}, "not closed"),
    ],
)
def test_unreadable_templates_say_why(template: Any, problem: str) -> None:
    found = template_problem(template)
    assert found is not None
    assert problem in found.reason
