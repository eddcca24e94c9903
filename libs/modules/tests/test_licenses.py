"""SPDX license expressions read with ``license-expression`` (AppCell's ``license``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modyard.modules.formats.licenses import LicenseError, normalize_license


@pytest.mark.parametrize(
    ("license", "expression"),
    [
        # Identifiers as the SPDX list spells them, operators upper-case.
        ("mit or apache-2.0", "MIT OR Apache-2.0"),
        ("bsd-3-clause", "BSD-3-Clause"),
        # Deprecated identifiers become their successors.
        ("GPL-2.0", "GPL-2.0-only"),
        ("GPL-3.0+", "GPL-3.0-or-later"),
        # Nested choices flatten at every depth; a mixed expression keeps its parentheses.
        ("MIT or (ISC or (0BSD or Apache-2.0))", "MIT OR ISC OR 0BSD OR Apache-2.0"),
        (["MIT", "ISC or 0BSD"], "MIT OR ISC OR 0BSD"),
        ("(MIT and ISC) or Apache-2.0", "(MIT AND ISC) OR Apache-2.0"),
        (["Apache-2.0"], "Apache-2.0"),
        # Licenses of the author's own, and Composer's closed-source value.
        ("DocumentRef-spdx-doc:LicenseRef-Acme-1", "DocumentRef-spdx-doc:LicenseRef-Acme-1"),
        ("proprietary", "LicenseRef-proprietary"),
        ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception"),
    ],
)
def test_a_license_becomes_one_canonical_spdx_expression(license: Any, expression: str) -> None:
    assert normalize_license(license) == expression
    assert normalize_license(expression) == expression


@pytest.mark.parametrize(
    ("license", "says"),
    [
        ("Apache 2.0", "'Apache 2.0' is not on the SPDX license list (did you mean 'Apache-2.0'?)"),
        ("MIT or Acme", "'Acme' in 'MIT or Acme' is not on the SPDX license list"),
        ("LicenseRef-has space", "LicenseRef-<name> for a license of your own"),
        ("MIT Apache-2.0", "expected 'or' or 'and' before 'Apache-2.0'"),
        ("(MIT or ISC", "it ends early (an unclosed '(' or a trailing operator)"),
        ("MIT)", "a ')' closes nothing"),
        ("or MIT", "'or' has no license on one side"),
        ("Classpath-exception-2.0", "is a license exception, which only follows WITH"),
        ("MIT WITH Apache-2.0", "'Apache-2.0' after WITH is not an SPDX license exception"),
        # The library's parser raises IndexError on this one: it must still be bad input.
        ("()", "'()' is not a license expression"),
        ("   ", "is empty"),
    ],
)
def test_a_bad_license_says_what_to_change(license: str, says: str) -> None:
    with pytest.raises(LicenseError) as raised:
        normalize_license(license)

    assert says in str(raised.value)
    assert raised.value.item is None


def test_a_bad_choice_in_an_array_names_its_index() -> None:
    with pytest.raises(LicenseError) as raised:
        normalize_license(["MIT", "ISC", "Apache 2.0"])

    assert raised.value.item == 2
    assert "did you mean 'Apache-2.0'?" in str(raised.value)


TOKENS = (
    *("(", ")", "MIT", "ISC", "or", "AND", "with", "Classpath-exception-2.0", "GPL-2.0+"),
    *("LicenseRef-x", "Acme", " ", "/", "+", ":", "proprietary", "\t"),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=8).map("".join) | st.text(max_size=12))
def test_any_text_is_an_expression_or_a_license_error_and_normalising_twice_changes_nothing(
    text: str,
) -> None:
    try:
        expression = normalize_license(text)
    except LicenseError:
        return
    assert normalize_license(expression) == expression
