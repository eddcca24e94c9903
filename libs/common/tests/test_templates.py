"""Templates: typed single placeholders, text interpolation, nesting, errors with their place."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from modyard.common import templates
from modyard.common.templates import (
    MAX_DEPTH,
    TemplateError,
    check_template,
    is_template,
    render,
    render_text,
)

#: The runtime's names (a caller's choice: the engine itself knows none).
SCOPE_NAMES = ("payload", "properties", "config", "flow", "message")

SCOPE: dict[str, Any] = {
    "payload": {
        "total": 150,
        "price": 2.5,
        "paid": True,
        "customer": {"name": "Ada", "tags": ["vip"]},
        "items": [{"sku": "a"}, {"sku": "b"}],
        "note": None,
    },
    "properties": {"currency": "EUR"},
    "config": {"region": "eu"},
    "flow": {"id": "flow-1", "workspace": "acme"},
    "message": {"id": "msg-9"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ payload.total }}", 150),
        ("{{payload.price}}", 2.5),
        ("{{ payload.paid }}", True),
        ("{{ payload.customer }}", {"name": "Ada", "tags": ["vip"]}),
        ("{{ payload.items }}", [{"sku": "a"}, {"sku": "b"}]),
        ("{{ payload.note }}", None),
        ("{{ payload.total > 100 }}", True),
        ("{{ 'text' }}", "text"),
    ],
)
def test_a_lone_placeholder_keeps_the_value_type(template: str, expected: Any) -> None:
    value = render(template, SCOPE)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Order for {{ payload.customer.name }}", "Order for Ada"),
        ("{{ payload.total }} {{ properties.currency }}", "150 EUR"),
        ("price={{ payload.price }};paid={{ payload.paid }}", "price=2.5;paid=true"),
        ("tags: {{ payload.customer.tags }}", 'tags: ["vip"]'),
        ("c={{ payload.customer }}", 'c={"name":"Ada","tags":["vip"]}'),
        ("[{{ payload.missing }}][{{ payload.note }}]", "[][]"),
        (" {{ payload.total }}", " 150"),  # not exactly one placeholder: text
        ("{{ flow.workspace }}/{{ flow.id }}/{{ message.id }}", "acme/flow-1/msg-9"),
        ("{{ config.region }}", "eu"),
        ("no placeholders }} here", "no placeholders }} here"),
        ("{{ '{{' }} literal", "{{ literal"),
        ("{{ '}}' }}!", "}}!"),
        ("", ""),
    ],
)
def test_embedded_placeholders_interpolate_as_text(template: str, expected: str) -> None:
    assert render(template, SCOPE) == expected


def test_nested_structures_render_throughout_and_keys_stay_literal() -> None:
    template = {
        "{{ payload.total }}": "{{ payload.total }}",
        "customer": {
            "name": "{{ payload.customer.name }}",
            "first_tag": "{{ payload.customer.tags[0] }}",
        },
        "skus": ["{{ payload.items[0].sku }}", "{{ payload.items[1].sku }}", 7, None, False],
        "count": "{{ payload.items.length }}",
    }
    assert render(template, SCOPE) == {
        "{{ payload.total }}": 150,
        "customer": {"name": "Ada", "first_tag": "vip"},
        "skus": ["a", "b", 7, None, False],
        "count": 2,
    }


def test_rendering_does_not_modify_the_template() -> None:
    template = {"a": ["{{ payload.total }}"]}
    render(template, SCOPE)
    assert template == {"a": ["{{ payload.total }}"]}


def test_missing_keys_give_none_alone_and_nothing_in_text() -> None:
    assert render("{{ payload.nope.deeper }}", SCOPE) is None
    assert render({"x": "{{ payload.nope }}"}, SCOPE) == {"x": None}
    assert render("a{{ payload.nope }}b", SCOPE) == "ab"


def test_render_text_makes_text_even_of_a_lone_placeholder() -> None:
    assert render_text("{{ payload.total }}", SCOPE) == "150"
    assert render_text("{{ payload.nope }}", SCOPE) == ""
    assert render_text("plain", SCOPE) == "plain"


@pytest.mark.parametrize(
    ("template", "pointer", "position", "reason"),
    [
        ("{{ os.system('ls') }}", "", 3, "unknown name 'os'"),
        ({"a": {"b": ["ok", "x {{ payload.total + 1 }}"]}}, "/a/b/1", 19, "unexpected '+'"),
        ({"k": "before {{ payload.total"}, "/k", 7, "not closed"),
        ({"k": "{{ }}"}, "/k", 2, "empty"),
        ({"k": "{{ 'open }}"}, "/k", 0, "not closed"),
        ({"a/b~c": "{{ __import__ }}"}, "/a~1b~0c", 3, "unknown name '__import__'"),
        ("{{ payload.total; 1 }}", "", 16, "statements are not allowed"),
        ("{{ payload.x = 1 }}", "", 13, "assignments are not allowed"),
    ],
)
def test_errors_name_the_string_and_the_position(
    template: Any, pointer: str, position: int, reason: str
) -> None:
    for attempt in (
        lambda: render(template, SCOPE),
        lambda: check_template(template, names=SCOPE_NAMES),
    ):
        with pytest.raises(TemplateError) as caught:
            attempt()
        assert caught.value.pointer == pointer
        assert caught.value.position == position
        assert reason in str(caught.value)
        assert isinstance(caught.value, ValueError)


def test_check_template_prefixes_the_pointer() -> None:
    with pytest.raises(TemplateError) as caught:
        check_template({"x": "{{ nope }}"}, pointer="/mapping", names=SCOPE_NAMES)
    assert caught.value.pointer == "/mapping/x"


def test_check_template_accepts_every_scope_name_and_only_those() -> None:
    check_template({name: f"{{{{ {name}.anything }}}}" for name in SCOPE_NAMES}, names=SCOPE_NAMES)
    check_template("{{ other.x }}", names=["other"])
    with pytest.raises(TemplateError, match="unknown name 'other'"):
        check_template("{{ other.x }}", names=SCOPE_NAMES)


def test_names_of_the_scope_are_what_templates_may_use() -> None:
    with pytest.raises(TemplateError, match="unknown name 'payload'"):
        render("{{ payload.x }}", {"data": {}})
    assert render("{{ data.x }}", {"data": {"x": 1}}) == 1


def test_too_deep_templates_are_refused() -> None:
    template: Any = "{{ payload.total }}"
    for _ in range(MAX_DEPTH + 1):
        template = [template]
    with pytest.raises(TemplateError, match="nests deeper"):
        check_template(template, names=SCOPE_NAMES)
    with pytest.raises(TemplateError, match="nests deeper"):
        render(template, SCOPE)


def test_interpolated_text_is_capped_per_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "MAX_RENDERED_CHARS", 50)
    scope = {"payload": "x" * 20}
    assert render(["a{{ payload }}", "b{{ payload }}"], scope) == ["a" + "x" * 20, "b" + "x" * 20]
    with pytest.raises(TemplateError, match="longer than 50"):
        render(["a{{ payload }}", "b{{ payload }}", "c{{ payload }}"], scope)
    # A lone placeholder hands the value over without copying: it costs nothing.
    assert render(["{{ payload }}"] * 10, scope) == ["x" * 20] * 10


def test_is_template_tells_templates_from_plain_text() -> None:
    assert is_template("https://{{ config.host }}/x")
    assert not is_template("https://example.com/x")
    assert not is_template("broken {{ ")


def test_rendering_never_hands_text_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("templates must not reach eval")

    # Texts never rendered before, so that the parse caches cannot hide a call.
    template = {"a": "{{ payload.total >= 149 && !payload.nope }}", "b": "n={{ -payload.total }}"}
    with monkeypatch.context() as patch:
        for name in ("eval", "exec", "compile", "__import__"):
            patch.setattr(builtins, name, explode)
        result = render(template, SCOPE)
    assert result == {"a": True, "b": "n=-150"}


def test_a_caller_may_evaluate_placeholders_itself() -> None:
    # The AppCell gateway's postpayload: its own lookup, the same text and typing rules.
    seen: list[str] = []

    def evaluate(text: str) -> Any:
        seen.append(text)
        return {"n": 3} if text.strip() == "result" else None

    template = {"whole": "{{ result }}", "text": "n={{result}}, none=[{{x}}]", "k": 1}
    rendered = render(template, {}, evaluate=evaluate)
    assert rendered == {"whole": {"n": 3}, "text": 'n={"n":3}, none=[]', "k": 1}
    assert seen == [" result ", "result", "x"]
