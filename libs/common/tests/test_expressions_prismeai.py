"""The prismeai dialect of expressions and templates (the automations runtime's): Prisme.ai's
condition operators (probe F4), ``{% … %}`` expressions and helper functions (F3), nested
placeholders (F7); and the default dialect, shared with the installer, flows and the AppCell
gateway, unchanged. Cases are look-alikes of Prisme.ai's documented examples and of public apps
(prismeai/template-prompt-store-datasource, prismeai/prismeai-mcp)."""

from __future__ import annotations

from typing import Any

import pytest

from modyard.common import expressions
from modyard.common.expressions import (
    MAX_PRODUCED_CHARS,
    PRISMEAI,
    ExpressionError,
    check_expression,
    evaluate_value,
)
from modyard.common.templates import TemplateError, check_template, is_template, render, render_text

SCOPE: dict[str, Any] = {
    "a": 2,
    "b": [1, 2],
    "city": "Toulouse",
    "email": "luke.skywalker@gmail.com",
    "obj": {"mickey": "house", "n": 1},
    "key": "mickey",
    "page": "2",
    "perPage": 10,
    "outputFormat": None,
    "item": 0,
    "counter": 1,
    "mydate": "2022-04-13T08:00:05.493Z",
    "filtered": [{"id": "x"}, {"id": "y"}],
    "filteredCurrentIndex": 1,
    "in": 5,
    "text": "a,b,c",
}


def value(text: str, scope: dict[str, Any] | None = None) -> Any:
    return evaluate_value(text, SCOPE if scope is None else scope, dialect=PRISMEAI)


# --- F4: conditions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # template-prompt-store endpoint.yml
        ("{{a}} >= 1 and {{a}} < 10", True),
        ("{{a}} >= 3 and {{a}} < 10", False),
        ("{{a}} >= 3 or {{a}} < 10", True),
        ("{{a}} >= 3 OR {{a}} > 10", False),
        ("{{a}} >= 1 AND true", True),
        ("true || false and false", True),  # Prisme.ai's own test
        ("(false || false) and true", False),
        ("not ({{a}} >= 18)", True),
        ("not {{a}}", False),
        ("!({{a}} >= 18)", True),
        ('{{city}} = "Toulouse"', True),
        ("{{a}} = 2", True),
        ('{{city}} equals "Toulouse"', True),
        ('{{city}} not equals "Toulouse"', False),
        ('"hello" matches "hel"', True),
        ('"bonjour" MATCHES "bon"', True),
        ('"hello" matches "^el"', False),  # a regular expression, as String.match makes one
        ('"hello" not matches "xyz"', True),
        ('"hello" matches ["xyz", "ll"]', True),
        ('{{email}} matches regex("luke|skywalker")', True),
        ('{{email}} matches regex("/LUKE/i")', True),
        ('{{email}} matches regex("^vader")', False),
        ("{{a}} in {{b}}", True),
        ("3 in {{b}}", False),
        ('"mickey" in {{obj}}', True),
        ("{{key}} not in {{obj}}", False),
        ('"x" not in "x,y"', False),
        ('"z" not in "x,y"', True),
        ("2 in '1,2,3'", True),
        ("isArray({{b}})", True),
        ("isArray({{obj}})", False),
        ("isObject({{obj}})", True),
        ("isObject({{b}})", False),
        ("isString({{city}})", True),
        ("isNumber({{a}})", True),
        ("isNumber({{page}})", False),
        ("date({{mydate}}).hour == 8", True),
        ('date("2022-04-13T08:00:05.493Z").minute', 0),
        ("{{a}} exists", True),
        ("{{outputFormat}} not exists", True),
        ("{{in}} > 1", True),  # a variable named like a word operator stays a variable
    ],
)
def test_prismeai_condition_operators(text: str, expected: Any) -> None:
    check_expression(text, names=SCOPE, dialect=PRISMEAI)
    assert value(text) == expected


def test_word_operators_keep_their_precedence() -> None:
    # and binds tighter than or; comparisons tighter than both; arithmetic tighter still.
    assert value("{{a}} + 1 = 3 and {{a}} * 2 == 4") is True
    assert value("false and false or true") is True
    assert value("not false and false") is False


