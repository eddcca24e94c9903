"""Safe evaluation of the small JavaScript-like expressions users and module authors write.

Two callers share this evaluator. The installer reads the conditions configuration fields carry
(Slingr ``required``/``visibility``): ``true``/``false`` (a boolean, or the strings ``"true"``/
``"false"`` Slingr writes too), a reference like ``@config.otherField``, or an expression such as
``config.otherField && utils.isPlaceHolder(config.anotherValue)``. The runtime evaluates the
expressions of flow templates and conditions (``payload.total > 100``) over the names
``payload``, ``properties``, ``config``, ``flow`` and ``message``. Module documents and flows are
written by third parties, so the text is never handed to Python (no ``eval``, no
``ast.literal_eval``): a tokenizer and a Pratt parser below accept exactly this grammar and
nothing else.

Grammar, loosest binding first (all binary operators are left-associative)::

    expression := or
    or         := and ( "||" and )*
    and        := equality ( "&&" equality )*
    equality   := relation ( ("===" | "!==" | "==" | "!=") relation )*
    relation   := unary ( ("<" | "<=" | ">" | ">=") unary )*
    unary      := ("!" | "-") unary | primary
    primary    := literal | reference | call | "(" expression ")"
    literal    := true | false | null | undefined | number | 'string' | "string"
    reference  := ["@"] NAME ( "." name | "[" (string | integer) "]" )*
    call       := "utils." ("isPlaceHolder" | "isEmpty") "(" expression ")"

``NAME`` is one of the names the caller allows: only ``config`` for the installer's conditions
(the default), the keys of the scope for :func:`evaluate_value`. There is no arithmetic beyond
negation, no calls other than the two ``utils`` functions, no assignment and no statements.

Values follow JavaScript: a reference to a key that does not exist (at any depth, or below a
value that is not an object) is ``undefined``; ``&&``/``||`` short-circuit and yield an operand;
``==`` and ``<`` coerce like JavaScript, ``===`` does not; a condition's value is read with
JavaScript truthiness (``undefined``, ``null``, ``false``, ``0``, ``NaN`` and ``""`` are false,
everything else — ``[]`` and ``{}`` too — is true). Lists have ``.length``, like strings.
:func:`evaluate_value` hands back JSON values instead: ``undefined``, ``NaN`` and infinities
become ``None``, as ``JSON.stringify`` makes them ``null``.

``utils.isPlaceHolder(x)`` is true when ``x`` is a string ``${NAME}`` (Slingr's environment
placeholders); ``utils.isEmpty(x)`` when ``x`` is undefined, null, ``""``, ``[]`` or ``{}``.

**The prismeai dialect** (``dialect="prismeai"``; only the automations runtime asks for it, so
the installer, flows and the AppCell gateway keep the grammar above unchanged) is a strict
superset for Prisme.ai's conditions and ``{% … %}`` expressions (docs "Expression Syntax",
prismeai/prismeai-mcp ``llmDoc/01-automations.md``; its evaluator, the runtime's
``deps/condition-eval``). Every text the grammar above reads means the same in it; it adds:

- ``{{ expression }}`` as a group (``{{a}} >= 1``), and computed keys ``obj[{{key}}]``,
  ``list[{{i}} + 1]``, ``obj.{{key}}`` (Prisme.ai resolves the inner placeholder first);
- ``and``/``or`` (any case) for ``&&``/``||``, ``not x`` for ``!x`` (unless a variable is named
  ``not``), ``=`` and ``equals`` for ``==``, ``not equals``;
- ``a matches b`` (``b`` a regular expression, as JavaScript's ``String.match`` makes one of a
  string; or ``regex("…")``; or a list, any item), ``not matches``; ``a in b`` (``b`` a list, an
  object's keys, or ``"x,y"`` text), ``not in``; postfix ``exists``/``not exists``;
- arithmetic ``+ - * / %`` (JavaScript's: ``+`` joins when a side is text), binding tighter than
  comparisons, ``*`` tighter than ``+``; list literals ``[1, 'a']``; ``.field``/``[key]`` after a
  call or a parenthesis;
- the functions of :mod:`modyard.common.expression_functions` (``isArray``, ``round``,
  ``split``, ``date(…).hour``…). An unknown function is refused when the expression is read.

Word operators are operators only where an operator may stand, so a variable named ``in`` or
``matches`` still reads as a variable. Evaluation keeps the budgets below, and one evaluation
produces at most :data:`MAX_PRODUCED_CHARS` characters of text; a function given values it
cannot use raises :class:`ExpressionError` while evaluating (Prisme.ai fails the run too).

Anything else (another name such as ``__import__``, ``;``, an assignment, an unbalanced
parenthesis) raises :class:`ExpressionError`, a ``ValueError`` that says what was expected and at
which character: the installer answers it with a 4xx when a module is published or configured,
the runtime when a flow is started. Evaluating a parsed expression never raises. Parsed
expressions are cached by text and allowed names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

#: A Slingr environment placeholder, ``${NAME}``: a value set per environment of the app,
#: allowed where the field says so. The one definition (the Slingr adapter imports it).
PLACEHOLDER_PATTERN: Final = r"^\$\{[^}]+\}$"
#: The names the installer's conditions may use (the default of :func:`check_expression`).
CONFIG_NAMES: Final = ("config",)
#: Longer expressions are refused: real ones are a few references long.
MAX_EXPRESSION_LENGTH: Final = 2000
#: Deeper nesting is refused (it also keeps the recursive parser far from Python's stack limit).
MAX_NESTING: Final = 32
#: List items one :func:`evaluate_value` may turn into text (``payload.items == 'x'`` joins the
#: list, as JavaScript does). An expression is at most 2,000 characters, but each of its ~100
#: comparisons could join a 200,000-item webhook body: 12 s of the event loop without this.
MAX_COERCED_ITEMS: Final = 100_000

#: The expression dialects. ``modyard`` (the default) is the grammar above, shared by the
#: installer's conditions, flows' ``core.condition``/``core.transform`` and the AppCell gateway.
#: ``prismeai`` is a strict superset used only by the automations runtime (see below).
Dialect = Literal["modyard", "prismeai"]
MODYARD: Final = "modyard"
PRISMEAI: Final = "prismeai"
#: Characters one Prisme.ai evaluation may produce as text (``+`` on strings, ``join``,
#: ``json``, ``replace``…): a loop doubling a string must not fill the memory.
MAX_PRODUCED_CHARS: Final = 8 * 1024 * 1024

_PLACEHOLDER = re.compile(PLACEHOLDER_PATTERN)
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_DIGITS = re.compile(r"[0-9]+")
_NAME_END = re.compile(r"[A-Za-z0-9_$]")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# JavaScript's StringToNumber for decimal text (Python's float() also takes "inf", "1_0", …).
# Unambiguous on purpose: each digit can be read one way only, so a failing match gives back at
# most one digit at a time and costs time linear in the text. The former ``[0-9]+\.?[0-9]*``
# could split a run of digits between its two halves in every way: 40,000 digits followed by a
# letter (a webhook body compared with ``==``) took ~37 s of the runtime's event loop.
_JS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_JS_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
# Longest first, so that "===" is not read as "==" followed by "=".
_PUNCTUATION = (
    "===", "!==", "==", "!=", "<=", ">=", "&&", "||",
    "!", "<", ">", "(", ")", "[", "]", ".", "@", "-", ",",
)  # fmt: skip
# Prisme.ai adds "{{ }}" groups, arithmetic and "=" (equality, not assignment).
_PRISMEAI_PUNCTUATION = (
    "===", "!==", "{{", "}}", "==", "!=", "<=", ">=", "&&", "||",
    "!", "<", ">", "(", ")", "[", "]", ".", "@", "-", ",", "+", "*", "/", "%", "=",
)  # fmt: skip
_BINDING_POWER: Final = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "===": 3,
    "!==": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
}
_PRISMEAI_BINDING_POWER: Final = {
    **_BINDING_POWER,
    "=": 3,
    "matches": 3,
    "not matches": 3,
    "in": 3,
    "not in": 3,
    "not equals": 3,
    "exists": 3,
    "not exists": 3,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}
# Prisme.ai's word operators (case-insensitive there too) and what they mean here.
_WORD_OPERATORS: Final = {"and": "&&", "or": "||", "equals": "==", "matches": "matches", "in": "in"}
_NEGATABLE: Final = ("in", "matches", "equals", "exists")
_KEYWORDS: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}
_FUNCTIONS: Final = ("isPlaceHolder", "isEmpty")
#: Words that can never be a caller's name: they already mean something in the grammar.
RESERVED_NAMES: Final = frozenset({*_KEYWORDS, "undefined", "utils"})
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _what_is_allowed(names: tuple[str, ...], dialect: Dialect = MODYARD) -> str:
    references = ", ".join(f"{name}.<field>" for name in names)
    if dialect == PRISMEAI:
        return (
            f"an expression uses {{{{name}}}} or {references}, true, false, null, numbers, "
            "'strings', [lists], ! not && and || or == = != === !== < <= > >= + - * / %, "
            "matches, in, not in, exists, parentheses and the functions of docs/automations.md"
        )
    return (
        f"an expression uses {references}, @{names[0]}.<field>, true, false, null, numbers, "
        "'strings', ! && || == != === !== < <= > >=, parentheses and "
        "utils.isPlaceHolder(...)/utils.isEmpty(...)"
    )


class ExpressionError(ValueError):
    """An expression that is not in the grammar; ``position`` is the 0-based character offset."""

    def __init__(self, reason: str, *, text: str, position: int) -> None:
        shown = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"{reason} at position {position} of {shown!r}")
        self.reason = reason
        self.text = text
        self.position = position


class _Undefined:
    """JavaScript's ``undefined``: what a reference to a missing key yields."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()
