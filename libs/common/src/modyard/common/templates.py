"""``{{ }}`` templates: JSON whose strings may hold ``{{ expression }}`` placeholders.

The runtime renders flow properties and automation instructions with them, the AppCell gateway
a cell's postpayload (over ``result``, with its own path lookup as the evaluator).

Rules:

- :func:`render` walks dicts, lists and strings; dict keys and every other value (numbers,
  booleans, ``null``) are kept as they are. Keys are never templated, so a mapping's shape is
  what the flow author wrote.
- A string that is exactly one placeholder (``"{{ payload.items }}"``, nothing around the braces)
  becomes the expression's value with its type: a list stays a list, a number a number, and a
  missing key gives ``None``.
- Any other string with placeholders is text: each placeholder is replaced by its value, strings
  as they are, ``None`` (a missing key, ``null``) as nothing, anything else JSON-encoded
  (``3``, ``true``, ``{"a":1}``).
- Expressions are those of :mod:`modyard.common.expressions` (safe, no ``eval``) over the names
  of the scope, unless the caller passes its own ``evaluate``. The runtime's scope
  (``SCOPE_NAMES`` in :mod:`modyard.runtime.components.core._shared`) is ``payload`` (the input
  message), ``properties`` (the node's), ``config`` (the installation's, empty for core
  components), ``flow`` (``{id, workspace}``) and ``message`` (``{id}``).
- There is no escape for a literal ``{{``: write ``{{ '{{' }}``. An expression ends at the first
  ``}}`` outside its quoted strings; a ``}}`` outside a placeholder is plain text.
- Junk (an unknown name, an unclosed ``{{``, an empty placeholder) raises :class:`TemplateError`
  with the JSON pointer of the string inside the template and the character position inside that
  string. :func:`check_template` does so without a scope, when a flow is started, so that a
  message never meets a template that cannot be read.
- ``dialect="prismeai"`` (the automations runtime only; other callers are unchanged) reads
  Prisme.ai's templates: ``{% expression %}`` is evaluated like a placeholder (a string that is
  exactly one keeps the value's type: ``'{% {{counter}} + 1 %}'`` is a number), it ends at its
  first ``%}`` outside quotes (a ``{%`` that nothing closes is text, as on Prisme.ai); placeholders nest (``{{obj[{{key}}]}}`` is one placeholder whose
  key is the inner one's value, as Prisme.ai's ``interpolate`` resolves the inner first), and
  expressions are read in the prismeai dialect of :mod:`modyard.common.expressions`.
- A template nests at most :data:`MAX_DEPTH` levels, and one rendering produces at most
  :data:`MAX_RENDERED_CHARS` characters of interpolated text: a template repeating
  ``{{ payload }}`` inside a string must not turn one large message into gigabytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from modyard.common.expressions import (
    MODYARD,
    PRISMEAI,
    Dialect,
    ExpressionError,
    check_expression,
    evaluate_value,
)
from modyard.common.json_pointer import escape_token

#: Deeper templates are refused (they also keep the recursive walk far from the stack limit).
MAX_DEPTH: Final = 64
#: Interpolated text one :func:`render` call may produce.
MAX_RENDERED_CHARS: Final = 8 * 1024 * 1024

_OPEN: Final = "{{"
_CLOSE: Final = "}}"
# Prisme.ai's {% expression %} (the prismeai dialect only).
_OPEN_EXPRESSION: Final = "{%"
_CLOSE_EXPRESSION: Final = "%}"


class TemplateError(ValueError):
    """A template that cannot be read or rendered.

    ``pointer`` is the JSON pointer of the offending string inside the template (``""`` for the
    template itself), ``position`` the 0-based character offset inside that string.
    """

    def __init__(self, reason: str, *, pointer: str = "", position: int = 0) -> None:
        where = f"at {pointer or '/'}, position {position}"
        super().__init__(f"{reason} ({where})")
        self.reason = reason
        self.pointer = pointer
        self.position = position


@dataclass(frozen=True, slots=True)
class _Placeholder:
    #: The text between the braces, as written (with its spaces).
    expression: str
    #: Where that text starts in the template string.
    offset: int
    #: ``"{{"`` or, in the prismeai dialect, ``"{%"``.
    kind: str = _OPEN

    def shown(self) -> str:
        close = _CLOSE if self.kind == _OPEN else _CLOSE_EXPRESSION
        return f"{self.kind}{self.expression}{close}"


#: A parsed string: literal text and placeholders, in order.
_Segments = tuple[str | _Placeholder, ...]


@lru_cache(maxsize=4096)
def _segments(text: str, dialect: Dialect = MODYARD) -> _Segments:
    """Split ``text`` into literal parts and placeholders; raise ``TemplateError`` (no pointer)."""
    parts: list[str | _Placeholder] = []
    index = 0
    prismeai = dialect == PRISMEAI
    while True:
        start = text.find(_OPEN, index)
        kind = _OPEN
        if prismeai:
            expression = text.find(_OPEN_EXPRESSION, index)
            if expression >= 0 and (start < 0 or expression < start):
                start, kind = expression, _OPEN_EXPRESSION
        if start < 0:
            if index < len(text):
                parts.append(text[index:])
            return tuple(parts)
        if start > index:
            parts.append(text[index:start])
        inner = start + len(kind)
        close = _CLOSE if kind == _OPEN else _CLOSE_EXPRESSION
        end = _find_close(text, inner, close, nested=prismeai and kind == _OPEN)
        if end < 0 and kind == _OPEN_EXPRESSION:
            # Prisme.ai leaves a "{%" that no "%}" closes as it is: it is text.
            parts.append(text[start:inner])
            index = inner
            continue
        if end < 0:
            raise TemplateError(f"'{kind}' is not closed by '{close}'", position=start)
        parts.append(_Placeholder(text[inner:end], inner, kind))
        index = end + len(close)


def _find_close(text: str, index: int, close: str = _CLOSE, *, nested: bool = False) -> int:
    # Skips quoted strings, so that "{{ '}}' }}" is one placeholder; the expression grammar has no
    # braces, so the first "}}" outside quotes is the end. An unclosed quote runs to the end of
    # the text and the placeholder is reported unclosed. ``nested`` (the prismeai dialect):
    # "{{obj[{{key}}]}}" is one placeholder holding another, as Prisme.ai resolves the inner one
    # first; "{% … %}" ends at its first "%}" outside quotes.
    quote: str | None = None
    depth = 0
    while index < len(text):
        char = text[index]
        if quote is not None:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif nested and text.startswith(_OPEN, index):
            depth += 1
            index += len(_OPEN)
            continue
        elif text.startswith(close, index):
            if depth == 0:
                return index
            depth -= 1
            index += len(close)
            continue
        index += 1
    return -1


def _parsed(text: str, pointer: str, dialect: Dialect = MODYARD) -> _Segments:
    try:
        return _segments(text, dialect)
    except TemplateError as exc:
        raise TemplateError(exc.reason, pointer=pointer, position=exc.position) from None


def _expression_error(
    exc: ExpressionError, placeholder: _Placeholder, pointer: str
) -> TemplateError:
    reason = f"{exc.reason} in {placeholder.shown()}"
    return TemplateError(reason, pointer=pointer, position=placeholder.offset + exc.position)


def _check_string(text: str, pointer: str, names: tuple[str, ...], dialect: Dialect) -> None:
    for part in _parsed(text, pointer, dialect):
        if isinstance(part, _Placeholder):
            try:
                if not part.expression.strip():
                    raise ExpressionError(
                        "the expression is empty", text=part.expression, position=0
                    )
                check_expression(part.expression, names=names, dialect=dialect)
            except ExpressionError as exc:
                raise _expression_error(exc, part, pointer) from None


def check_template(
    template: Any, *, names: Iterable[str], pointer: str = "", dialect: Dialect = MODYARD
) -> None:
    """Raise :class:`TemplateError` unless every string of ``template`` can be rendered over a
    scope with ``names``. ``pointer`` is where ``template`` sits (prefixed to error pointers).
    ``dialect="prismeai"``: the automations' ``{% %}``, nested ``{{ }}`` and expressions."""
    _walk_check(template, pointer, tuple(names), 0, dialect)