# --- F3: {% %} expressions and functions ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{counter}} + 1", 2),
        ("({{page}} - 1) * {{perPage}}", 10),  # query strings are text: "2" - 1
        ('{{outputFormat}} || "verbose"', "verbose"),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ("1 / 4", 0.25),
        ("1 / 0", None),  # Infinity: JSON null
        ('"a" + 1', "a1"),
        ("1 + 2 * 3", 7),
        ("({{a}} * {{a}} + 10) / 2", 7),
        ("round(10.2)", 10),
        ("round(10.26, 1)", 10.3),
        ("round(2.5)", 3),
        ("ceil(10.1)", 11),
        ("floor(10.9)", 10),
        ('split("a,b,c", ",")', ["a", "b", "c"]),
        ('split({{text}}, ",")[1]', "b"),
        ('split({{text}}, ",").length', 3),
        ("join(['a', 'b'], ',')", "a,b"),
        ("replace('hello world', 'world', 'there')", "hello there"),
        ("replace('a a', 'a', 'b')", "b a"),
        ("slice({{b}}, 1)", [2]),
        ("slice('hello', 0, 2)", "he"),
        ("lower('AB') + upper('cd')", "abCD"),
        ("truncate('abcdef', 3, ' etc')", "abc etc"),
        ("truncate('abc', 3)", "abc"),
        ('json(\'{"foo": "bar"}\')', {"foo": "bar"}),
        ("json({{obj}})", '{"mickey":"house","n":1}'),
        ("date({{mydate}}).year", 2022),
        ("date({{mydate}}).month", 4),
        ("date({{mydate}}).day", 3),  # a Wednesday
        ("date({{mydate}}).ts", 1649836805493),
        ("date({{mydate}}).iso", "2022-04-13T08:00:05.493Z"),
        ('date("2023-03-31", "DD/MM/YYYY")', "31/03/2023"),
        ('date("not a date").hour', None),
        ('URL("https://www.google.fr/path/?foo=bar").hostname', "www.google.fr"),
        ('URL("https://www.google.fr/path/?foo=bar").searchParams', {"foo": "bar"}),
        ('URLSearchParams("key1=value1&k=2").asJSON', {"key1": "value1", "k": "2"}),
        ("URLSearchParams({{obj}}).asString", "mickey=house&n=1"),
        ("[1, {{a}}]", [1, 2]),
    ],
)
def test_prismeai_expressions_and_functions(text: str, expected: Any) -> None:
    check_expression(text, names=SCOPE, dialect=PRISMEAI)
    assert value(text) == expected


def test_rand_stays_in_its_range() -> None:
    for _ in range(50):
        assert 50 <= value("rand(50, 150)") < 150
        assert 0 <= value("rand()") < 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("foo(1)", "unknown function 'foo'"),
        ("sanitize('<b>x</b>')", "sanitize() is not supported"),
        ("deepmerge({{a}}, {{a}})", "deepmerge() is not supported"),
        ("round()", "round() takes 1 to 2 arguments"),
        ("split('a')", "split() takes 2 arguments"),
        ('date("2023-03-31", "LT", "fr")', "locale or a time zone is not supported"),
        ("date({{a}}).week", "date(...).week is not a field"),
        ("URLSearchParams('a=1')", "needs .asString or .asJSON"),
        ('"a" matches regex("(?<=a)b")', "not a regular expression this runtime can read"),
        ("{{a}}.{{", "where a value was expected"),
        ("{{ }}", "the placeholder {{ }} is empty"),
        ("{{a} + 1", "unexpected '}'"),
        ("a = = 1", "where a value was expected"),
    ],
)
def test_junk_is_refused_when_read(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        check_expression(text, names=SCOPE, dialect=PRISMEAI)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("split({{a}}, ',')", "bad split() arguments"),
        ("round({{city}})", "bad round() arguments"),
        ("json('{oops')", "not valid JSON"),
        ('URL("not a url").hostname', "is not an absolute URL"),
        ('"a" matches {{city}} + "("', "not a regular expression"),
    ],
)
def test_functions_given_wrong_values_fail_the_evaluation(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        value(text)
    assert reason in str(caught.value)


def test_produced_text_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions, "MAX_PRODUCED_CHARS", 100)
    big = "x" * 60
    with pytest.raises(ExpressionError, match="produces more than"):
        # Each + counts what it makes: 120 characters, over the 100 allowed.
        evaluate_value("{{s}} + {{s}}", {"s": big}, dialect=PRISMEAI)
    assert MAX_PRODUCED_CHARS == 8 * 1024 * 1024


def test_regular_expressions_run_in_linear_time() -> None:
    # A catastrophic pattern for a backtracking engine: RE2 answers at once.
    text = "a" * 50_000 + "!"
    assert value('{{t}} matches "^(a+)+$"', {"t": text}) is False


# --- F3/F7: templates -----------------------------------------------------------------------


