"""Rendering a postpayload: the instruction the billing system applies after an action.

``{{result}}`` is the whole result and ``{{result.a.b}}`` / ``{{result.items[0].id}}`` (or
``{{result.items.0.id}}``) a path into it. The text and typing rules are the runtime's
(:mod:`modyard.common.templates`): a string that is only a placeholder takes the value as it is
(an object stays an object); placeholders inside longer strings are written as text (JSON for
objects and lists). A path that leads nowhere renders as null (alone) or as an empty string
(inside text). Only the lookup differs: AppCell paths allow keys like ``domain-name`` or ``$id``
that the expression language would read as arithmetic, and a placeholder that does not start with
``result`` is left as it was written. A postpayload whose braces do not close raises
:class:`~modyard.common.templates.TemplateError` (the pipeline answers 502: the cell's document is
broken, not the request).
"""

from __future__ import annotations

import re
from typing import Any

from modyard.common.templates import render as render_template

_PATH = re.compile(r"\s*(result(?:\.[A-Za-z0-9_$-]+|\[\d+\])*)\s*")
_STEP = re.compile(r"\.([A-Za-z0-9_$-]+)|\[(\d+)\]")


def _lookup(path: str, result: Any) -> Any:
    current = result
    for name, index in _STEP.findall(path.removeprefix("result")):
        if index:
            position = int(index)
            if not isinstance(current, list) or position >= len(current):
                return None
            current = current[position]
        elif isinstance(current, dict) and name in current:
            current = current[name]
        elif isinstance(current, list) and name.isdigit() and int(name) < len(current):
            current = current[int(name)]
        else:
            return None
    return current


def render(template: Any, result: Any) -> Any:
    def evaluate(text: str) -> Any:
        path = _PATH.fullmatch(text)
        return _lookup(path.group(1), result) if path else "{{" + text + "}}"

    return render_template(template, {}, evaluate=evaluate)