#: What :func:`modyard.common.expression_functions.check_call` sees for an argument known only
#: when the expression runs.
DYNAMIC: Final = object()


# --- JavaScript semantics -------------------------------------------------------------------------


def truthy(value: Any) -> bool:
    """JavaScript's ToBoolean."""
    if value is UNDEFINED or value is None or value is False:
        return False
    if _is_number(value):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True  # true, and every object or array, even empty ones


class EvaluationProblem(Exception):
    """A Prisme.ai function given what it cannot use (``split(3, ",")``), raised while evaluating;
    :func:`evaluate_value` turns it into an :class:`ExpressionError`, as Prisme.ai fails the run
    with ``InvalidExpressionSyntax``."""


class _CoercionBudget(Exception):
    """Raised inside an evaluation past :data:`MAX_COERCED_ITEMS`; :func:`evaluate_value` turns
    it into an :class:`ExpressionError`."""


# Items left to coerce in the current evaluate_value (None: no budget, the installer's calls).
_COERCION_LEFT: ContextVar[list[int] | None] = ContextVar("coercion_left", default=None)


# Characters left to produce in the current evaluate_value (None: no budget).
_CHARS_LEFT: ContextVar[list[int] | None] = ContextVar("chars_left", default=None)


def spend_chars(count: int) -> None:
    """Count ``count`` characters produced by the current evaluation against
    :data:`MAX_PRODUCED_CHARS` (Prisme.ai's string operators and functions call it)."""
    left = _CHARS_LEFT.get()
    if left is not None:
        left[0] -= count
        if left[0] < 0:
            raise EvaluationProblem(
                f"the expression produces more than {MAX_PRODUCED_CHARS} characters of text"
            )


