"""The helper functions and word operators of Prisme.ai's expressions (the ``prismeai`` dialect of
:mod:`modyard.common.expressions`, used only by the automations runtime).

Prisme.ai documents them for conditions and ``{% … %}`` (docs "Expression Syntax" in
prismeai/prismeai-mcp ``llmDoc/01-automations.md``); their behaviour follows its evaluator
(``services/runtime/deps/condition-eval`` of the platform's runtime: ``FunctionCall.ts``,
``ConditionalExpression.ts``, ``DateExpression.ts``, ``URLSearchParamsExpression.ts``). Written
here from that description, in Python, without ``eval``:

- ``isArray(x)``, ``isObject(x)`` (an object that is not a list), ``isString(x)``, ``isNumber(x)``;
- ``round(n[, decimals])``, ``floor(…)``, ``ceil(…)`` (half rounds up, as ``Math.round``),
  ``rand([min, max])`` (a float in [0, 1) without arguments, else an integer in [min, max));
- ``split(text, separator)``, ``join(list, separator)``, ``replace(text, search, by)`` (the first
  occurrence, as JavaScript's ``String.replace`` with a string), ``slice(listOrText, start[,
  end])``, ``lower(text)``, ``upper(text)``, ``truncate(text, length[, ending])`` (``ending``,
  ``"..."`` by default, is added only when the text is cut);
- ``json(text)`` parses, ``json(value)`` writes compact JSON;
- ``date(x)`` (milliseconds since 1970), ``date(x).year/month/date/day/hour/minute/second`` (UTC),
  ``.ts`` (milliseconds) and ``.iso``; ``date(x, "DD/MM/YYYY")`` formats with the tokens
  ``YYYY YY MM M DD D HH H mm m ss s SSS``; an unreadable date is undefined;
- ``URL(text).href/protocol/host/hostname/port/pathname/search/hash/origin/searchParams``,
  ``URLSearchParams(textOrObject).asString/asJSON``;
- ``regex("luke|sky")`` (or ``"/luke/i"``) on the right of ``matches``.

A function given values it cannot use fails the run (:class:`EvaluationProblem`), as Prisme.ai's
``InvalidExpressionSyntax`` does. Regular expressions run on RE2 (linear time; a pattern RE2
cannot read is refused). Not provided, and refused by name when the automation is saved:
``sanitize``, ``unsafejson``, ``deepmerge``, ``jsonmatch``, and ``date`` with a locale or time
zone (a third argument).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from modyard.common.expressions import (
    UNDEFINED,
    EvaluationProblem,
    as_number,
    property_key,
    spend_chars,
    to_json_value,
    to_string,
)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

#: Documented by Prisme.ai, not provided here: refused by name when an automation is saved.
UNSUPPORTED: Final = ("sanitize", "unsafejson", "deepmerge", "jsonmatch")
_DATE_FIELDS: Final = ("year", "month", "date", "day", "hour", "minute", "second", "ts", "iso")
_URL_FIELDS: Final = (
    "href", "protocol", "host", "hostname", "port", "pathname", "search", "hash", "origin",
    "searchParams",
)  # fmt: skip
_FIELDS: Final = {
    "date": _DATE_FIELDS,
    "URL": _URL_FIELDS,
    "URLSearchParams": ("asString", "asJSON"),
}


class Pattern:
    """What ``regex("…")`` gives: a regular expression for ``matches``."""

    __slots__ = ("compiled", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.compiled = _regex(source)

    def __repr__(self) -> str:
        return f"regex({self.source!r})"


@lru_cache(maxsize=1024)
def _regex(source: str) -> Any:
    # "/body/flags" as Prisme.ai's regex-parser reads it; flags i, m and s are honoured.
    body, flags = source, ""
    match = re.fullmatch(r"/(.*)/([a-z]*)", source, re.DOTALL)
    if match is not None:
        body, flags = match.group(1), match.group(2)
    inline = "".join(flag for flag in "ims" if flag in flags)
    try:
        return re2.compile(f"(?{inline}){body}" if inline else body, _OPTIONS)
    except re2.error:
        raise EvaluationProblem(
            f"{source!r} is not a regular expression this runtime can read (RE2 syntax: no "
            "look-around, no back-references)"
        ) from None


def matches(left: Any, right: Any) -> bool:
    """Prisme.ai's ``matches``: the text of ``left`` searched with ``right`` as a regular
    expression (JavaScript's ``String.match`` makes a RegExp of a string), with a
    ``regex(…)``, or with any item of a list."""
    text = to_string(left)
    if isinstance(right, Pattern):
        return right.compiled.search(text) is not None
    if isinstance(right, list | tuple):
        spend_chars(len(right))
        return any(matches(text, item) for item in right)
    if right is UNDEFINED or right is None:
        return False
    return _regex(to_string(right)).search(text) is not None


def contains(container: Any, item: Any) -> bool:
    """Prisme.ai's ``item in container``: a list holds it, an object has it as a key, a text is
    a comma-separated list (``"x,y"``; numbers compare as numbers when ``item`` is one)."""
    if isinstance(container, str) and container:
        parts: list[Any] = container.split(",")
        if _is_number(item):
            parts = [_number_or_text(part) for part in parts]
        return any(_same(part, item) for part in parts)
    if isinstance(container, list | tuple):
        spend_chars(len(container))
        return any(_same(element, item) for element in container)
    if isinstance(container, Mapping):
        return to_string(property_key(item)) in container
    return False


def _number_or_text(text: str) -> Any:
    try:
        return int(text.strip())
    except ValueError:
        return text


def _same(a: Any, b: Any) -> bool:
    # Array.prototype.includes: SameValueZero (no coercion; objects by identity).
    if _is_number(a) and _is_number(b):
        return bool(a == b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return a is b
    return type(a) is type(b) and bool(a == b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- the functions ---------------------------------------------------------------------------


def _text(name: str, value: Any, usage: str) -> str:
    if not isinstance(value, str):
        raise EvaluationProblem(f"bad {name}() arguments: expected text, as in {usage}")
    return value


def _number(name: str, value: Any, usage: str) -> float:
    if not _is_number(value):
        raise EvaluationProblem(f"bad {name}() arguments: expected a number, as in {usage}")
    return float(value)


def _index(name: str, value: Any, usage: str) -> int:
    number = _number(name, value, usage)
    if math.isnan(number):
        return 0
    return int(max(min(number, 2**53), -(2**53)))


def _produced(text: str) -> str:
    spend_chars(len(text))
    return text


def _rounding(method: Callable[[float], float], usage: str, name: str) -> Callable[..., Any]:
    def apply(number: Any = UNDEFINED, decimals: Any = 0) -> Any:
        value = _number(name, number, usage)
        places = _number(name, decimals or 0, usage)
        coefficient = 10**places
        try:
            return as_number(method(value * coefficient) / coefficient)
        except (OverflowError, ValueError):
            return value

    return apply


def _half_up(value: float) -> float:
    return float(math.floor(value + 0.5))


def _rand(low: Any = 0, high: Any = 1) -> Any:
    low_n, high_n = _number("rand", low, "rand(50, 150)"), _number("rand", high, "rand(50, 150)")
    value = random.random() * (high_n - low_n) + low_n  # noqa: S311 (not for secrets)
    return value if (low_n, high_n) == (0, 1) else as_number(math.floor(value))


def _split(text: Any = UNDEFINED, separator: Any = UNDEFINED) -> list[str]:
    usage = 'split({{textVar}}, ",")'
    value, sep = _text("split", text, usage), _text("split", separator, usage)
    parts = value.split(sep) if sep else list(value)
    spend_chars(len(parts))
    return parts


def _join(items: Any = UNDEFINED, separator: Any = UNDEFINED) -> str:
    usage = 'join({{someList}}, ",")'
    if not isinstance(items, list | tuple):
        raise EvaluationProblem(f"bad join() arguments: expected a list, as in {usage}")
    sep = _text("join", separator, usage)
    spend_chars(len(items))
    return _produced(
        sep.join("" if item is None or item is UNDEFINED else to_string(item) for item in items)
    )


def _replace(text: Any = UNDEFINED, search: Any = UNDEFINED, by: Any = UNDEFINED) -> str:
    usage = 'replace("hello world", "world", "you")'
    value = _text("replace", text, usage)
    return _produced(value.replace(_text("replace", search, usage), _text("replace", by, usage), 1))


def _slice(items: Any = UNDEFINED, start: Any = UNDEFINED, end: Any = UNDEFINED) -> Any:
    usage = "slice({{someArrayOrString}}, 0, 5)"
    if not isinstance(items, list | tuple | str):
        raise EvaluationProblem(f"bad slice() arguments: expected a list or text, as in {usage}")
    first = _index("slice", start, usage)
    last = None if end is UNDEFINED or end is None else _index("slice", end, usage)
    return items[first:last] if not isinstance(items, tuple) else list(items[first:last])


def _truncate(text: Any = UNDEFINED, length: Any = UNDEFINED, ending: Any = "...") -> str:
    usage = "truncate({{str}}, 42, ' etc')"
    value = _text("truncate", text, usage)
    size = max(_index("truncate", length, usage), 0)
    if len(value) <= size:
        return value
    return _produced(value[:size] + _text("truncate", ending, usage))


def _json(value: Any = UNDEFINED) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise EvaluationProblem("json(): the text is not valid JSON") from None
    return _produced(
        json.dumps(to_json_value(value), separators=(",", ":"), ensure_ascii=False, default=str)
    )


def _date_of(value: Any) -> datetime | None:
    if isinstance(value, bool) or value is None or value is UNDEFINED:
        return None
    try:
        if _is_number(value):
            return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


_DATE_TOKENS = re.compile(r"YYYY|YY|SSS|MM|M|DD|D|HH|H|mm|m|ss|s")


def _format_date(moment: datetime, pattern: str) -> str:
    values = {
        "YYYY": f"{moment.year:04d}",
        "YY": f"{moment.year % 100:02d}",
        "MM": f"{moment.month:02d}",
        "M": str(moment.month),
        "DD": f"{moment.day:02d}",
        "D": str(moment.day),
        "HH": f"{moment.hour:02d}",
        "H": str(moment.hour),
        "mm": f"{moment.minute:02d}",
        "m": str(moment.minute),
        "ss": f"{moment.second:02d}",
        "s": str(moment.second),
        "SSS": f"{moment.microsecond // 1000:03d}",
    }
    return _DATE_TOKENS.sub(lambda match: values[match.group()], pattern)


def _date(value: Any = UNDEFINED, pattern: Any = UNDEFINED, *, field: str | None = None) -> Any:
    moment = _date_of(value)
    if moment is None:
        return UNDEFINED
    if isinstance(pattern, str):
        return _format_date(moment, pattern)
    milliseconds = as_number(math.floor(moment.timestamp() * 1000))
    if field is None or field == "ts":
        return milliseconds
    if field == "iso":
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{moment.microsecond // 1000:03d}Z"
        )
    utc = moment.astimezone(UTC)
    return {
        "year": utc.year,
        "month": utc.month,
        "date": utc.day,
        "day": (utc.weekday() + 1) % 7,  # getUTCDay: Sunday is 0
        "hour": utc.hour,
        "minute": utc.minute,
        "second": utc.second,
    }[field]


def _url(value: Any = UNDEFINED, *, field: str | None = None) -> Any:
    text = _text("URL", value, 'URL("https://example.com/path?foo=bar").hostname')
    try:
        parts = urlsplit(text)
        port = str(parts.port) if parts.port is not None else ""
    except ValueError:
        parts, port = None, ""
    if parts is None or not parts.scheme or not parts.netloc:
        raise EvaluationProblem(f"URL(): {text!r} is not an absolute URL")
    fields: dict[str, Any] = {
        "href": text,
        "protocol": f"{parts.scheme}:",
        "host": parts.netloc.rsplit("@", 1)[-1],
        "hostname": parts.hostname or "",
        "port": port,
        "pathname": parts.path or "/",
        "search": f"?{parts.query}" if parts.query else "",
        "hash": f"#{parts.fragment}" if parts.fragment else "",
        "origin": f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}",
        "searchParams": dict(parse_qsl(parts.query, keep_blank_values=True)),
    }
    return fields[field or "href"]


def _search_params(value: Any = UNDEFINED, *, field: str | None = None) -> Any:
    if field == "asJSON":
        text = _text("URLSearchParams", value, 'URLSearchParams("a=1&b=2").asJSON')
        return dict(parse_qsl(text.lstrip("?"), keep_blank_values=True))
    if isinstance(value, Mapping):
        pairs = [(str(key), to_string(item)) for key, item in value.items()]
        return _produced(urlencode(pairs))
    text = _text("URLSearchParams", value, 'URLSearchParams({foo: "bar"}).asString')
    return _produced(urlencode(parse_qsl(text.lstrip("?"), keep_blank_values=True)))


def _case(method: str) -> Callable[[Any], str]:
    def apply(text: Any = UNDEFINED) -> str:
        value = _text(method, text, f"{method}({{{{foo}}}})")
        return value.lower() if method == "lower" else value.upper()

    return apply


def _regex_of(source: Any = UNDEFINED) -> Pattern:
    return Pattern(_text("regex", source, 'regex("luke|skywalker")'))


#: name: (implementation, fewest arguments, most arguments)
_FUNCTIONS: Final[dict[str, tuple[Callable[..., Any], int, int]]] = {
    "isArray": (lambda value=UNDEFINED: isinstance(value, list | tuple), 1, 1),
    "isObject": (lambda value=UNDEFINED: isinstance(value, Mapping), 1, 1),
    "isString": (lambda value=UNDEFINED: isinstance(value, str), 1, 1),
    "isNumber": (lambda value=UNDEFINED: _is_number(value), 1, 1),
    "round": (_rounding(_half_up, "round(10.26, 1)", "round"), 1, 2),
    "floor": (_rounding(math.floor, "floor(10.9)", "floor"), 1, 2),
    "ceil": (_rounding(math.ceil, "ceil(10.1)", "ceil"), 1, 2),
    "rand": (_rand, 0, 2),
    "split": (_split, 2, 2),
    "join": (_join, 2, 2),
    "replace": (_replace, 3, 3),
    "slice": (_slice, 2, 3),
    "lower": (_case("lower"), 1, 1),
    "upper": (_case("upper"), 1, 1),
    "truncate": (_truncate, 2, 3),
    "json": (_json, 1, 1),
    "regex": (_regex_of, 1, 1),
    "date": (_date, 1, 2),
    "URL": (_url, 1, 1),
    "URLSearchParams": (_search_params, 1, 1),
}


def unknown(name: str) -> str | None:
    """Why ``name(…)`` cannot be called, or ``None`` when it can."""
    if name in _FUNCTIONS:
        return None
    if name in UNSUPPORTED:
        return f"the function {name}() is not supported by this runtime"
    return f"unknown function {name!r}; the functions are " + ", ".join(
        f"{function}()" for function in _FUNCTIONS
    )


def has_fields(name: str) -> bool:
    """Whether ``name(…).field`` selects what the function answers (``date(x).hour``)."""
    return name in _FIELDS


def check_call(name: str, arguments: list[Any], field: str | None) -> None:
    """Refuse, when the expression is read, a call that can never work: the wrong number of
    arguments, an unknown field, a literal pattern RE2 cannot read. ``arguments`` holds literal
    values, :data:`~modyard.common.expressions.DYNAMIC` for the others."""
    _, fewest, most = _FUNCTIONS[name]
    if name == "date" and len(arguments) > 2:
        raise EvaluationProblem(
            "date() with a locale or a time zone is not supported: use date(x, 'DD/MM/YYYY') "
            "(UTC) or date(x).<field>"
        )
    if not fewest <= len(arguments) <= most:
        count = str(fewest) if fewest == most else f"{fewest} to {most}"
        raise EvaluationProblem(f"{name}() takes {count} argument{'s' if most != 1 else ''}")
    fields = _FIELDS.get(name)
    if field is not None and fields is not None and field not in fields:
        raise EvaluationProblem(
            f"{name}(...).{field} is not a field; the fields are " + ", ".join(fields)
        )
    if name == "URLSearchParams" and field is None:
        raise EvaluationProblem("URLSearchParams(...) needs .asString or .asJSON")
    if name == "regex" and arguments and isinstance(arguments[0], str):
        _regex(arguments[0])


def call(name: str, arguments: list[Any], field: str | None) -> Any:
    """The value of ``name(*arguments)`` (``.field`` for date, URL and URLSearchParams)."""
    function = _FUNCTIONS[name][0]
    if name in _FIELDS:
        return function(*arguments, field=field)
    return function(*arguments)


__all__ = [
    "UNSUPPORTED",
    "Pattern",
    "call",
    "check_call",
    "contains",
    "has_fields",
    "matches",
    "unknown",
]