def render_prismeai(template: Any, scope: dict[str, Any] | None = None) -> Any:
    return render(template, SCOPE if scope is None else scope, dialect=PRISMEAI)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% {{counter}} + 1 %}", 2),
        ("{% 1 + 1 %}", 2),
        ("prompt_{% {{item}} + 1 %}", "prompt_1"),  # template-prompt-store getPrompts.yml
        ('{% {{outputFormat}} || "verbose" %}', "verbose"),  # prismeai-mcp getRecord.yml
        ("{% ({{page}} - 1) * {{perPage}} %}", 10),  # template-prompt-store endpoint.yml
        ("{% '%}' %}", "%}"),
        ("{{obj[{{key}}]}}", "house"),  # docs "Working with Variables"
        ("{{filtered[{{filteredCurrentIndex}}].id}}", "y"),  # template-prompt-store
        ("{{obj.{{key}}}}", "house"),
        ("id: {{filtered[{{filteredCurrentIndex}}].id}}!", "id: y!"),
        ("{{obj[{{key}}]}} and {% {{a}} * 3 %}", "house and 6"),
        ("{{a}} {{b}}", "2 [1,2]"),
        ("no braces", "no braces"),
        ("50{% off", "50{% off"),  # nothing closes it: text, as on Prisme.ai
    ],
)
def test_prismeai_templates(template: str, expected: Any) -> None:
    check_template(template, names=SCOPE, dialect=PRISMEAI)
    assert render_prismeai(template) == expected
    assert is_template(template, dialect=PRISMEAI) is ("{{" in template or "%}" in template)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # A placeholder is a path on Prisme.ai: hyphens and digits after a dot are keys.
        ("{{headers.x-api-key}}", "k"),
        ("{{items.1.name}}", "n1"),
        ("{{items.0}}", {"name": "n0"}),
        ('{{headers["x-api-key"]}}', "k"),
        ("{% {{n.count}} - 1 %}", 2),  # spaced, or outside the braces: a subtraction
        ("{% {{n.count}}-1 %}", 2),
    ],
)
def test_placeholders_read_prismeai_paths(template: str, expected: Any) -> None:
    scope = {
        "headers": {"x-api-key": "k"},
        "items": [{"name": "n0"}, {"name": "n1"}],
        "n": {"count": 3},
    }
    check_template(template, names=scope, dialect=PRISMEAI)
    assert render(template, scope, dialect=PRISMEAI) == expected


def test_render_text_and_structures() -> None:
    assert render_text("{% 1 + 1 %}", SCOPE, dialect=PRISMEAI) == "2"
    assert render_prismeai({"ids": ["prompt_{% {{item}} + 1 %}"], "n": 3}) == {
        "ids": ["prompt_1"],
        "n": 3,
    }


@pytest.mark.parametrize(
    ("template", "pointer", "reason"),
    [
        ("{% 1 + %}", "/x", "the expression ends where a value was expected in {% 1 + %}"),
        ("{{obj[{{key}}]", "/x", "'{{' is not closed by '}}'"),
        ("{% nope(1) %}", "/x", "unknown function 'nope'"),
    ],
)
def test_prismeai_template_errors_name_the_place(template: str, pointer: str, reason: str) -> None:
    with pytest.raises(TemplateError) as caught:
        check_template({"x": template}, names=SCOPE, dialect=PRISMEAI)
    assert caught.value.pointer == pointer
    assert reason in caught.value.reason


# --- the default dialect is unchanged -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a >= 1 and a < 10",
        "a or b",
        "not (a)",
        "a = 2",
        "a matches 'x'",
        "a in b",
        "isArray(a)",
        "a + 1",
        "a * 2",
        "{{a}} == 2",
        "a[b]",
        "[1, 2]",
        "round(a)",
    ],
)
def test_the_default_dialect_still_refuses_prismeai_forms(text: str) -> None:
    # The installer, core.condition/core.transform and the AppCell gateway read the default.
    with pytest.raises(ExpressionError):
        check_expression(text, names=("a", "b"))


def test_default_templates_leave_prismeai_forms_alone() -> None:
    scope = {"a": 2, "key": "k", "obj": {"k": 1}}
    assert render("{% 1 + 1 %}", scope) == "{% 1 + 1 %}"
    assert is_template("{% 1 + 1 %}") is False
    with pytest.raises(TemplateError):
        check_template("{{obj[{{key}}]}}", names=scope)


@pytest.mark.parametrize(
    "text",
    [
        "a.b && !c",
        "a == 'x' || b != 2",
        "a['k'] === null",
        "utils.isEmpty(a)",
        "-a < 3",
        "(a)",
        "@a.b",
    ],
)
def test_valid_expressions_mean_the_same_in_both_dialects(text: str) -> None:
    scope = {"a": {"b": 1, "k": None}, "b": 2, "c": False}
    assert evaluate_value(text, scope) == evaluate_value(text, scope, dialect=PRISMEAI)
