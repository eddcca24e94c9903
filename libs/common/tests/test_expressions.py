"""The expression evaluator: grammar, JavaScript semantics, refusal of anything else, no eval;
conditions over ``config`` (the installer) and values over other names (the runtime)."""

from __future__ import annotations

import ast
import builtins
import inspect
import math
import random
from typing import Any

import pytest

from modyard.common import expressions
from modyard.common.expressions import (
    MAX_EXPRESSION_LENGTH,
    PLACEHOLDER_PATTERN,
    UNDEFINED,
    ExpressionError,
    check_expression,
    evaluate,
    evaluate_condition,
    evaluate_value,
    is_placeholder,
    to_json_value,
)

CONFIG: dict[str, Any] = {
    "flag": True,
    "off": False,
    "zero": 0,
    "empty": "",
    "name": "acme",
    "placeholder": "${API_URL}",
    "items": [1, 2, 3],
    "nested": {"deeper": {"value": 7, "on": True}},
    "Api key": "spaces",
    "nothing": None,
}


def value_of(text: str, config: dict[str, Any] | None = None) -> Any:
    return evaluate(text, CONFIG if config is None else config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("null", False),
        ("undefined", False),
        ("0", False),
        ("0.0", False),
        ("1", True),
        (".5", True),
        ("''", False),
        ('""', False),
        ("'a'", True),
        ("'false'", True),  # a non-empty string is truthy, whatever it says
    ],
)
def test_literals_follow_javascript_truthiness(text: str, expected: bool) -> None:
    assert evaluate_condition(text, {}, default=not expected) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@config.flag", True),
        ("@config.off", False),
        ("config.flag", True),
        ("config.zero", False),
        ("config.empty", False),
        ("config.nothing", False),
        ("config.name", True),
        ("config.nested.deeper.on", True),
        ("@config.nested.deeper.value", True),
        ("config['Api key']", True),
        ("config.items[0]", True),
        ("config", True),
        ("config.nested", True),  # objects are truthy, even empty ones
    ],
)
def test_references_read_the_configuration(text: str, expected: bool) -> None:
    assert evaluate_condition(text, CONFIG, default=not expected) is expected


@pytest.mark.parametrize(
    "text",
    [
        "config.missing",
        "config.missing.deeper.still",
        "config.flag.below_a_boolean",
        "config.nothing.below_null",
        "config.items[10]",
        "config.__class__",
        "config.__class__.__mro__",
        "config.name.__len__",
    ],
)
def test_missing_keys_are_undefined_and_falsy(text: str) -> None:
    assert value_of(text) is UNDEFINED
    assert evaluate_condition(text, CONFIG, default=True) is False


def test_empty_objects_and_lists_are_truthy_like_javascript() -> None:
    assert evaluate_condition("config.a", {"a": {}}, default=False) is True
    assert evaluate_condition("config.a", {"a": []}, default=False) is True


def test_length_of_lists_and_strings() -> None:
    assert value_of("config.items.length") == 3
    assert value_of("config.name.length") == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!config.flag", False),
        ("!config.missing", True),
        ("!!config.name", True),
        ("config.flag && config.name", "acme"),
        ("config.empty && config.name", ""),
        ("config.missing || 'fallback'", "fallback"),
        ("config.name || 'fallback'", "acme"),
        ("1 == '1'", True),
        ("null == undefined", True),
        ("null == 0", False),
        ("true == 1", True),
        ("'' == 0", True),
        ("config.items == '1,2,3'", True),
        ("1 === '1'", False),
        ("1 === 1.0", True),
        ("null === undefined", False),
        ("config.name === 'acme'", True),
        ("config.nested === config.nested", True),
        ("1 != '1'", False),
        ("1 !== '1'", True),
        ("config.name !== 'other'", True),
        ("2 < 10", True),
        ("'2' < '10'", False),  # two strings compare as text
        ("'2' < 10", True),  # otherwise as numbers
        ("config.missing < 1", False),  # NaN compares false
        ("null < 1", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("'b' > 'a'", True),
        ("-1 < 0", True),
        ("-config.nested.deeper.value === -7", True),
        ("1e3 == 1000", True),
        ("'a\\'b' === \"a'b\"", True),
    ],
)
def test_operators_follow_javascript(text: str, expected: Any) -> None:
    assert value_of(text) == expected
    assert type(value_of(text)) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true || false && false", True),  # && binds tighter than ||
        ("(true || false) && false", False),
        ("!false && false", False),  # ! binds tighter than &&
        ("!(false && false)", True),
        ("1 < 2 == true", True),  # relations bind tighter than equality
        ("0 == 1 < 0", True),  # 0 == (1 < 0), not (0 == 1) < 0
        ("3 > 2 > 1", False),  # left to right: (3 > 2) > 1 is true > 1
        ("false == false == true", True),
        ("config.flag && config.zero || config.name === 'acme'", True),
    ],
)
def test_precedence_and_associativity(text: str, expected: bool) -> None:
    assert value_of(text) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${API_URL}", True),
        ("${A}", True),
        ("prefix ${A}", False),
        ("${A} suffix", False),
        ("${}", False),
        ("$API_URL", False),
        (["${A}"], False),
        (None, False),
    ],
)
def test_is_placeholder(value: Any, expected: bool) -> None:
    assert (
        evaluate_condition("utils.isPlaceHolder(config.v)", {"v": value}, default=False) is expected
    )


