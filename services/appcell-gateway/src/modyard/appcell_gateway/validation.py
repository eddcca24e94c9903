"""Payload and result schemas of a cell, compiled once with jsonschema-rs.

A schema is either inline or a file bundled in the module's archive (pinned by the registry at
publish time). Bundled files get the base URI ``https://archive.modyard.invalid/<path>``, so their
relative ``$ref`` stay relative to them; any other ``http(s)`` reference is mapped to a bundled
file by the registry's own rule (:func:`candidate_paths`). Nothing is ever fetched from the
network: a reference that names no bundled file fails the compilation, at install time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

import jsonschema_rs

from modyard.common.json_pointer import json_pointer, resolve
from modyard.modules.formats.bundled_schemas import ARCHIVE_HOST, candidate_paths

ARCHIVE_BASE = f"https://{ARCHIVE_HOST}/"


class SchemaCompileError(ValueError):
    """A schema that cannot be compiled (bad keyword, unresolvable ``$ref``)."""


@dataclass(frozen=True)
class Violation:
    #: JSON pointer into the validated document.
    pointer: str
    message: str


class CompiledSchema:
    """One compiled validator; :meth:`violations` lists every error, located by JSON pointer."""

    __slots__ = ("_validator", "document")

    def __init__(self, validator: Any, document: Any) -> None:
        self._validator = validator
        self.document = document

    def violations(self, instance: Any, *, fields_only: bool = False) -> list[Violation]:
        """Every error; with ``fields_only``, AppCell's "field by field" reading: the fields the
        instance has are checked, its top-level ``required`` is not (a payload template names
        the fields its action sends, e.g. a fetch sends only ``domain`` of a resource whose schema
        requires what a registration needs)."""
        if self._validator.is_valid(instance):  # the fast path allocates no error objects
            return []
        return [
            Violation(json_pointer(*error.instance_path), str(error.message))
            for error in self._validator.iter_errors(instance)
            if not (
                fields_only
                and not list(error.instance_path)
                and isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required)
            )
        ]


class SchemaFiles:
    """The bundled schema documents of one cell, by archive path (matched case-insensitively)."""

    def __init__(self, files: Mapping[str, Any], *, cell_name: str | None) -> None:
        self._files = {path.lower(): document for path, document in files.items()}
        self._cell_name = cell_name

    def document(self, reference: str) -> Any:
        """The document a reference (URL or archive path, with an optional fragment) names."""
        target, fragment = urldefrag(reference)
        document = self._retrieve(target)
        return _follow(document, unquote(fragment)) if fragment else document

    def _retrieve(self, uri: str) -> Any:
        parts = urlsplit(uri)
        candidates = (
            [parts.path.lstrip("/")]
            if parts.hostname == ARCHIVE_HOST
            else candidate_paths(uri, cell_name=self._cell_name)
        )
        for candidate in candidates:
            if candidate.lower() in self._files:
                return self._files[candidate.lower()]
        raise SchemaCompileError(f"{uri} names no file bundled with the cell")

    def compile(self, spec: Mapping[str, Any]) -> CompiledSchema:
        """``spec`` is ``{"inline": schema}`` or ``{"path": p, "reference": ref}``."""
        if "inline" in spec:
            document = spec["inline"]
            entry = document
        else:
            path, fragment = str(spec["path"]), urldefrag(str(spec.get("reference", ""))).fragment
            document = self.document(ARCHIVE_BASE + path + (f"#{fragment}" if fragment else ""))
            whole = self._retrieve(ARCHIVE_BASE + path)
            # Through a $ref to the file's own URI, so that its relative refs resolve from it.
            entry = {"$ref": ARCHIVE_BASE + path + (f"#{fragment}" if fragment else "")}
            if isinstance(whole, dict) and isinstance(whole.get("$schema"), str):
                entry = {"$schema": whole["$schema"], **entry}
        try:
            validator = jsonschema_rs.validator_for(entry, retriever=self._retrieve)
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            raise SchemaCompileError(str(exc).splitlines()[0]) from None
        return CompiledSchema(validator, document)


def _follow(document: Any, pointer: str) -> Any:
    try:
        return resolve(document, pointer)
    except (LookupError, ValueError):
        raise SchemaCompileError(f"the fragment #{pointer} names nothing in its document") from None