def _spend_coercion(value: list[Any] | tuple[Any, ...]) -> None:
    left = _COERCION_LEFT.get()
    if left is not None:
        left[0] -= len(value)
        if left[0] < 0:
            raise _CoercionBudget


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def to_string(value: Any) -> str:
    """JavaScript's ToString."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return str(int(number)) if number.is_integer() and abs(number) < 1e21 else repr(number)
    if isinstance(value, str):
        return value
    return str(_to_primitive(value))


def _to_primitive(value: Any) -> Any:
    if isinstance(value, list | tuple):
        _spend_coercion(value)
        return ",".join(
            "" if item is None or item is UNDEFINED else to_string(item) for item in value
        )
    if isinstance(value, Mapping):
        return "[object Object]"
    return value


def _to_number(value: Any) -> float:
    if value is UNDEFINED:
        return math.nan
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        if text in ("Infinity", "+Infinity", "-Infinity"):
            return -math.inf if text.startswith("-") else math.inf
        if _JS_HEX.fullmatch(text):
            return float(int(text, 16))
        return float(text) if _JS_DECIMAL.fullmatch(text) else math.nan
    return _to_number(_to_primitive(value))


def _strict_equals(left: Any, right: Any) -> bool:
    kind = _kind(left)
    if kind != _kind(right):
        return False
    if kind == "object":
        return left is right  # objects are equal only to themselves, as in JavaScript
    return bool(left == right)  # numbers: NaN != NaN holds for Python floats too


def _loose_equals(left: Any, right: Any) -> bool:
    """JavaScript's IsLooselyEqual (ECMA-262 7.2.14)."""
    left_kind, right_kind = _kind(left), _kind(right)
    if left_kind == right_kind:
        return _strict_equals(left, right)
    if {left_kind, right_kind} == {"null", "undefined"}:
        return True
    if left_kind == "number" and right_kind == "string":
        return bool(left == _to_number(right))
    if left_kind == "string" and right_kind == "number":
        return bool(_to_number(left) == right)
    if left_kind == "boolean":
        return _loose_equals(_to_number(left), right)
    if right_kind == "boolean":
        return _loose_equals(left, _to_number(right))
    if left_kind in ("number", "string") and right_kind == "object":
        return _loose_equals(left, _to_primitive(right))
    if left_kind == "object" and right_kind in ("number", "string"):
        return _loose_equals(_to_primitive(left), right)
    return False


def _compare(operator: str, left: Any, right: Any) -> bool:
    left, right = _to_primitive(left), _to_primitive(right)
    if isinstance(left, str) and isinstance(right, str):
        # Python compares code points, JavaScript UTF-16 units: they differ only past U+FFFF.
        pair: tuple[Any, Any] = (left, right)
    else:
        pair = (_to_number(left), _to_number(right))
        if math.isnan(pair[0]) or math.isnan(pair[1]):
            return False
    if operator == "<":
        return bool(pair[0] < pair[1])
    if operator == "<=":
        return bool(pair[0] <= pair[1])
    if operator == ">":
        return bool(pair[0] > pair[1])
    return bool(pair[0] >= pair[1])


