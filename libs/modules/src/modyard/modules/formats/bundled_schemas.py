"""Schema references resolved at publish time to files bundled in the archive, and pinned.

AppCell's ``$payload``/``$result``/``$postpayload`` and ``implements`` name schemas by URL. The
registry never fetches them: every reference must name a file shipped in the archive, which is
checked and pinned by digest when the module is published, so that what runs later is exactly what
was reviewed.

Resolution rules (:func:`candidate_paths`):

* ``http(s)`` URL: the host is ignored. The path after it names the archive file, with its first
  segment dropped when that segment is the cell's name (compared ignoring case and anything that is
  not a letter or digit, so ``newresellerclubcell`` matches ``newResellerClubCell``):
  ``https://repository.appcell.io/newresellerclubcell/schema/domain/register.schema.json`` →
  ``schema/domain/register.schema.json``. When the first segment names something else, the whole
  path is tried first (a schema shared between cells is bundled under its own prefix), then the
  rest of it: a cell renamed from another (``exampleDomainCell`` made from ``naskcell``) keeps the
  old cell's name in its URLs, ``https://repository.appcell.io/naskcell/schema/ns/ns.json`` →
  ``schema/ns/ns.json``. The rest must match exactly one bundled file.
* AppCell's platform interfaces (``https://repository.appcell.io/core/service.schema``,
  ``…/core/interface/renewable.schema.json`` …) resolve to the schemas modyard ships as the platform
  (:mod:`modyard.modules.formats.appcell_platform`) when the bundle is made with
  ``platform_schemas=True``; their pins say ``source: platform`` and they are not archive files.
* A relative reference is an archive path from the archive root (``./`` and inner ``..`` are
  normalised; a path that leaves the archive is refused).
* Other schemes (``file:``, ``urn:`` …) are refused.
* Paths match case-insensitively (AppCell matches its file names that way).
* A ``#fragment`` is a JSON pointer into the file; it must exist.

Each resolved file must be UTF-8 JSON. A schema must be a JSON object accepted by ``check_schema``
of the dialect its ``$schema`` names (Draft 2020-12 when it names none); an unknown dialect is
refused, because checking it would need a meta-schema from the internet. The pin is
``sha256:<hex>`` of the file's bytes.

``$ref`` inside schemas (bundled files and inline schemas alike) are resolved with ``referencing``
against a registry whose only sources are the archive and the JSON Schema meta-schemas shipped with
``jsonschema``. A bundled file's base URI is ``https://archive.modyard.invalid/<path>`` (so relative
refs are relative to the file) unless its ``$id`` says otherwise; absolute ``http(s)`` refs follow
the URL rule above. Every file reached that way is itself parsed, checked and pinned: a
:class:`SchemaBundle` lists the digest of every file in the closure (:attr:`SchemaBundle.files`),
which adapters record in ``Manifest.files`` (role ``schema``), so nested schemas are as immutable as
the top-level ones. Unresolvable refs are reported at the file and JSON pointer of the ``$ref``.

Problems are collected in an :class:`IssueCollector`; :func:`pin_schema` is the one-shot form that
raises :class:`UnresolvedReference`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urldefrag, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

# jsonschema's own meta-schema registry; the package ships no type information.
from jsonschema_specifications import REGISTRY as _META_SCHEMAS  # type: ignore[import-untyped]
from referencing import Registry, Resource, Specification
from referencing.exceptions import (
    CannotDetermineSpecification,
    NoSuchAnchor,
    PointerToNowhere,
    Unresolvable,
)
from referencing.jsonschema import DRAFT202012, UnknownDialect, specification_with

from modyard.common.json_pointer import json_pointer, resolve
from modyard.modules.formats.appcell_platform import (
    interface_path,
    platform_schema_at,
    platform_schema_for,
    shipped_interfaces,
)
from modyard.modules.formats.base import Issue, IssueCollector, ModuleFiles, UnresolvedReference
from modyard.modules.manifest import PinnedSchema

if TYPE_CHECKING:
    # Only for annotations: referencing exports the class it returns from Registry.resolver()
    # from its private module.
    from referencing._core import Resolver

#: The JSON Schema meta-schemas, so "$ref": "http://json-schema.org/draft-07/schema#" resolves
#: without the network.
META_SCHEMAS: Registry[Any] = _META_SCHEMAS

#: Base of the URIs bundled files get when they carry no ``$id``. ``.invalid`` can never resolve,
#: so even a mistaken fetch could not leave the machine.
ARCHIVE_HOST = "archive.modyard.invalid"
ARCHIVE_BASE = f"https://{ARCHIVE_HOST}/"

# Values under these keywords are data, not schemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "examples", "default"})
# Keywords whose value maps arbitrary names to schemas: the names may be anything ("$ref" too).
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies"}
)


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def candidate_paths(reference: str, *, cell_name: str | None = None) -> list[str]:
    """Archive paths ``reference`` may name, most specific first (its fragment ignored).

    Raises :class:`ValueError` saying why when the reference cannot name a bundled file at all.
    """
    target = urldefrag(reference.strip()).url
    if not target:
        raise ValueError("is empty; give a URL or an archive path of a bundled schema")
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        path = _normalised(unquote(parts.path))
        if parts.hostname == ARCHIVE_HOST:
            return [path]
        first, _, rest = path.partition("/")
        if rest and cell_name and _folded(first) == _folded(cell_name):
            return [rest, path]
        # Another cell's name (a cell renamed from another), or a shared prefix bundled as is.
        return [path, rest] if rest else [path]
    if parts.scheme:
        raise ValueError(
            f"uses the {parts.scheme!r} scheme; only http(s) URLs (mapped to bundled files) and "
            "archive paths are accepted"
        )
    return [_normalised(unquote(target))]


def _normalised(path: str) -> str:
    stripped = path.lstrip("/")
    cleaned = posixpath.normpath(stripped) if stripped else ""
    if cleaned in ("", "."):
        raise ValueError("names no file (the path is empty)")
    if cleaned == ".." or cleaned.startswith("../"):
        raise ValueError("leaves the archive with '..'; name a file inside the archive")
    return cleaned


def _folded(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def schema_dialect(schema: Mapping[str, Any]) -> type[Validator]:
    """The validator class for the dialect ``$schema`` names (Draft 2020-12 if none).

    Raises :class:`ValueError` for a dialect this platform does not ship a meta-schema for.
    """
    dialect = schema.get("$schema")
    if dialect is not None:
        if not isinstance(dialect, str):
            raise ValueError("$schema must be a URI string naming a JSON Schema dialect")
        try:
            specification_with(dialect)
        except UnknownDialect as exc:
            raise ValueError(
                f"$schema {dialect!r} is not a known JSON Schema dialect (use draft-04, -06, -07, "
                "2019-09 or 2020-12; meta-schemas are never fetched)"
            ) from exc
    return validator_for(dict(schema), default=Draft202012Validator)


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a valid JSON Schema object, or None when it is."""
    if not isinstance(schema, dict):
        return f"must be a JSON object (a JSON Schema), not {_json_type(schema)}"
    try:
        cls = schema_dialect(schema)
        cls.check_schema(schema)
    except ValueError as exc:
        return str(exc)
    except SchemaError as exc:
        # The schema's root has the pointer "" (RFC 6901), which reads badly in a sentence.
        where = json_pointer(*exc.path) or "the schema's root"
        return f"{exc.message} (at {where})"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


