"""What every format adapter gets and gives.

An adapter receives the archive's files as :class:`ModuleFiles` (already checked by
``modyard.modules.archive``: safe names, capped sizes) and returns a canonical
:class:`~modyard.modules.manifest.Manifest`, or raises :class:`ManifestError` listing every problem
it found, each located by file and JSON pointer, so the publisher can fix them all at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import yaml

from modyard.modules.formats import safe_yaml
from modyard.modules.manifest import Manifest, ModuleFormat


@dataclass(frozen=True)
class Issue:
    """One thing wrong with an upload."""

    file: str
    pointer: str
    detail: str
    #: A problem type more precise than ``invalid-manifest`` (e.g. ``version-required``).
    slug: str | None = None


class ManifestError(Exception):
    """The files are recognised but do not make a valid module (→ 422 ``invalid-manifest``)."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues = list(issues)
        summary = "; ".join(f"{i.file}{i.pointer}: {i.detail}" for i in self.issues[:5])
        super().__init__(summary or "invalid module")


class UnsafeYaml(ManifestError):
    """A YAML file over the alias/expansion budget of :mod:`safe_yaml` (→ 422 ``invalid-manifest``
    naming the file). Raised even while formats are being detected, so the refusal says why."""


def yaml_problem(path: str, exc: yaml.YAMLError) -> ManifestError:
    if isinstance(exc, safe_yaml.YamlBudgetExceeded):
        return UnsafeYaml([Issue(path, "", f"is refused: {exc}")])
    return ManifestError([Issue(path, "", f"is not valid YAML: {exc}")])


class UnresolvedReference(ManifestError):
    """A ``$payload``/``$result``/``implements`` reference names no bundled file, or a schema does
    not compile (→ 422 ``unresolvable-schema``)."""


class ModuleFiles(Mapping[str, bytes]):
    """The archive's regular files by path (``/``-separated, no leading ``./``).

    Lookups with :meth:`find` ignore case, because AppCell matches its file names that way.
    """

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = dict(files)
        self._folded = {path.casefold(): path for path in self._files}

    def __getitem__(self, path: str) -> bytes:
        return self._files[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def find(self, path: str) -> str | None:
        """The stored path matching ``path`` case-insensitively, or None."""
        return self._folded.get(path.casefold())

    def root(self) -> ModuleFiles:
        """The same files with a single top-level folder stripped (zips made of a directory)."""
        tops = {path.split("/", 1)[0] for path in self._files}
        if len(tops) == 1 and all("/" in path for path in self._files):
            prefix = next(iter(tops)) + "/"
            return ModuleFiles({path[len(prefix) :]: data for path, data in self._files.items()})
        return self

    def text(self, path: str) -> str:
        try:
            return self._files[path].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError([Issue(path, "", f"is not UTF-8 text ({exc.reason})")]) from exc

    def json(self, path: str) -> Any:
        try:
            return json.loads(self.text(path))
        except json.JSONDecodeError as exc:
            raise ManifestError(
                [
                    Issue(
                        path,
                        "",
                        f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                    )
                ]
            ) from exc

    def yaml(self, path: str) -> Any:
        try:
            return safe_yaml.load(self.text(path))
        except yaml.YAMLError as exc:
            raise yaml_problem(path, exc) from exc


@dataclass
class IssueCollector:
    """Collects issues while an adapter walks a document, so that all are reported at once."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, file: str, pointer: str, detail: str) -> None:
        self.issues.append(Issue(file, pointer, detail))

    def raise_if_any(self) -> None:
        if self.issues:
            raise ManifestError(self.issues)


#: How a publisher supplies the version of a module whose files carry none.
VERSION_FROM_REQUEST_HINT = (
    "pass it with the upload: `modyard publish --version v1.2.0` (or `modyard pack --version "
    "v1.2.0`), or the `version` form field or query parameter of POST /v1/modules"
)


def module_version(
    written: str | None,
    requested: str | None,
    file: str,
    pointer: str,
    issues: IssueCollector,
    *,
    carries_none: str,
) -> str | None:
    """The version of a module in a format whose files may carry none (Slingr packages, Prisme.ai
    apps, AppCell cells): the one the files write (already normalised), else the one the publish
    request names. Both, disagreeing, is refused: a registry version says what the files are.

    ``carries_none`` says why the files lack one, for the publisher (e.g. "Slingr packages carry no
    version: releases are git tags").
    """
    if written is not None and requested is not None and written != requested:
        issues.add(
            file,
            pointer,
            f"is {written} but the publish request says {requested}; remove the version from "
            f"{file} or publish it as {written}",
        )
        return None
    if written is None and requested is None:
        issues.issues.append(
            Issue(
                file,
                pointer,
                f"is missing and the publish request names none ({carries_none}); "
                f"{VERSION_FROM_REQUEST_HINT}",
                slug="version-required",
            )
        )
        return None
    return written or requested


def json_object(files: ModuleFiles, path: str, issues: IssueCollector) -> dict[str, Any] | None:
    """The file's JSON object, or None after recording why it is not one (so parsing goes on)."""
    try:
        document = files.json(path)
    except ManifestError as exc:
        issues.issues.extend(exc.issues)
        return None
    if not isinstance(document, dict):
        issues.add(path, "", f"must be a JSON object, not {type(document).__name__}")
        return None
    return document


class FormatAdapter(Protocol):
    format: ClassVar[ModuleFormat]

    def detect(self, files: ModuleFiles) -> bool:
        """Whether these files are in this adapter's format (cheap: names and key presence)."""
        ...

    def parse(self, files: ModuleFiles) -> Manifest:
        """The canonical manifest, or :class:`ManifestError` listing every problem."""
        ...


class RequestVersionedAdapter(FormatAdapter, Protocol):
    """A format whose files may carry no version: the publish request supplies it."""

    def parse(self, files: ModuleFiles, *, version: str | None = None) -> Manifest:
        """As :meth:`FormatAdapter.parse`; ``version`` is the publish request's (normalised), which
        the manifest takes when the files carry none (see :func:`module_version`)."""
        ...