def is_placeholder(value: Any) -> bool:
    """True for a Slingr environment placeholder: a string ``${NAME}``."""
    return isinstance(value, str) and _PLACEHOLDER.fullmatch(value) is not None


def _is_empty(value: Any) -> bool:
    if value is UNDEFINED or value is None:
        return True
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) == 0
    return False


# --- syntax tree ----------------------------------------------------------------------------------


class _Node:
    __slots__ = ()

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Literal(_Node):
    value: Any

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class _Reference(_Node):
    #: One of the allowed names (a key of the scope).
    root: str
    #: Keys below ``root``; an ``int`` comes from ``[0]``, a node from Prisme.ai's computed
    #: ``[{{key}}]``/``[expression]``.
    path: tuple[str | int | _Node, ...]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return _walk(scope.get(self.root, UNDEFINED), self.path, scope)


def _walk(current: Any, path: tuple[str | int | _Node, ...], scope: Mapping[str, Any]) -> Any:
    for key in path:
        if isinstance(key, _Node):
            key = property_key(key.evaluate(scope))
        current = _member(current, key)
        if current is UNDEFINED:
            break
    return current


def property_key(value: Any) -> str | int:
    """A computed key as JavaScript reads ``object[value]``: an integral number indexes."""
    if _is_number(value) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return to_string(value)


def _member(value: Any, key: str | int) -> Any:
    # Lenient where JavaScript would throw (``undefined.x``): a condition over a half-filled form,
    # or a template over a payload without an optional key, must still evaluate, so reading below
    # a missing or scalar value is undefined, never an error.
    if isinstance(value, Mapping):
        name = str(key)
        return value.get(name, UNDEFINED)
    if isinstance(value, list | tuple | str):
        if key == "length":
            return len(value)
        # isascii: "²".isdigit() is true, but int("²") raises, and evaluating must never raise.
        index = (
            key if isinstance(key, int) else int(key) if key.isascii() and key.isdigit() else None
        )
        if index is not None and index < len(value):
            return value[index]
    return UNDEFINED