class AmbiguousReference(ValueError):
    """A reference matching several bundled files (they differ only in case)."""


def is_own_file(reference: str, *, cell_name: str | None) -> bool:
    """Whether ``reference`` names a file of the module itself: an archive path, or a URL whose
    first path segment is the cell's name (so the archive must carry it)."""
    parts = urlsplit(urldefrag(reference.strip()).url)
    if not parts.scheme:
        return True
    if parts.scheme not in ("http", "https"):
        return False
    first = unquote(parts.path).lstrip("/").partition("/")[0]
    return parts.hostname == ARCHIVE_HOST or bool(
        cell_name and first and _folded(first) == _folded(cell_name)
    )


class _NotBundled(Exception):
    """Raised from retrieval; ``referencing`` wraps it so the ``$ref`` site can explain it."""


@dataclass(frozen=True)
class PinnedFile:
    """A bundled file the module's metadata depends on, for ``Manifest.files``."""

    path: str
    digest: str
    #: ``schema``, or what the caller of :meth:`SchemaBundle.pin_document` called it.
    role: str


@dataclass(frozen=True)
class _Loaded:
    path: str
    document: Any
    digest: str
    #: ``platform`` for a schema modyard ships (not an archive file).
    source: Literal["archive", "platform"] = "archive"


class SchemaBundle:
    """Resolves, checks and pins the schema references of one module, collecting every problem.

    One instance per module: files are parsed, checked and walked once however often they are
    referenced.
    """

    def __init__(
        self,
        files: ModuleFiles,
        *,
        cell_name: str | None = None,
        issues: IssueCollector | None = None,
        platform_schemas: bool = False,
    ) -> None:
        self._files = files
        self._cell_name = cell_name
        self._platform = platform_schemas
        # Case-folded path -> every stored path with it, to refuse a reference matching several.
        self._folded: dict[str, list[str]] = {}
        for path in files:
            self._folded.setdefault(path.casefold(), []).append(path)
        self.issues = issues if issues is not None else IssueCollector()
        self._loaded: dict[str, _Loaded | str] = {}
        self._walked: set[str] = set()
        self._reported: set[str] = set()
        self._pending: list[str] = []
        self._files_pinned: dict[str, PinnedFile] = {}

    @property
    def files(self) -> list[PinnedFile]:
        """Every bundled file pinned so far (top-level and reached by ``$ref``), by path."""
        return [self._files_pinned[path] for path in sorted(self._files_pinned)]

    # -- public operations -------------------------------------------------------------------

    def pin(self, reference: str, *, source_file: str, pointer: str) -> PinnedSchema | None:
        """Pin a reference to a bundled JSON Schema; None (with an issue) when it fails."""
        located = self._locate(reference, source_file, pointer)
        if located is None:
            return None
        loaded, target = located
        problem = schema_problem(loaded.document)
        if problem is not None:
            self.issues.add(
                source_file,
                pointer,
                f"{reference!r} resolves to {loaded.path}, which is not a valid JSON Schema: "
                f"{problem}. Fix the schema file.",
            )
            return None
        if target is not None and not isinstance(target, dict | bool):
            self.issues.add(
                source_file,
                pointer,
                f"{reference!r} points into {loaded.path} at a {_json_type(target)}, not a schema",
            )
            return None
        if loaded.source == "archive":  # the platform's own schemas carry no $ref to follow
            self._walk_file(loaded.path)
            self._drain()
        return self._pinned(reference, loaded)

    def pin_document(
        self, reference: str, *, source_file: str, pointer: str, role: str = "document"
    ) -> tuple[PinnedSchema, Any] | None:
        """Pin a reference to a bundled JSON document that is not a schema (AppCell postpayload).

        Returns the pin and the document (or the part the fragment names) for the caller to check.
        """
        located = self._locate(reference, source_file, pointer)
        if located is None:
            return None
        loaded, target = located
        pinned = self._pinned(reference, loaded, role)
        return pinned, loaded.document if target is None else target

    def check_inline(self, schema: Any, *, source_file: str, pointer: str) -> bool:
        """Check a schema written inline at ``source_file``+``pointer``, its ``$ref`` included."""
        problem = schema_problem(schema)
        if problem is not None:
            self.issues.add(
                source_file, pointer, f"is not a valid JSON Schema: {problem}. Fix the schema."
            )
            return False
        before = len(self.issues.issues)
        # Relative refs of an inline schema are relative to the file it is written in.
        self._walk_refs(schema, ARCHIVE_BASE + source_file, source_file, pointer)
        self._drain()
        return len(self.issues.issues) == before

    def registry(self) -> Registry[Any]:
        """A ``referencing`` registry that retrieves only from the archive and the meta-schemas."""
        # attrs aliases the private field `_retrieve` as `retrieve`; mypy does not follow aliases.
        own: Registry[Any] = Registry(retrieve=self._retrieve)  # type: ignore[call-arg]
        return own.combine(META_SCHEMAS)

    # -- resolution ---------------------------------------------------------------------------

    def resolve(self, reference: str) -> tuple[str | None, list[str]]:
        """The archive path ``reference`` names (None if not bundled) and the paths tried.

        Raises :class:`ValueError` when the reference cannot name a bundled file at all.
        """
        tried = candidate_paths(reference, cell_name=self._cell_name)
        for candidate in tried:
            found = self._folded.get(candidate.casefold(), [])
            if len(found) > 1:
                raise AmbiguousReference(
                    f"matches several bundled files ({', '.join(sorted(found))}), which differ "
                    "only in case; keep one of them"
                )
            if found:
                return found[0], tried
        return None, tried

    def _locate(
        self, reference: str, source_file: str, pointer: str
    ) -> tuple[_Loaded, Any | None] | None:
        if not isinstance(reference, str):
            self.issues.add(
                source_file,
                pointer,
                f"must be a URL or archive path (a string), not {_json_type(reference)}",
            )
            return None
        shipped = platform_schema_for(reference) if self._platform else None
        if shipped is not None:
            own = _Loaded(shipped.path, shipped.document, shipped.digest, source="platform")
            return self._fragment(reference, own, source_file, pointer)
        try:
            path, tried = self.resolve(reference)
        except ValueError as exc:
            self.issues.add(source_file, pointer, f"{reference!r} {exc}")
            return None
        if path is None:
            platform = ""
            if self._platform and interface_path(reference):
                platform = (
                    " It is under core/ but names none of the AppCell platform interfaces modyard "
                    f"ships ({shipped_interfaces()}); fix the name or bundle the schema."
                )
            self.issues.add(
                source_file,
                pointer,
                f"{reference!r} names no file bundled in the archive (tried: {', '.join(tried)}). "
                "Add the schema to the archive at that path or fix the reference; schema URLs are "
                f"resolved to bundled files and never fetched.{platform}",
            )
            return None
        loaded = self._load(path)
        if isinstance(loaded, str):
            self.issues.add(
                source_file, pointer, f"{reference!r} resolves to {path}, which {loaded}"
            )
            return None
        return self._fragment(reference, loaded, source_file, pointer)

    def _fragment(
        self, reference: str, loaded: _Loaded, source_file: str, pointer: str
    ) -> tuple[_Loaded, Any | None] | None:
        fragment = urldefrag(reference.strip()).fragment
        if not fragment:
            return loaded, None
        try:
            return loaded, _follow_pointer(loaded.document, unquote(fragment))
        except LookupError as exc:
            self.issues.add(
                source_file,
                pointer,
                f"{reference!r}: the fragment {exc} in {loaded.path}; fix the '#…'",
            )
            return None

    def _load(self, path: str) -> _Loaded | str:
        """The parsed file, or why it cannot be read (cached)."""
        if path not in self._loaded:
            data = self._files[path]
            try:
                document = json.loads(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                self._loaded[path] = f"is not UTF-8 text ({exc.reason})"
            except json.JSONDecodeError as exc:
                self._loaded[path] = (
                    f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
                )
            else:
                self._loaded[path] = _Loaded(path, document, digest_bytes(data))
        return self._loaded[path]

    def _pinned(self, reference: str, loaded: _Loaded, role: str = "schema") -> PinnedSchema:
        if loaded.source == "archive":
            self._files_pinned.setdefault(loaded.path, PinnedFile(loaded.path, loaded.digest, role))
        return PinnedSchema(
            reference=reference, path=loaded.path, digest=loaded.digest, source=loaded.source
        )

    def _retrieve(self, uri: str) -> Resource[Any]:
        """``referencing`` retrieval: archive files only; anything else is an explained miss."""
        try:
            path, tried = self.resolve(uri)
        except ValueError as exc:
            raise _NotBundled(str(exc)) from exc
        if path is None:
            raise _NotBundled(
                f"names no bundled file (tried: {', '.join(tried)}); bundle the schema at that "
                "path or fix the $ref"
            )
        loaded = self._load(path)
        if isinstance(loaded, str):
            raise _NotBundled(f"resolves to {path}, which {loaded}")
        problem = schema_problem(loaded.document)
        if problem is not None:
            # Reported once at the file itself: its problem is not the referring schema's.
            if path not in self._reported:
                self._reported.add(path)
                self.issues.add(
                    path, "", f"is not a valid JSON Schema: {problem}. Fix the schema file."
                )
            raise _NotBundled(f"resolves to {path}, which is not a valid JSON Schema")
        self._files_pinned.setdefault(path, PinnedFile(path, loaded.digest, "schema"))
        if path not in self._walked:
            self._pending.append(path)
        return Resource.from_contents(loaded.document, default_specification=DRAFT202012)

    # -- $ref walking -------------------------------------------------------------------------

    def _drain(self) -> None:
        while self._pending:
            self._walk_file(self._pending.pop())

    def _walk_file(self, path: str) -> None:
        if path in self._walked:
            return
        self._walked.add(path)
        loaded = self._load(path)
        if isinstance(loaded, _Loaded):
            self._walk_refs(loaded.document, ARCHIVE_BASE + path, path, "")

    def _walk_refs(self, schema: Any, base_uri: str, issue_file: str, pointer: str) -> None:
        """Resolve every ``$ref`` of ``schema``; report those that do not resolve."""
        try:
            specification = DRAFT202012.detect(schema)
            resource: Resource[Any] = specification.create_resource(schema)
            registry = self.registry().with_resource(base_uri, resource).crawl()
        except (UnknownDialect, CannotDetermineSpecification) as exc:
            self.issues.add(issue_file, pointer, f"embeds a schema of an unknown dialect ({exc})")
            return
        resolver = registry.resolver(base_uri=base_uri)
        for where, ref, scope in _references(schema, resolver, specification, pointer):
            try:
                scope.lookup(ref)
            except Unresolvable as exc:
                self.issues.add(issue_file, where, f"$ref {ref!r} {_unresolvable(exc)}")


def _references(
    node: Any,
    resolver: Resolver[Any],
    specification: Specification[Any],
    pointer: str,
    *,
    schema_map: bool = False,
) -> Iterator[tuple[str, str, Resolver[Any]]]:
    """``(pointer of the $ref, ref, resolver in scope)`` for each ``$ref`` in a schema."""
    if isinstance(node, dict):
        if not schema_map:
            if isinstance(node.get("$id"), str) or isinstance(node.get("id"), str):
                # Entering a resource with its own $id changes the base of the refs inside it.
                resolver = resolver.in_subresource(specification.create_resource(node))
            ref = node.get("$ref")
            if isinstance(ref, str):
                yield pointer + "/$ref", ref, resolver
        for key, value in node.items():
            if not schema_map and (key in _DATA_KEYWORDS or key == "$ref"):
                continue
            yield from _references(
                value,
                resolver,
                specification,
                pointer + json_pointer(key),
                schema_map=not schema_map and key in _SCHEMA_MAPS,
            )
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _references(item, resolver, specification, pointer + json_pointer(index))


def _unresolvable(exc: Unresolvable) -> str:
    # referencing chains Unresolvable <- Unretrievable <- what our retrieval raised.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, _NotBundled):
            return str(cause)
        cause = cause.__cause__
    if isinstance(exc, PointerToNowhere):
        return f"points to {exc.ref!r}, which does not exist in the schema it names"
    if isinstance(exc, NoSuchAnchor):
        return f"names the anchor {exc.anchor!r}, which the schema does not define"
    return "names no bundled file; bundle it in the archive or fix the reference"


def _follow_pointer(document: Any, pointer: str) -> Any:
    if pointer == "/":  # "#/" is how authors write the root, though RFC 6901 reads it as key ""
        return document
    if pointer and not pointer.startswith("/"):
        raise LookupError(f"'#{pointer}' is not a JSON pointer (it must start with '/')")
    try:
        return resolve(document, pointer)
    except LookupError:
        raise LookupError(f"'#{pointer}' does not exist") from None


# -- one-shot helpers ------------------------------------------------------------------------


def pin_schema(
    files: ModuleFiles,
    reference: str,
    *,
    cell_name: str | None,
    source_file: str,
    pointer: str,
) -> PinnedSchema:
    """Pin one reference, raising :class:`UnresolvedReference` with every problem found."""
    bundle = SchemaBundle(files, cell_name=cell_name)
    pinned = bundle.pin(reference, source_file=source_file, pointer=pointer)
    if bundle.issues.issues or pinned is None:
        raise UnresolvedReference(bundle.issues.issues)
    return pinned


def load_pinned(files: ModuleFiles, pinned: PinnedSchema) -> Any:
    """The pinned document (or the part its fragment names), after checking its digest."""
    document = _pinned_document(files, pinned)
    fragment = urldefrag(pinned.reference.strip()).fragment
    return _follow_pointer(document, unquote(fragment)) if fragment else document


def validator_for_pinned(
    files: ModuleFiles, pinned: PinnedSchema, *, cell_name: str | None = None
) -> Validator:
    """A validator for a pinned schema whose ``$ref`` resolve to bundled files only."""
    document = _pinned_document(files, pinned)
    uri = ARCHIVE_BASE + pinned.path
    resource: Resource[Any] = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = SchemaBundle(files, cell_name=cell_name).registry().with_resource(uri, resource)
    # Validating through a $ref to the file's own URI keeps its relative refs relative to it.
    fragment = urldefrag(pinned.reference.strip()).fragment
    entry = {"$ref": uri + (f"#{fragment}" if fragment else "")}
    cls = schema_dialect(document) if isinstance(document, dict) else Draft202012Validator
    return cls(entry, registry=registry.crawl())


def _pinned_document(files: ModuleFiles, pinned: PinnedSchema) -> Any:
    if pinned.source == "platform":
        shipped = platform_schema_at(pinned.path)
        if shipped is None:
            raise UnresolvedReference(
                [Issue(pinned.path, "", "is no longer a platform schema modyard ships")]
            )
        return shipped.document
    path = files.find(pinned.path)
    if path is None:
        detail = f"the pinned file {pinned.path} is not in the archive"
    elif digest_bytes(files[path]) != pinned.digest:
        detail = f"{pinned.path} does not match its pinned digest {pinned.digest}"
    else:
        return json.loads(files[path].decode("utf-8"))
    raise UnresolvedReference([Issue(pinned.path, "", f"{detail}; publish the module again")])


__all__ = [
    "ARCHIVE_BASE",
    "AmbiguousReference",
    "PinnedFile",
    "SchemaBundle",
    "candidate_paths",
    "digest_bytes",
    "is_own_file",
    "load_pinned",
    "pin_schema",
    "schema_dialect",
    "schema_problem",
    "validator_for_pinned",
]
