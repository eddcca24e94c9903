"""RFC 6901 pointers: written, escaped and followed the same way everywhere."""

from __future__ import annotations

import pytest

from modyard.common.json_pointer import escape_token, json_pointer, resolve, tokens, unescape_token

# The shape of the RFC's section 5 example: keys with slashes, tildes, spaces and quotes.
DOCUMENT = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "m~n": 8,
    " ": 7,
    'k"l': 6,
}


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("", DOCUMENT),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/m~0n", 8),
        ("/ ", 7),
        ('/k"l', 6),
    ],
)
def test_resolve_follows_the_rfc_examples(pointer: str, value: object) -> None:
    assert resolve(DOCUMENT, pointer) == value


def test_written_pointers_round_trip_through_tokens() -> None:
    parts = ("a/b", "~1", "m~n", 3, "")
    pointer = json_pointer(*parts)
    assert pointer == "/a~1b/~01/m~0n/3/"
    assert tokens(pointer) == ["a/b", "~1", "m~n", "3", ""]
    assert json_pointer() == ""


def test_escape_order_keeps_a_literal_tilde_one() -> None:
    # "~1" as a key must come back as "~1", not "/": escape ~ first, unescape ~1 first.
    assert escape_token("~1") == "~01"
    assert unescape_token("~01") == "~1"


@pytest.mark.parametrize("pointer", ["/foo/2", "/foo/-", "/foo/+1", "/nope", "/foo/0/deeper"])
def test_resolve_says_which_step_names_nothing(pointer: str) -> None:
    with pytest.raises(LookupError, match="names nothing"):
        resolve(DOCUMENT, pointer)


def test_a_pointer_without_a_leading_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="must be empty or start with '/'"):
        tokens("foo/0")