@dataclass(frozen=True, slots=True)
class _Unary(_Node):
    operator: str
    operand: _Node

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        value = self.operand.evaluate(scope)
        if self.operator == "!":
            return not truthy(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return -value  # an integer stays one (JSON output shows -3, not -3.0)
        return -_to_number(value)


@dataclass(frozen=True, slots=True)
class _Binary(_Node):
    operator: str
    left: _Node
    right: _Node

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        left = self.left.evaluate(scope)
        operator = self.operator
        # && and || yield one of their operands and do not evaluate the right one needlessly.
        if operator == "&&":
            return self.right.evaluate(scope) if truthy(left) else left
        if operator == "||":
            return left if truthy(left) else self.right.evaluate(scope)
        right = self.right.evaluate(scope)
        if operator == "===":
            return _strict_equals(left, right)
        if operator == "!==":
            return not _strict_equals(left, right)
        if operator == "==":
            return _loose_equals(left, right)
        if operator == "!=":
            return not _loose_equals(left, right)
        if operator in _COMPARISONS:
            return _compare(operator, left, right)
        return _prismeai_binary(operator, left, right)


_COMPARISONS: Final = frozenset({"<", "<=", ">", ">="})


def _prismeai_binary(operator: str, left: Any, right: Any) -> Any:
    from modyard.common import expression_functions as functions  # here: it imports this module

    if operator == "=":
        return _loose_equals(left, right)
    if operator == "not equals":
        return not _loose_equals(left, right)
    if operator in ("matches", "not matches"):
        return functions.matches(left, right) is (operator == "matches")
    if operator in ("in", "not in"):
        return functions.contains(right, left) is (operator == "in")
    return _arithmetic(operator, left, right)


def _arithmetic(operator: str, left: Any, right: Any) -> Any:
    """JavaScript's ``+ - * / %``: ``+`` joins text when either side is text."""
    if operator == "+":
        left, right = _to_primitive(left), _to_primitive(right)
        if isinstance(left, str) or isinstance(right, str):
            text = to_string(left) + to_string(right)
            spend_chars(len(text))
            return text
    a, b = _to_number(left), _to_number(right)
    try:
        if operator == "+":
            result = a + b
        elif operator == "-":
            result = a - b
        elif operator == "*":
            result = a * b
        elif operator == "/":
            result = _divide(a, b)
        elif b == 0 or math.isinf(a) or math.isnan(b):
            result = math.nan
        else:
            result = a if math.isinf(b) else math.fmod(a, b)  # the dividend's sign, as in JS
    except OverflowError:
        result = math.inf
    return as_number(result)


def _divide(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)  # 1 / -0 is -Infinity


def as_number(value: float) -> int | float:
    """An integral result as an ``int`` (JSON shows ``2``, as JavaScript does, not ``2.0``)."""
    if isinstance(value, int):
        return value
    if math.isfinite(value) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


@dataclass(frozen=True, slots=True)
class _Postfix(_Node):
    """Prisme.ai's ``x exists`` / ``x not exists``: neither undefined nor null."""

    negated: bool
    operand: _Node

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        value = self.operand.evaluate(scope)
        return (value is UNDEFINED or value is None) is self.negated


@dataclass(frozen=True, slots=True)
class _Array(_Node):
    items: tuple[_Node, ...]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return [to_json_value(item.evaluate(scope)) for item in self.items]


@dataclass(frozen=True, slots=True)
class _Member(_Node):
    """Keys read below a value that is not a name: ``split(…)[0]``, ``({{a}}).length``."""

    target: _Node
    path: tuple[str | int | _Node, ...]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return _walk(self.target.evaluate(scope), self.path, scope)


@dataclass(frozen=True, slots=True)
class _Function(_Node):
    """A Prisme.ai helper (``round``, ``split``, ``date(…).hour``…), see
    :mod:`modyard.common.expression_functions`."""

    name: str
    arguments: tuple[_Node, ...]
    #: ``date(x).hour``, ``URL(x).hostname``: the field these functions answer.
    field: str | None

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        from modyard.common import expression_functions as functions  # here: it imports this module

        values = [argument.evaluate(scope) for argument in self.arguments]
        return functions.call(self.name, values, self.field)


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    function: str
    argument: _Node

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        value = self.argument.evaluate(scope)
        if self.function == "isPlaceHolder":
            return is_placeholder(value)
        return _is_empty(value)


# --- tokenizer and parser -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "number", "string", "name", "punct" or "end"
    value: Any
    position: int

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the expression"
        if self.kind == "string":
            return "a string"
        return repr(str(self.value))


def _tokenize(text: str, punctuation: tuple[str, ...] = _PUNCTUATION) -> Iterator[_Token]:
    # A generator: the parser pulls tokens one at a time, so the first problem in reading order
    # is the one reported ("lambda: 1" fails at "lambda", not at ":").
    index = 0
    # Prisme.ai's paths: after "a." digits are a key ("items.0.name"), never a number like "0.".
    prismeai = punctuation is _PRISMEAI_PUNCTUATION
    after_dot = False
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        if char in "'\"":
            value, index_after = _read_string(text, index)
            yield _Token("string", value, index)
            index = index_after
            after_dot = False
            continue
        if prismeai and after_dot and char.isdigit():
            match = _DIGITS.match(text, index)
            assert match is not None
            yield _Token("number", int(match.group()), index)
            index = match.end()
            after_dot = False
            continue
        if (
            prismeai
            and char == "."
            and index > 0
            and (text[index - 1] in "]})" or _NAME_END.match(text[index - 1]))
        ):
            yield _Token("punct", ".", index)
            index += 1
            after_dot = True
            continue
        after_dot = False
        if char.isdigit() or (char == "." and text[index + 1 : index + 2].isdigit()):
            match = _NUMBER.match(text, index)
            assert match is not None  # the text at index starts with a digit or ".<digit>"
            literal = match.group()
            number: float = float(literal) if any(c in literal for c in ".eE") else int(literal)
            yield _Token("number", number, index)
            index = match.end()
            continue
        match = _NAME.match(text, index)
        if match is not None:
            yield _Token("name", match.group(), index)
            index = match.end()
            continue
        punct = next((p for p in punctuation if text.startswith(p, index)), None)
        if punct is None:
            hint = " (statements are not allowed)" if char == ";" else ""
            if char == "=":
                hint = " (assignments are not allowed; compare with == or ===)"
            raise ExpressionError(f"unexpected {char!r}{hint}", text=text, position=index)
        yield _Token("punct", punct, index)
        index += len(punct)
    yield _Token("end", None, len(text))


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == quote:
            return "".join(chars), index + 1
        if char == "\\":
            if index + 1 >= len(text):
                break
            escaped = text[index + 1]
            chars.append(_ESCAPES.get(escaped, escaped))
            index += 2
            continue
        chars.append(char)
        index += 1
    raise ExpressionError(f"string opened with {quote} is not closed", text=text, position=start)


class _Parser:
    def __init__(self, text: str, names: tuple[str, ...], dialect: Dialect = MODYARD) -> None:
        self.text = text
        self.names = names
        self.prismeai = dialect == PRISMEAI
        self.tokens = _tokenize(text, _PRISMEAI_PUNCTUATION if self.prismeai else _PUNCTUATION)
        self.token = next(self.tokens)
        self.lookahead: _Token | None = None
        self.depth = 0
        self.powers = _PRISMEAI_BINDING_POWER if self.prismeai else _BINDING_POWER

    def peek(self) -> _Token:
        if self.lookahead is None:
            self.lookahead = next(self.tokens) if self.token.kind != "end" else self.token
        return self.lookahead

    def fail(self, reason: str, token: _Token | None = None) -> ExpressionError:
        where = token or self.token
        return ExpressionError(reason, text=self.text, position=where.position)

    def advance(self) -> _Token:
        token = self.token
        if self.lookahead is not None:
            self.token, self.lookahead = self.lookahead, None
        elif token.kind != "end":
            self.token = next(self.tokens)
        return token

    def at(self, punct: str) -> bool:
        return self.token.kind == "punct" and self.token.value == punct

    def expect(self, punct: str, context: str) -> _Token:
        if not self.at(punct):
            raise self.fail(f"expected {punct!r} {context}, found {self.token.describe()}")
        return self.advance()

    def parse(self) -> _Node:
        if self.token.kind == "end":
            raise self.fail("the expression is empty")
        node = self.expression(0)
        if self.token.kind != "end":
            raise self.fail(
                f"unexpected {self.token.describe()} after a complete expression; "
                "join conditions with && or ||"
            )
        return node

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"the expression nests deeper than {MAX_NESTING} levels")

    def expression(self, min_power: int) -> _Node:
        self.nested()
        left = self.unary()
        while True:
            operator = self.operator()
            power = self.powers.get(operator) if operator is not None else None
            if operator is None or power is None or power <= min_power:
                break
            self.advance()
            if operator.startswith("not "):
                self.advance()
            if operator.endswith("exists"):
                left = _Postfix(operator.startswith("not "), left)
                continue
            left = _Binary(operator, left, self.expression(power))
        self.depth -= 1
        return left

    def operator(self) -> str | None:
        """The binary operator at the current token, if it is one (Prisme.ai's words too)."""
        token = self.token
        if token.kind == "punct":
            return str(token.value)
        if not self.prismeai or token.kind != "name":
            return None
        word = str(token.value).lower()
        if word in _WORD_OPERATORS:
            return _WORD_OPERATORS[word]
        if word == "exists":
            return "exists"
        if word == "not":
            following = self.peek()
            if following.kind == "name" and str(following.value).lower() in _NEGATABLE:
                return "not " + str(following.value).lower()
        return None

    def unary(self) -> _Node:
        token = self.token
        if (
            self.prismeai
            and token.kind == "name"
            and str(token.value).lower() == "not"
            and "not" not in self.names  # Prisme.ai's "not (…)", unless a variable is "not"
        ):
            self.advance()
            self.nested()
            operand = self.unary()
            self.depth -= 1
            return _Unary("!", operand)
        if self.at("!") or self.at("-"):
            operator = self.advance().value
            self.nested()
            operand = self.unary()
            self.depth -= 1
            return _Unary(operator, operand)
        return self.primary()

    def primary(self) -> _Node:
        token = self.token
        if token.kind in ("number", "string"):
            self.advance()
            return _Literal(token.value)
        if self.at("("):
            self.advance()
            node = self.expression(0)
            self.expect(")", "to close the '(' opened before")
            return self.members(node)
        if self.prismeai and self.at("{{"):
            # Prisme.ai's placeholder inside a condition or {% %}: a group.
            self.advance()
            if self.at("}}"):
                raise self.fail("the placeholder {{ }} is empty")
            node = self.expression(0)
            self.expect("}}", "to close the '{{' opened before")
            return self.members(node)
        if self.prismeai and self.at("["):
            return self.array()
        if self.at("@"):
            self.advance()
            if not (self.token.kind == "name" and self.token.value in self.names):
                raise self.fail(
                    f"expected {' or '.join(self.names)} after '@' "
                    f"(as in @{self.names[0]}.field), found {self.token.describe()}"
                )
            return self.reference()
        if token.kind == "name":
            if token.value in _KEYWORDS:
                self.advance()
                return _Literal(_KEYWORDS[token.value])
            if token.value == "undefined":
                self.advance()
                return _Literal(UNDEFINED)
            if self.prismeai and self.peek().kind == "punct" and self.peek().value == "(":
                return self.function()
            if token.value in self.names:
                return self.reference()
            if token.value == "utils":
                return self.call()
            dialect: Dialect = PRISMEAI if self.prismeai else MODYARD
            raise self.fail(
                f"unknown name {token.value!r}; {_what_is_allowed(self.names, dialect)}"
            )
        if token.kind == "end":
            raise self.fail("the expression ends where a value was expected")
        raise self.fail(f"unexpected {token.describe()} where a value was expected")

    def reference(self) -> _Reference:
        root = self.advance().value
        path = self.path()
        if self.at("("):
            if self.prismeai:
                raise self.fail("only the functions listed in docs/automations.md can be called")
            raise self.fail("only utils.isPlaceHolder(...) and utils.isEmpty(...) can be called")
        return _Reference(root, tuple(path))

    def path(self) -> list[str | int | _Node]:
        path: list[str | int | _Node] = []
        while True:
            if self.at("."):
                self.advance()
                if self.prismeai and self.at("{{"):  # Prisme.ai's a.{{key}}
                    path.append(self.primary())
                    continue
                if self.prismeai and self.token.kind == "number":  # Prisme.ai's items.0
                    path.append(self.advance().value)
                    continue
                if self.token.kind != "name":
                    raise self.fail(
                        f"expected a field name after '.', found {self.token.describe()}"
                    )
                name = self.advance()
                path.append(self.hyphenated(name) if self.prismeai else name.value)
            elif self.at("["):
                self.advance()
                key = self.token
                if key.kind == "string" or (key.kind == "number" and isinstance(key.value, int)):
                    path.append(self.advance().value)
                elif self.prismeai:  # a computed key: obj[{{key}}], list[{{i}} + 1]
                    path.append(self.expression(0))
                else:
                    raise self.fail(
                        f"expected a 'name' or an index inside [ ], found {key.describe()}"
                    )
                self.expect("]", "to close the '['")
            else:
                return path

    def hyphenated(self, name: _Token) -> str:
        """A key written ``headers.x-api-key`` (no spaces): Prisme.ai reads a placeholder as a
        path, so the hyphens belong to the key; ``a.b - c`` (spaced) stays a subtraction."""
        key = str(name.value)
        end = name.position + len(key)
        while self.at("-") and self.token.position == end:
            following = self.peek()
            if following.kind not in ("name", "number") or following.position != end + 1:
                break
            self.advance()
            part = self.advance()
            text = self.text[part.position : part.position + len(str(part.value))]
            if part.kind == "number" and not text.isdigit():
                raise self.fail(f"unexpected {text!r} in the key {key}-…", part)
            key = f"{key}-{text}"
            end = part.position + len(text)
        return key

    def members(self, node: _Node) -> _Node:
        if not self.prismeai:
            return node
        path = self.path()
        return _Member(node, tuple(path)) if path else node

    def array(self) -> _Node:
        self.advance()
        items: list[_Node] = []
        while not self.at("]"):
            items.append(self.expression(0))
            if not self.at(","):
                break
            self.advance()
        self.expect("]", "to close the list opened with '['")
        return self.members(_Array(tuple(items)))

    def function(self) -> _Node:
        from modyard.common import expression_functions as functions  # here: it imports this module

        name_token = self.advance()
        name = str(name_token.value)
        problem = functions.unknown(name)
        if problem is not None:
            raise self.fail(problem, name_token)
        self.advance()  # "("
        arguments: list[_Node] = []
        while not self.at(")"):
            arguments.append(self.expression(0))
            if not self.at(","):
                break
            self.advance()
        self.expect(")", f"to close the call of {name}(...)")
        field: str | None = None
        if functions.has_fields(name) and self.at("."):
            self.advance()
            if self.token.kind != "name":
                raise self.fail(f"expected a field name after {name}(...).")
            field = str(self.advance().value)
        try:
            functions.check_call(
                name, [a.value if isinstance(a, _Literal) else DYNAMIC for a in arguments], field
            )
        except EvaluationProblem as exc:
            raise self.fail(str(exc), name_token) from None
        return self.members(_Function(name, tuple(arguments), field))

    def call(self) -> _Call:
        utils = self.advance()
        if not self.at("."):
            raise self.fail(f"unknown name 'utils'; {_what_is_allowed(self.names)}", utils)
        self.advance()
        name = self.token
        if name.kind != "name" or name.value not in _FUNCTIONS:
            raise self.fail(
                f"unknown function utils.{name.value}; the functions are "
                + ", ".join(f"utils.{function}(value)" for function in _FUNCTIONS)
            )
        self.advance()
        self.expect("(", f"to call utils.{name.value}")
        if self.at(")"):
            raise self.fail(f"utils.{name.value} takes one argument")
        argument = self.expression(0)
        if self.at(","):
            raise self.fail(f"utils.{name.value} takes one argument")
        self.expect(")", f"to close the call of utils.{name.value}")
        return _Call(name.value, argument)