def _walk_check(
    template: Any, pointer: str, names: tuple[str, ...], depth: int, dialect: Dialect
) -> None:
    if depth > MAX_DEPTH:
        raise TemplateError(f"the template nests deeper than {MAX_DEPTH} levels", pointer=pointer)
    if isinstance(template, str):
        _check_string(template, pointer, names, dialect)
    elif isinstance(template, Mapping):
        for key, value in template.items():
            _walk_check(value, f"{pointer}/{escape_token(key)}", names, depth + 1, dialect)
    elif isinstance(template, list | tuple):
        for index, value in enumerate(template):
            _walk_check(value, f"{pointer}/{index}", names, depth + 1, dialect)


def is_template(text: str, *, dialect: Dialect = MODYARD) -> bool:
    """Whether ``text`` holds a placeholder (``False`` for junk too: check it first)."""
    try:
        return any(isinstance(part, _Placeholder) for part in _segments(text, dialect))
    except TemplateError:
        return False


#: What a caller may evaluate a placeholder's text with instead of the expression language.
Evaluate = Callable[[str], Any]


class _Renderer:
    def __init__(
        self, scope: Mapping[str, Any], evaluate: Evaluate | None, dialect: Dialect = MODYARD
    ) -> None:
        self.scope = scope
        self.evaluate_text = evaluate
        self.budget = MAX_RENDERED_CHARS
        self.dialect = dialect

    def value(self, template: Any, pointer: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise TemplateError(
                f"the template nests deeper than {MAX_DEPTH} levels", pointer=pointer
            )
        if isinstance(template, str):
            return self.string(template, pointer)
        if isinstance(template, Mapping):
            return {
                key: self.value(value, f"{pointer}/{escape_token(key)}", depth + 1)
                for key, value in template.items()
            }
        if isinstance(template, list | tuple):
            return [
                self.value(value, f"{pointer}/{index}", depth + 1)
                for index, value in enumerate(template)
            ]
        return template

    def evaluate(self, placeholder: _Placeholder, pointer: str) -> Any:
        try:
            if not placeholder.expression.strip():
                raise ExpressionError(
                    "the expression is empty", text=placeholder.expression, position=0
                )
            if self.evaluate_text is not None:
                return self.evaluate_text(placeholder.expression)
            return evaluate_value(placeholder.expression, self.scope, dialect=self.dialect)
        except ExpressionError as exc:
            raise _expression_error(exc, placeholder, pointer) from None

    def string(self, text: str, pointer: str) -> Any:
        parts = _parsed(text, pointer, self.dialect)
        if len(parts) == 1 and isinstance(parts[0], _Placeholder):
            return self.evaluate(parts[0], pointer)
        return self.interpolate(parts, pointer)

    def interpolate(self, parts: _Segments, pointer: str) -> str:
        if not any(isinstance(part, _Placeholder) for part in parts):
            return "".join(part for part in parts if isinstance(part, str))
        pieces: list[str] = []
        for part in parts:
            if isinstance(part, _Placeholder):
                value = self.evaluate(part, pointer)
                try:
                    piece = _as_text(value, max(self.budget, 0))
                except TemplateError as exc:
                    raise TemplateError(exc.reason, pointer=pointer) from None
            else:
                piece = part
            pieces.append(piece)
        rendered = "".join(pieces)
        self.budget -= len(rendered)
        if self.budget < 0:
            raise TemplateError(
                f"the rendered text is longer than {MAX_RENDERED_CHARS} characters",
                pointer=pointer,
            )
        return rendered


def json_size(value: Any, limit: int) -> int:
    """About how many characters ``value`` takes as JSON, counted up to just past ``limit``.

    The walk stops as soon as the count passes ``limit``, so it costs at most ``limit`` steps
    whatever the value: a list holding the same list twice, nested thirty times, is small in
    memory but a billion items as JSON, and must be refused before it is written out. Every
    item counts at least 8, a string its length: close to JSON for text, and a cost per node
    for structure (a node is what the walk and the encoder spend time on).
    """
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, Mapping):
            size += 8
            for key, child in item.items():
                size += len(str(key)) + 3
                stack.append(child)
        elif isinstance(item, list | tuple):
            size += 8
            stack.extend(item)
        else:
            size += 8
        if size > limit:
            return size
    return size


