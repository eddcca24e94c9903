"""AppCell payload templates: what a plugin action's ``payload``/``$payload`` is in real cells.

Seed 003 (Plugin.json, payload): "The payload data is provided by the system and also includes an
example of how it should be compiled"; the schemas that validate it are the resource's
(Resources.json, payload: "used for schema validation by validating the resource payload in the
Plugin.json file, for the respective resource, done field by field"). ApiHawk's own cells write
these files as Twig templates over Billia's data, e.g. ExampleDomainCell's
``register.payload.json``: ``{"domain": "{{product.option.domain}}", "numyears":
"{{order.quantity|default(1)}}", "email": "{{customer.email}}"}``, next to a separate
``register.schema.json`` that ``resources.json`` names. A document that declares ``$schema`` is a
JSON Schema (modyard's earlier reading, which cells written for modyard use); any other is a
template (payload) or an example (result).

The template language is the small part of Twig these cells use, rendered as Twig renders a JSON
file's text, so every placeholder yields **text**:

- ``{{ path }}`` with ``path`` = ``name(.name | [index])*`` over the request's ``data`` (and
  ``customer_product_id``); ``{{ path | filter | filter(arg) }}`` with the filters ``default(x)``
  (``x`` when the value is missing, null or ``""``), ``lower``, ``upper``, ``trim`` and
  ``json_encode``;
- a value prints as Twig prints it: a string as it is, a number in decimal, ``true`` as ``"1"``,
  ``false`` and null as ``""``; objects and lists as JSON (Twig would refuse them);
- a placeholder whose value is missing without ``default`` is an error naming the data it needs
  (:class:`MissingData`), never an empty string sent to the cell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modyard.common.json_pointer import escape_token

FILTERS = ("default", "lower", "upper", "trim", "json_encode")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+|\[\d+\])*$")
_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
_FILTER = re.compile(r"^([a-z_]+)\s*(?:\((.*)\))?$", re.S)
_MISSING = object()


class TemplateProblem(ValueError):
    """A template that cannot be read; ``pointer`` is the string's place in the template."""

    def __init__(self, reason: str, pointer: str = "") -> None:
        super().__init__(f"{reason} (at {pointer or '/'})")
        self.reason = reason
        self.pointer = pointer


@dataclass(frozen=True)
class _Expression:
    path: str
    #: (name, argument) in order; the argument is already a Python value.
    filters: tuple[tuple[str, Any], ...]


@dataclass
class MissingData:
    """A placeholder's value that the request's data lacks."""

    #: Where the string sits in the template (``/domain``).
    pointer: str
    #: The data path it reads (``product.option.domain``).
    path: str


@dataclass
class Rendered:
    value: Any
    missing: list[MissingData] = field(default_factory=list)


def _parse(text: str, pointer: str) -> _Expression:
    pipeline = [part.strip() for part in _split_pipes(text)]
    path, filters = pipeline[0], pipeline[1:]
    if not _PATH.match(path):
        raise TemplateProblem(
            f"{{{{{text}}}}} does not start with a data path such as product.option.domain",
            pointer,
        )
    parsed: list[tuple[str, Any]] = []
    for written in filters:
        match = _FILTER.match(written)
        if match is None or match.group(1) not in FILTERS:
            raise TemplateProblem(
                f"{{{{{text}}}}} uses the filter {written!r}; the filters known are "
                + ", ".join(FILTERS),
                pointer,
            )
        name, argument = match.group(1), match.group(2)
        if name == "default":
            parsed.append((name, _literal(argument, text, pointer)))
        elif argument is not None and argument.strip():
            raise TemplateProblem(f"{{{{{text}}}}}: the filter {name!r} takes no argument", pointer)
        else:
            parsed.append((name, None))
    return _Expression(path, tuple(parsed))