@lru_cache(maxsize=4096)
def _parse(text: str, names: tuple[str, ...] = CONFIG_NAMES, dialect: Dialect = MODYARD) -> _Node:
    # Errors are raised, hence not cached; valid texts are parsed once per process and set of
    # names (the names decide what parses: "payload.x" is junk to the installer).
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters",
            text=text,
            position=MAX_EXPRESSION_LENGTH,
        )
    return _Parser(text, names, dialect).parse()


# --- public API -----------------------------------------------------------------------------------


def _literal_condition(value: bool | str | None) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip() in ("true", "false"):
        return value.strip() == "true"
    return None


def _checked_names(names: Iterable[str]) -> tuple[str, ...]:
    # Scopes are built the same way again and again (the runtime evaluates many expressions
    # over scopes with the same keys): the check is remembered by the keys as given.
    return _checked_name_tuple(tuple(names))


@lru_cache(maxsize=4096)
def _checked_name_tuple(names: tuple[str, ...]) -> tuple[str, ...]:
    # Sorted, so that the parse cache does not depend on the order of a scope's keys.
    checked = tuple(sorted(set(names)))
    if not checked:
        raise ValueError("an expression needs at least one name to refer to")
    for name in checked:
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise ValueError(f"{name!r} cannot be a name in expressions (not an identifier)")
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} cannot be a name in expressions (it is reserved)")
    return checked