def _as_text(value: Any, limit: int = MAX_RENDERED_CHARS) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if json_size(value, limit) > limit:
        # Measured first: encoding the value to find it too long could take forever.
        raise TemplateError(f"the rendered text is longer than {MAX_RENDERED_CHARS} characters")
    # Compact and unescaped, as JSON.stringify writes it; default=str so that a value JSON cannot
    # carry (it should not reach a payload, but a Python caller may pass one) still renders.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def render(
    template: Any,
    scope: Mapping[str, Any],
    *,
    pointer: str = "",
    evaluate: Evaluate | None = None,
    dialect: Dialect = MODYARD,
) -> Any:
    """``template`` with its placeholders replaced, evaluated over ``scope`` (see the module doc).

    The input is not modified; containers are new, values picked from ``scope`` are not copied.
    ``pointer`` is where ``template`` sits, for the errors. ``evaluate``, when given, turns each
    placeholder's text into its value instead of the expression language.
    """
    return _Renderer(scope, evaluate, dialect).value(template, pointer, 0)


def render_text(
    template: str, scope: Mapping[str, Any], *, pointer: str = "", dialect: Dialect = MODYARD
) -> str:
    """``template`` rendered as text even when it is a single placeholder (URLs, headers)."""
    renderer = _Renderer(scope, None, dialect)
    return renderer.interpolate(_parsed(template, pointer, dialect), pointer)


__all__ = [
    "MAX_DEPTH",
    "MAX_RENDERED_CHARS",
    "Evaluate",
    "TemplateError",
    "check_template",
    "is_template",
    "json_size",
    "render",
    "render_text",
]
