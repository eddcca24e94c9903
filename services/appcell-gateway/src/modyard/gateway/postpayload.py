"""Rendering a postpayload: the instruction the billing system applies after an action.

``{{result}}`` is the whole result and ``{{result.a.b}}`` / ``{{result.items[0].id}}`` a path into
it. A string that is only a placeholder takes the value as it is (an object stays an object);
placeholders inside longer strings are written as text (JSON for objects and lists). A path that
leads nowhere renders as null (alone) or as an empty string (inside text).
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*(result(?:\.[A-Za-z0-9_$-]+|\[\d+\])*)\s*\}\}")
_STEP = re.compile(r"\.([A-Za-z0-9_$-]+)|\[(\d+)\]")
_MISSING = object()


def _lookup(path: str, result: Any) -> Any:
    current = result
    for name, index in _STEP.findall(path.removeprefix("result")):
        if index:
            position = int(index)
            if not isinstance(current, list) or position >= len(current):
                return _MISSING
            current = current[position]
        elif isinstance(current, dict) and name in current:
            current = current[name]
        elif isinstance(current, list) and name.isdigit() and int(name) < len(current):
            current = current[int(name)]
        else:
            return _MISSING
    return current


def _text(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def render(template: Any, result: Any) -> Any:
    if isinstance(template, dict):
        return {key: render(value, result) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, result) for value in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole:
        value = _lookup(whole.group(1), result)
        return None if value is _MISSING else value
    return _PLACEHOLDER.sub(lambda match: _text(_lookup(match.group(1), result)), template)