def check_expression(
    text: str, *, names: Iterable[str] = CONFIG_NAMES, dialect: Dialect = MODYARD
) -> None:
    """Raise :class:`ExpressionError` unless ``text`` is an expression this module can evaluate.

    ``names`` are the names it may refer to (``config`` for the installer's conditions).
    ``dialect="prismeai"`` reads the automations' superset (see the module doc).
    """
    if not isinstance(text, str):
        raise ExpressionError(
            "a condition is true, false or an expression", text=repr(text), position=0
        )
    if _literal_condition(text) is None:
        _parse(text, _checked_names(names), dialect)


def evaluate(text: str, config: Mapping[str, Any]) -> Any:
    """The JavaScript value of ``text`` against ``config`` (``UNDEFINED`` for missing keys)."""
    return _parse(text).evaluate({"config": config})


def evaluate_condition(
    value: bool | str | None, config: Mapping[str, Any], *, default: bool
) -> bool:
    """A field's ``required``/``visibility``: a boolean, or a condition read with JS truthiness.

    ``None`` and blank text mean "not set" and give ``default``. ``config`` is what ``config``
    names in the condition; the installer passes the configuration being checked.
    """
    if value is None:
        return default
    literal = _literal_condition(value)
    if literal is not None:
        return literal
    if not isinstance(value, str):
        raise ExpressionError(
            "a condition is true, false or an expression", text=repr(value), position=0
        )
    if not value.strip():
        return default
    return truthy(_parse(value).evaluate({"config": config}))