def test_the_documented_slingr_expression() -> None:
    text = "config.otherField && utils.isPlaceHolder(config.anotherValue)"
    assert evaluate_condition(text, {"otherField": True, "anotherValue": "${X}"}, default=False)
    assert not evaluate_condition(text, {"otherField": True, "anotherValue": "x"}, default=False)
    assert not evaluate_condition(text, {"otherField": False, "anotherValue": "${X}"}, default=True)
    assert not evaluate_condition(text, {}, default=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ([], True), ({}, True), ("x", False), (0, False), ([0], False)],
)
def test_is_empty(value: Any, expected: bool) -> None:
    assert evaluate_condition("utils.isEmpty(config.v)", {"v": value}, default=False) is expected
    assert evaluate_condition("utils.isEmpty(config.absent)", {}, default=False) is True


@pytest.mark.parametrize("default", [True, False])
def test_unset_conditions_give_the_default(default: bool) -> None:
    assert evaluate_condition(None, CONFIG, default=default) is default
    assert evaluate_condition("   ", CONFIG, default=default) is default


def test_booleans_and_boolean_strings_are_taken_as_they_are() -> None:
    assert evaluate_condition(True, {}, default=False) is True
    assert evaluate_condition(False, {}, default=True) is False
    assert evaluate_condition("true", {}, default=False) is True
    assert evaluate_condition(" false ", {}, default=True) is False


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("__import__('os')", 0),
        ("os.system('ls')", 0),
        ("config.a; x", 8),
        ("(config.a", 9),
        ("config.a)", 8),
        ("((config.a)", 11),
        ("config.a = 1", 9),
        ("config.a + 1", 9),
        ("config.a ? 1 : 2", 9),
        ("utils.system('ls')", 6),
        ("utils", 0),
        ("config.constructor('x')", 18),
        ("config[x]", 7),
        ("config.", 7),
        ("@other.x", 1),
        ("1 2", 2),
        ("'never closed", 0),
        ("utils.isPlaceHolder()", 20),
        ("utils.isPlaceHolder(1, 2)", 21),
        ("lambda: 1", 0),
        ("config.a &&", 11),
        ("config.a & config.b", 9),
        ("", 0),
    ],
)
def test_junk_is_refused_with_its_position(text: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        check_expression(text)
    assert caught.value.position == position
    assert f"at position {position}" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ExpressionError):
        evaluate_condition(text or "()", {}, default=False)


def test_check_expression_accepts_what_evaluates() -> None:
    for text in ("true", "@config.x", "config.a.b && !utils.isEmpty(config.c) || 1 >= 2"):
        check_expression(text)


def test_deep_nesting_is_an_expression_error_not_a_crash() -> None:
    with pytest.raises(ExpressionError, match="nests deeper"):
        check_expression("(" * 200 + "true" + ")" * 200)
    with pytest.raises(ExpressionError, match="nests deeper"):
        check_expression("!" * 200 + "true")
    check_expression("(" * 10 + "!!true" + ")" * 10)