def _split_pipes(text: str) -> list[str]:
    """``a|default('x|y')|lower`` → three parts (a ``|`` inside quotes is text)."""
    parts, current, quote = [], "", None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "|":
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return parts


def _literal(argument: str | None, text: str, pointer: str) -> Any:
    written = (argument or "").strip()
    if len(written) >= 2 and written[0] == written[-1] == "'":
        return written[1:-1]
    try:
        return json.loads(written)
    except ValueError:
        raise TemplateProblem(
            f"{{{{{text}}}}}: default() needs a number, a quoted string, true, false or null",
            pointer,
        ) from None


def _strings(template: Any, pointer: str = "") -> list[tuple[str, str]]:
    if isinstance(template, str):
        return [(template, pointer)]
    if isinstance(template, Mapping):
        return [
            found
            for key, value in template.items()
            for found in _strings(value, f"{pointer}/{escape_token(str(key))}")
        ]
    if isinstance(template, list):
        return [
            found
            for index, value in enumerate(template)
            for found in _strings(value, f"{pointer}/{index}")
        ]
    return []


def template_problem(template: Any) -> TemplateProblem | None:
    """The first thing wrong with a template (an unclosed ``{{``, an unknown filter), or None."""
    for text, pointer in _strings(template):
        try:
            for expression in _expressions(text, pointer):
                _parse(expression, pointer)
        except TemplateProblem as problem:
            return problem
    return None


def _expressions(text: str, pointer: str) -> list[str]:
    found = [match.group(1) for match in _PLACEHOLDER.finditer(text)]
    if "{{" in _PLACEHOLDER.sub("", text):
        raise TemplateProblem("'{{' is not closed by '}}'", pointer)
    return found


def _lookup(path: str, data: Any) -> Any:
    head, _, _ = path.partition(".")
    head = head.split("[", 1)[0]
    current: Any = data.get(head, _MISSING) if isinstance(data, Mapping) else _MISSING
    for name, index in _STEP.findall(path[len(head) :]):
        if current is _MISSING:
            return _MISSING
        if index:
            position = int(index)
            if not isinstance(current, list) or position >= len(current):
                return _MISSING
            current = current[position]
        elif isinstance(current, Mapping):
            current = current.get(name, _MISSING)
        elif isinstance(current, list) and name.isdigit() and int(name) < len(current):
            current = current[int(name)]
        else:
            return _MISSING
    return current


def _text(value: Any) -> str:
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _evaluate(expression: _Expression, data: Any) -> Any:
    value = _lookup(expression.path, data)
    for name, argument in expression.filters:
        if name == "default":
            if value is _MISSING or value is None or value == "":
                value = argument
        elif value is _MISSING:
            return _MISSING
        elif name == "json_encode":
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        else:
            text = _text(value)
            value = (
                text.lower()
                if name == "lower"
                else text.upper()
                if name == "upper"
                else text.strip()
            )
    return value


def render(template: Any, data: Any) -> Rendered:
    """The template compiled over ``data``; every missing value is listed, none raises."""
    missing: list[MissingData] = []

    def walk(node: Any, pointer: str) -> Any:
        if isinstance(node, str):
            pieces: list[str] = []
            last = 0
            for match in _PLACEHOLDER.finditer(node):
                pieces.append(node[last : match.start()])
                expression = _parse(match.group(1), pointer)
                value = _evaluate(expression, data)
                if value is _MISSING:
                    missing.append(MissingData(pointer, expression.path))
                    value = None
                pieces.append(_text(value))
                last = match.end()
            pieces.append(node[last:])
            return "".join(pieces)
        if isinstance(node, Mapping):
            return {
                key: walk(value, f"{pointer}/{escape_token(str(key))}")
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [walk(value, f"{pointer}/{index}") for index, value in enumerate(node)]
        return node

    return Rendered(walk(template, ""), missing)


__all__ = ["FILTERS", "MissingData", "Rendered", "TemplateProblem", "render", "template_problem"]