def to_json_value(value: Any) -> Any:
    """``value`` as JSON can carry it: ``undefined``, ``NaN`` and infinities become ``None``."""
    if value is UNDEFINED:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate_value(text: str, scope: Mapping[str, Any], *, dialect: Dialect = MODYARD) -> Any:
    """The value of the expression ``text``, whose names are the keys of ``scope``.

    Unlike :func:`evaluate_condition` the value is not read as a boolean: ``payload.items`` gives
    the list itself (the object from ``scope``, not a copy), ``payload.missing`` gives ``None``
    (see :func:`to_json_value`). Raises :class:`ExpressionError` for text outside the grammar and
    ``ValueError`` for a scope key that cannot be a name.
    """
    if not isinstance(text, str):
        raise ExpressionError("an expression is text", text=repr(text), position=0)
    node = _parse(text, _checked_names(scope), dialect)
    token = _COERCION_LEFT.set([MAX_COERCED_ITEMS])
    chars = _CHARS_LEFT.set([MAX_PRODUCED_CHARS])
    try:
        return to_json_value(node.evaluate(scope))
    except EvaluationProblem as exc:
        raise ExpressionError(str(exc), text=text, position=0) from None
    except (_CoercionBudget, RecursionError):
        # RecursionError: a list nested hundreds deep, joined as JavaScript would.
        raise ExpressionError(
            f"the expression turns more than {MAX_COERCED_ITEMS} list items into text; compare "
            "single fields rather than whole lists",
            text=text,
            position=0,
        ) from None
    finally:
        _CHARS_LEFT.reset(chars)
        _COERCION_LEFT.reset(token)


__all__ = [
    "CONFIG_NAMES",
    "DYNAMIC",
    "MAX_COERCED_ITEMS",
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING",
    "MAX_PRODUCED_CHARS",
    "MODYARD",
    "PLACEHOLDER_PATTERN",
    "PRISMEAI",
    "RESERVED_NAMES",
    "UNDEFINED",
    "Dialect",
    "EvaluationProblem",
    "ExpressionError",
    "as_number",
    "check_expression",
    "evaluate",
    "evaluate_condition",
    "evaluate_value",
    "is_placeholder",
    "property_key",
    "spend_chars",
    "to_json_value",
    "to_string",
    "truthy",
]
