"""The condition evaluator, now shared: it lives in :mod:`modyard.common.expressions`.

The runtime evaluates flow templates with the same grammar, and a service may not import another
service, so the evaluator moved to libs/common. This module keeps the installer's imports working.
"""

from __future__ import annotations

from modyard.common.expressions import (
    CONFIG_NAMES,
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING,
    PLACEHOLDER_PATTERN,
    RESERVED_NAMES,
    UNDEFINED,
    ExpressionError,
    check_expression,
    evaluate,
    evaluate_condition,
    evaluate_value,
    is_placeholder,
    to_json_value,
    truthy,
)

__all__ = [
    "CONFIG_NAMES",
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING",
    "PLACEHOLDER_PATTERN",
    "RESERVED_NAMES",
    "UNDEFINED",
    "ExpressionError",
    "check_expression",
    "evaluate",
    "evaluate_condition",
    "evaluate_value",
    "is_placeholder",
    "to_json_value",
    "truthy",
]