def test_overlong_conditions_are_refused() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        check_expression("config.a || " * (MAX_EXPRESSION_LENGTH // 10) + "true")


def test_parsed_conditions_are_cached() -> None:
    expressions._parse.cache_clear()
    evaluate_condition("config.flag && config.name", CONFIG, default=False)
    evaluate_condition("config.flag && config.name", {"flag": False}, default=True)
    info = expressions._parse.cache_info()
    assert (info.misses, info.hits) == (1, 1)


# --- property-style: random conditions against an independent oracle, with eval made to explode --

_BOOLEANS = {f"b{index}": index % 3 == 0 for index in range(6)}
_NUMBERS = {f"n{index}": index * 7 % 5 for index in range(6)}
# Binding strength of each node kind, as the grammar fixes it (atoms bind tightest).
_STRENGTH = {"or": 1, "and": 2, "eq": 3, "lt": 4, "not": 5, "atom": 6}


def _random_boolean(rng: random.Random, depth: int) -> tuple[Any, ...]:
    if depth == 0 or rng.random() < 0.2:
        if rng.random() < 0.5:
            return ("atom", rng.choice(["true", "false"]), None)
        name = rng.choice(sorted(_BOOLEANS))
        return ("atom", rng.choice(["config.", "@config."]) + name, _BOOLEANS[name])
    kind = rng.choice(["or", "and", "eq", "lt", "not"])
    if kind == "not":
        return ("not", _random_boolean(rng, depth - 1))
    if kind == "lt":
        return ("lt", _random_number(rng), _random_number(rng))
    return (kind, _random_boolean(rng, depth - 1), _random_boolean(rng, depth - 1))


def _random_number(rng: random.Random) -> tuple[Any, ...]:
    if rng.random() < 0.5:
        number = rng.randint(0, 5)
        return ("atom", str(number), number)
    name = rng.choice(sorted(_NUMBERS))
    return ("atom", f"config.{name}", _NUMBERS[name])


def _oracle(node: tuple[Any, ...]) -> Any:
    kind = node[0]
    if kind == "atom":
        return {"true": True, "false": False}.get(node[1], node[2])
    if kind == "not":
        return not _oracle(node[1])
    left, right = _oracle(node[1]), _oracle(node[2])
    if kind == "or":
        return left or right
    if kind == "and":
        return left and right
    if kind == "eq":
        return left is right
    return left < right


def _render(node: tuple[Any, ...], rng: random.Random) -> str:
    """The condition's text with only the parentheses the precedence needs, plus random ones."""
    kind = node[0]
    if kind == "atom":
        text = str(node[1])
    elif kind == "not":
        text = "!" + _wrap(node[1], _STRENGTH["not"] - 1, rng)
    else:
        operator = {"or": "||", "and": "&&", "eq": "===", "lt": "<"}[kind]
        strength = _STRENGTH[kind]
        text = f"{_wrap(node[1], strength - 1, rng)} {operator} {_wrap(node[2], strength, rng)}"
    return f"({text})" if rng.random() < 0.1 else text


def _wrap(node: tuple[Any, ...], weaker_than: int, rng: random.Random) -> str:
    text = _render(node, rng)
    return f"({text})" if _STRENGTH[node[0]] <= weaker_than else text


def test_random_conditions_agree_with_an_oracle_and_never_use_eval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the evaluator must not hand text to Python")

    expressions._parse.cache_clear()
    config = {**_BOOLEANS, **_NUMBERS}
    rng = random.Random(20240531)
    cases = [_random_boolean(rng, depth=rng.randint(1, 5)) for _ in range(600)]
    texts = [_render(tree, rng) for tree in cases]
    with monkeypatch.context() as patch:
        for name in ("eval", "exec", "compile", "__import__"):
            patch.setattr(builtins, name, explode)
        results = [evaluate_condition(text, config, default=False) for text in texts]
    # Compared once the builtins are back, so that pytest can report a difference.
    wrong = [
        (text, result)
        for text, result, tree in zip(texts, results, cases, strict=True)
        if result is not bool(_oracle(tree))
    ]
    assert wrong == []


def test_the_evaluator_source_never_calls_python_eval() -> None:
    # Parsing our own module's source (not user text) to list what it calls.
    tree = ast.parse(inspect.getsource(expressions))
    calls = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    builtins_called = {func.id for func in calls if isinstance(func, ast.Name)}
    methods_called = {func.attr for func in calls if isinstance(func, ast.Attribute)}
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert builtins_called.isdisjoint({"eval", "exec", "compile", "__import__"})
    assert "literal_eval" not in methods_called
    assert "ast" not in imported


# --- names other than config, and values rather than conditions (the runtime's templates) ---------

SCOPE: dict[str, Any] = {
    "payload": {"total": 150, "items": [{"sku": "a"}, {"sku": "b"}], "name": "acme", "n": 3},
    "flow": {"id": "f1"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("payload.total", 150),
        ("payload.items", [{"sku": "a"}, {"sku": "b"}]),
        ("payload.items[1].sku", "b"),
        ("payload['name']", "acme"),
        ("payload.items.length", 2),
        ("payload.total > 100", True),
        ("payload.total > 100 && flow.id === 'f1'", True),
        ("payload.nickname || payload.name", "acme"),
        ("-payload.n", -3),
        ("@payload.name", "acme"),
        ("'text'", "text"),
        ("null", None),
    ],
)
def test_evaluate_value_gives_values_of_any_type_over_the_scope_names(
    text: str, expected: Any
) -> None:
    value = evaluate_value(text, SCOPE)
    assert value == expected
    assert type(value) is type(expected)


def test_evaluate_value_returns_the_scope_object_itself() -> None:
    assert evaluate_value("payload.items", SCOPE) is SCOPE["payload"]["items"]


@pytest.mark.parametrize(
    "text", ["payload.missing", "payload.items[5].sku", "flow.id.deeper", "-payload.name"]
)
def test_evaluate_value_turns_undefined_and_nan_into_none(text: str) -> None:
    assert evaluate_value(text, SCOPE) is None


def test_negating_an_integer_keeps_an_integer() -> None:
    assert type(evaluate_value("-payload.n", SCOPE)) is int
    assert evaluate_value("-payload.total", {"payload": {"total": 2.5}}) == -2.5


def test_names_outside_the_scope_are_refused_with_their_position() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_value("payload.total > config.limit", SCOPE)
    assert caught.value.position == 16
    assert "unknown name 'config'" in str(caught.value)


def test_the_installer_default_names_only_allow_config() -> None:
    with pytest.raises(ExpressionError) as caught:
        check_expression("payload.total > 1")
    assert caught.value.position == 0
    check_expression("payload.total > 1", names=["payload"])


def test_at_accepts_any_allowed_name() -> None:
    check_expression("@payload.x", names=["payload"])
    with pytest.raises(ExpressionError) as caught:
        check_expression("@config.x", names=["payload"])
    assert caught.value.position == 1


@pytest.mark.parametrize("name", ["utils", "true", "undefined", "null", "not a name", "1x", ""])
def test_reserved_or_malformed_scope_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cannot be a name"):
        evaluate_value("1", {name: 1})


def test_an_empty_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one name"):
        evaluate_value("1", {})


def test_the_parse_cache_does_not_depend_on_the_order_of_scope_keys() -> None:
    expressions._parse.cache_clear()
    evaluate_value("a.x", {"a": {}, "b": {}})
    evaluate_value("a.x", {"b": {}, "a": {}})
    assert expressions._parse.cache_info().misses == 1


def test_digit_like_unicode_keys_do_not_crash_the_evaluation() -> None:
    # "²".isdigit() is true but int("²") raises: evaluating must still never raise.
    assert value_of("config.items['²']") is UNDEFINED


def test_to_json_value_maps_what_json_cannot_carry_to_none() -> None:
    assert to_json_value(UNDEFINED) is None
    assert to_json_value(math.nan) is None
    assert to_json_value(-math.inf) is None
    assert to_json_value(0.5) == 0.5
    assert to_json_value([UNDEFINED]) == [UNDEFINED]  # only the top value: nothing else makes one


def test_the_placeholder_pattern_matches_what_slingr_modules_use() -> None:
    assert is_placeholder("${API_URL}")
    assert not is_placeholder("${}")
    assert PLACEHOLDER_PATTERN == r"^\$\{[^}]+\}$"
