"""JSON pointers (RFC 6901): the one place that writes, escapes and follows them.

Problems locate what to change by pointer (``/body/config/apiKey``), manifests point into
themselves (``#/definitions/x``) and templates name where a placeholder sits, so every one of them
must escape ``~`` and ``/`` inside keys the same way (``a/b`` → ``a~1b``, ``~`` → ``~0``).
"""

from __future__ import annotations

from typing import Any


def escape_token(token: str | int) -> str:
    """One reference token: ``~`` → ``~0`` first, then ``/`` → ``~1`` (the RFC's order)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape_token(token: str) -> str:
    """The key a reference token names: ``~1`` → ``/`` first, then ``~0`` → ``~``."""
    return token.replace("~1", "/").replace("~0", "~")


def json_pointer(*parts: str | int) -> str:
    """``("advanced", "apiUrl")`` → ``/advanced/apiUrl``; no parts → ``""`` (the whole document)."""
    return "".join("/" + escape_token(part) for part in parts)


def tokens(pointer: str) -> list[str]:
    """The unescaped keys of ``pointer`` (``""`` → ``[]``); a ValueError unless it starts with /."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON pointer: it must be empty or start with '/'")
    return [unescape_token(token) for token in pointer[1:].split("/")]


def resolve(document: Any, pointer: str) -> Any:
    """The value ``pointer`` names in ``document``; a LookupError that says which step failed.

    An array index is digits only (no ``-``, no sign), as the RFC has it.
    """
    node = document
    for key in tokens(pointer):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise LookupError(f"{pointer!r} names nothing: there is no {key!r} at that step")
    return node
