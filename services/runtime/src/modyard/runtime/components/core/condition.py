"""``core.condition``: routes a message by an expression.

Properties: ``expression`` — e.g. ``payload.total > 100`` (the grammar of
:mod:`modyard.common.expressions` over ``payload``, ``properties``, ``config``, ``flow`` and
``message``). The payload goes out unchanged on ``true`` when the expression's value is truthy
(JavaScript truthiness: a missing key, ``null``, ``0``, ``""`` are false), on ``false`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from modyard.common.expressions import (
    MAX_EXPRESSION_LENGTH,
    ExpressionError,
    check_expression,
    evaluate_value,
    truthy,
)
from modyard.common.templates import TemplateError
from modyard.runtime.components.base import ExecutionContext, Outputs
from modyard.runtime.components.core._shared import (
    JSON_SCHEMA_DIALECT,
    SCOPE_NAMES,
    CoreComponent,
    scope_for,
    template_failure,
)


def _template_error(exc: ExpressionError) -> TemplateError:
    return TemplateError(exc.reason, pointer="/expression", position=exc.position)


class ConditionComponent(CoreComponent):
    name: ClassVar[str] = "core.condition"
    properties_schema: ClassVar[dict[str, Any]] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {
            "expression": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_EXPRESSION_LENGTH,
                "description": "e.g. payload.total > 100",
            }
        },
        "required": ["expression"],
        "additionalProperties": False,
    }
    out_ports: ClassVar[tuple[str, ...]] = ("true", "false")

    def check(self, properties: Mapping[str, Any]) -> None:
        expression = properties.get("expression")
        if isinstance(expression, str):
            try:
                check_expression(expression, names=SCOPE_NAMES)
            except ExpressionError as exc:
                raise _template_error(exc) from None

    async def run(self, context: ExecutionContext, port: str, payload: Any) -> Outputs:
        expression = self.properties(context)["expression"]
        try:
            value = evaluate_value(expression, scope_for(context, payload))
        except ExpressionError as exc:
            raise template_failure(_template_error(exc)) from None
        return {"true" if truthy(value) else "false": [payload]}
