"""SPDX license expressions, as module formats write them, read with ``license-expression``.

AppCell's ``appcell.json`` follows Composer: ``license`` is an SPDX identifier, an array of
identifiers meaning a choice, or an expression such as ``(BSD-2-Clause or BSD-3-Clause)``, with
``proprietary`` for closed-source code. Each becomes one SPDX expression in canonical form:
operators upper-case, identifiers spelt as the SPDX list spells them (``mit`` → ``MIT``),
deprecated ones replaced by their successor (``GPL-2.0+`` → ``GPL-2.0-or-later``), a nested
choice flattened (``A OR (B OR C)`` → ``A OR B OR C``). Identifiers must be on the SPDX list
bundled with the library, or be ``LicenseRef-…`` (``DocumentRef-…:LicenseRef-…``) for a
license of the author's own; ``proprietary`` is read as ``LicenseRef-proprietary``.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from typing import Any, cast

from license_expression import (  # type: ignore[import-untyped]  # no type hints shipped
    PARSE_INVALID_EXCEPTION,
    PARSE_INVALID_EXPRESSION,
    PARSE_INVALID_NESTING,
    PARSE_INVALID_OPERATOR_SEQUENCE,
    PARSE_INVALID_SYMBOL_AS_EXCEPTION,
    PARSE_INVALID_SYMBOL_SEQUENCE,
    PARSE_UNBALANCED_CLOSING_PARENS,
    ExpressionError,
    ExpressionParseError,
    LicenseExpression,
    Licensing,
    get_spdx_licensing,
)

# SPDX's idstring: what a LicenseRef/DocumentRef may be made of.
_REFERENCE = re.compile(r"^(?:DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$")
_PROPRIETARY = "LicenseRef-proprietary"
_HOW = "write SPDX identifiers joined by 'or'/'and', e.g. '(BSD-2-Clause or BSD-3-Clause)'"


class LicenseError(ValueError):
    """A license the format cannot take; ``item`` is the array index it is at, if any."""

    def __init__(self, message: str, item: int | None = None) -> None:
        super().__init__(message)
        self.item = item


@cache
def _licensing() -> Licensing:
    # Builds a symbol table of the whole SPDX list (a few thousand keys): once per process.
    return get_spdx_licensing()


def normalize_license(value: Any) -> str:
    """One canonical SPDX expression from an identifier, an expression or an array (a choice).

    Raises :class:`LicenseError` (a ``ValueError``) saying what to change.
    """
    if isinstance(value, str):
        return str(_parse(value).render())
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        choices = []
        for item, text in enumerate(value):
            try:
                choices.append(_parse(text))
            except LicenseError as exc:
                raise LicenseError(str(exc), item) from exc
        choice = choices[0] if len(choices) == 1 else _licensing().OR(*choices)
        return str(_flatten(choice).render())
    raise LicenseError(
        "must be an SPDX license identifier (e.g. 'MIT'), an array of identifiers to choose "
        "from, or an expression such as '(BSD-2-Clause or BSD-3-Clause)'"
    )


def _parse(text: str) -> LicenseExpression:
    licensing = _licensing()
    if text.strip().lower() == "proprietary":
        text = _PROPRIETARY
    try:
        expression = licensing.parse(text, validate=False, strict=True)
    except ExpressionParseError as exc:
        raise LicenseError(
            f"{text!r} is not a license expression: {_parse_problem(exc)}; {_HOW}"
        ) from exc
    except ExpressionError as exc:
        # An operator missing an operand, or a character no identifier has ("MIT/Apache-2.0").
        raise LicenseError(f"{text!r} is not a license expression: {exc}; {_HOW}") from exc
    except Exception as exc:
        # The parser trips over shapes it does not anticipate ("()" raises IndexError, "(or :x"
        # an AssertionError): still bad input, never a server error.
        raise LicenseError(f"{text!r} is not a license expression; {_HOW}") from exc
    if expression is None:
        raise LicenseError("is empty; name an SPDX license identifier such as 'MIT'")
    for key in licensing.unknown_license_keys(expression, unique=True):
        if not _REFERENCE.match(key):
            raise LicenseError(_unknown(text, key))
    return _flatten(expression)


def _parse_problem(exc: ExpressionParseError) -> str:
    token = exc.token_string
    code = exc.error_code
    if code == PARSE_UNBALANCED_CLOSING_PARENS:
        return "a ')' closes nothing"
    if code == PARSE_INVALID_EXPRESSION and not token:
        return "it ends early (an unclosed '(' or a trailing operator)"
    if code == PARSE_INVALID_SYMBOL_SEQUENCE:
        return f"expected 'or' or 'and' before {token!r}"
    if code in (PARSE_INVALID_OPERATOR_SEQUENCE, PARSE_INVALID_NESTING):
        return f"{token!r} has no license on one side"
    if code == PARSE_INVALID_EXCEPTION:
        return (
            f"{token!r} is a license exception, which only follows WITH "
            "(e.g. 'GPL-2.0-only WITH Classpath-exception-2.0')"
        )
    if code == PARSE_INVALID_SYMBOL_AS_EXCEPTION:
        return f"{token!r} after WITH is not an SPDX license exception"
    return f"it cannot go on at {token!r}" if token else str(exc)


def _unknown(text: str, key: str) -> str:
    known = [k for k in _licensing().known_symbols if not k.startswith("LicenseRef-")]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = "" if key == text.strip() else f" in {text!r}"
    return (
        f"{key!r}{where} is not on the SPDX license list{hint}; use an identifier from "
        "spdx.org/licenses, or LicenseRef-<name> for a license of your own"
    )


def _flatten(expression: LicenseExpression) -> LicenseExpression:
    """``A OR (B OR C)`` as ``A OR B OR C`` at every depth; the library flattens one level."""
    licensing = _licensing()
    if not isinstance(expression, licensing.AND | licensing.OR):
        return expression
    operator = type(expression)
    flat = operator(*(_flatten(arg) for arg in expression.args))
    return cast(LicenseExpression, flat.flatten())


__all__ = ["LicenseError", "normalize_license"]
