"""Dependency resolution: from ``module@range`` to the exact versions an installation locks.

One version per name, the newest solution that meets the root request, every chosen version's
dependencies and what the workspace already has; found by a backtracking search with forward
checking, conflict-directed backjumping and learned nogoods, under a step budget. What it decides
and how are specified in docs/installer.md ("Dependency resolution"), their one home; the
service's tests/test_resolution_oracle.py checks the answers against resolvelib.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal, cast

from modyard.common.semver import InvalidVersion, parse_range, parse_version

DependencyType = Literal["module", "service"]
ROOT = "root"
#: Candidate versions tried before giving up; a realistic graph needs a few hundred.
DEFAULT_MAX_STEPS = 20_000
_SHOWN_VERSIONS = 8


@dataclass(frozen=True)
class IndexDependency:
    name: str
    range: str
    type: DependencyType = "module"


@dataclass(frozen=True)
class IndexVersion:
    version: str
    yanked: bool = False
    digest: str = ""
    dependencies: tuple[IndexDependency, ...] = ()
    platform: str | None = None

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> IndexVersion:
        """One entry of ``GET /v1/modules/{name}/index``."""
        dependencies = []
        for raw in entry.get("dependencies") or ():
            kind = raw.get("type") or "module"
            if kind not in ("module", "service"):
                raise ValueError(f"dependency type must be 'module' or 'service', not {kind!r}")
            dependencies.append(
                IndexDependency(
                    name=str(raw["name"]),
                    range=str(raw.get("range") or "*"),
                    type=cast(DependencyType, kind),
                )
            )
        platform = entry.get("platform")
        return cls(
            version=str(entry["version"]),
            yanked=bool(entry.get("yanked", False)),
            digest=str(entry.get("digest") or ""),
            dependencies=tuple(dependencies),
            platform=str(platform) if platform else None,
        )


IndexSource = Callable[[str], Awaitable[Sequence[IndexVersion] | None]]
"""Fetches a module's index; ``None`` when the registry has no module of that name."""


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    digest: str
    type: DependencyType
    dependencies: tuple[IndexDependency, ...]
    #: Who needs it: ``("root",)`` for the requested module, else ``"a@1.2.0"`` labels.
    required_by: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "digest": self.digest,
            "type": self.type,
            "dependencies": [
                {"name": dep.name, "range": dep.range, "type": dep.type}
                for dep in self.dependencies
            ],
            "required_by": list(self.required_by),
        }


@dataclass(frozen=True)
class Resolution:
    root: Locked
    #: Every module of the graph, the root included, by name (sorted): the lock.
    modules: Mapping[str, Locked]

    def to_lock(self) -> dict[str, Any]:
        """JSON for the installation's lock; keys and lists in a stable order."""
        return {
            "root": self.root.name,
            "modules": {name: self.modules[name].to_json() for name in sorted(self.modules)},
        }

    @classmethod
    def from_lock(cls, lock: Mapping[str, Any]) -> Resolution:
        """Reads back what :meth:`to_lock` wrote, so a stored lock is never re-resolved."""
        modules: dict[str, Locked] = {}
        for name in sorted(lock["modules"]):
            entry = lock["modules"][name]
            modules[name] = Locked(
                name=name,
                version=str(entry["version"]),
                digest=str(entry["digest"]),
                type=cast(DependencyType, entry["type"]),
                dependencies=tuple(
                    IndexDependency(dep["name"], dep["range"], dep["type"])
                    for dep in entry["dependencies"]
                ),
                required_by=tuple(entry["required_by"]),
            )
        return cls(root=modules[lock["root"]], modules=MappingProxyType(modules))


class ResolutionError(Exception):
    """Resolution cannot succeed; ``detail`` says what to change (the API answers 409)."""

    def __init__(self, detail: str, *, chain: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        #: The requirements involved, e.g. ``["a@1.2.0 needs b@^2", "c@1.0.0 needs b@~1.4"]``.
        self.chain = list(chain)


class UnknownModule(ResolutionError):
    def __init__(self, detail: str, *, module: str, required_by: Sequence[str]) -> None:
        super().__init__(detail, chain=())
        self.module = module
        self.required_by = list(required_by)


class NoMatchingVersion(ResolutionError):
    def __init__(
        self,
        detail: str,
        *,
        chain: Sequence[str],
        module: str,
        range: str,
        available: Sequence[str],
        yanked: Sequence[str],
    ) -> None:
        super().__init__(detail, chain=chain)
        self.module = module
        self.range = range
        self.available = list(available)
        #: Yanked versions that matched the range and were skipped.
        self.yanked = list(yanked)


class VersionConflict(ResolutionError):
    def __init__(self, detail: str, *, chain: Sequence[str], module: str) -> None:
        super().__init__(detail, chain=chain)
        self.module = module


class PlatformMismatch(ResolutionError):
    def __init__(
        self,
        detail: str,
        *,
        chain: Sequence[str],
        module: str,
        versions: Sequence[str],
        platform_version: str,
    ) -> None:
        super().__init__(detail, chain=chain)
        self.module = module
        #: The versions that matched but exclude this platform.
        self.versions = list(versions)
        self.platform_version = platform_version


class ResolutionTooComplex(ResolutionError):
    pass


async def resolve(
    module: str,
    range_: str | None,
    index: IndexSource,
    *,
    platform_version: str,
    installed: Mapping[str, str] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> Resolution:
    """Resolves ``module`` at ``range_`` (``None``: the newest) and everything it needs."""
    if range_ is not None:
        _matcher(range_)  # an unparseable request is the caller's error, raised as is
    platform = str(parse_version(platform_version))
    solver = _Solver(module, range_, index, platform, installed or {}, max_steps)
    try:
        return await solver.run()
    finally:
        solver.fetcher.close()


# --- caches shared by every resolution -----------------------------------------------------


@lru_cache(maxsize=65536)
def _parsed(text: str) -> tuple[Any, str, bool, Any] | None:
    """(Version, normalised text, is_stable, sort key), or None when it is not a version."""
    try:
        version = parse_version(text)
    except InvalidVersion:
        return None
    # The precedence key sorts as a plain tuple, much faster than Version's own comparisons.
    return version, str(version), not version.prerelease, version.precedence_key


def _release_key(version: Any) -> tuple[int, int, int, tuple[str, ...]]:
    # SemVer precedence ignores build metadata; Version's equality does not.
    return (version.major, version.minor, version.patch, tuple(version.prerelease))


@lru_cache(maxsize=16384)
def _matcher(text: str) -> Callable[[Any], bool]:
    """A predicate over Versions; raises InvalidVersion for a bad range."""
    stripped = text.strip()
    exact = _parsed(stripped[1:].strip() if stripped.startswith("=") else stripped)
    if exact is not None:
        wanted = _release_key(exact[0])
        return lambda version: _release_key(version) == wanted
    return cast(Callable[[Any], bool], parse_range(text).match)


@lru_cache(maxsize=16384)
def _valid_range(text: str) -> bool:
    try:
        _matcher(text)
    except InvalidVersion:
        return False
    return True


@lru_cache(maxsize=262144)
def _matches(range_text: str, version_text: str) -> bool:
    parsed = _parsed(version_text)
    return parsed is not None and _matcher(range_text)(parsed[0])


@lru_cache(maxsize=4096)
def _platform_ok(platform_range: str, platform_version: str) -> bool:
    return _valid_range(platform_range) and _matches(platform_range, platform_version)


# --- the index of one module, prepared for the search ----------------------------------------


class _Candidate:
    __slots__ = ("_dep_ranges", "entry", "index", "name", "stable", "text")

    def __init__(self, name: str, index: int, text: str, stable: bool, entry: IndexVersion) -> None:
        self.name = name
        self.index = index  # position newest-first; bit ``1 << index`` in masks
        self.text = text  # normalised version
        self.stable = stable
        self.entry = entry
        # Most candidates are never tried, so their dependencies are indexed on first use.
        self._dep_ranges: dict[str, tuple[str, ...]] | None = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.text}"

    @property
    def dep_ranges(self) -> dict[str, tuple[str, ...]]:
        """Dependency ranges by name (a name may be listed twice)."""
        if self._dep_ranges is None:
            ranges: dict[str, tuple[str, ...]] = {}
            for dep in self.entry.dependencies:
                ranges[dep.name] = (*ranges.get(dep.name, ()), dep.range)
            self._dep_ranges = ranges
        return self._dep_ranges

    @property
    def dep_names(self) -> Iterable[str]:
        return self.dep_ranges.keys()


class _Package:
    __slots__ = (
        "all_mask",
        "base",
        "candidates",
        "installed",
        "masks",
        "name",
        "pin_mask",
        "platform_bad",
        "usable",
        "yanked",
    )

    def __init__(
        self,
        name: str,
        entries: Iterable[IndexVersion],
        platform: str,
        installed: str | None,
    ) -> None:
        self.name = name
        parsed: dict[str, tuple[Any, bool, IndexVersion]] = {}
        for entry in entries:
            version = _parsed(entry.version)
            if version is None or version[1] in parsed:
                continue
            if not all(_valid_range(dep.range) for dep in entry.dependencies):
                continue
            parsed[version[1]] = (version[3], version[2], entry)
        ordered = sorted(parsed.items(), key=lambda item: item[1][0], reverse=True)
        self.candidates = [
            _Candidate(name, position, text, stable, entry)
            for position, (text, (_, stable, entry)) in enumerate(ordered)
        ]
        self.all_mask = (1 << len(self.candidates)) - 1
        self.yanked = 0
        self.platform_bad = 0
        for candidate in self.candidates:
            if candidate.entry.yanked:
                self.yanked |= 1 << candidate.index
            elif candidate.entry.platform and not _platform_ok(candidate.entry.platform, platform):
                self.platform_bad |= 1 << candidate.index
        self.usable = self.all_mask & ~self.yanked & ~self.platform_bad
        self.installed: str | None = None
        self.pin_mask = 0
        if installed is not None:
            installed_parsed = _parsed(installed)
            self.installed = installed_parsed[1] if installed_parsed else installed
            for candidate in self.candidates:
                if candidate.text == self.installed:
                    self.pin_mask = 1 << candidate.index
        # The versions any requirement can pick from.
        self.base = self.pin_mask if installed is not None else self.usable
        self.masks: dict[str, int] = {}

    def mask(self, range_text: str | None) -> int:
        if range_text is None:
            return self.all_mask
        mask = self.masks.get(range_text)
        if mask is None:
            mask = 0
            for candidate in self.candidates:
                if _matches(range_text, candidate.text):
                    mask |= 1 << candidate.index
            self.masks[range_text] = mask
        return mask

    def texts(self, mask: int) -> list[str]:
        return [c.text for c in self.candidates if mask >> c.index & 1]


@dataclass(slots=True, eq=False)
class _Req:
    requirer: str  # "root" or "a@1.2.0"
    owner: str | None  # the requiring module's name; None for the root request
    name: str
    range: str | None  # None: the root asked for the newest
    mask: int
    type: DependencyType

    def line(self) -> str:
        return f"{self.requirer} needs {self.name}@{self.range or '*'}"


# --- fetching --------------------------------------------------------------------------------


class _Fetcher:
    """Memoised, concurrent index fetches; at most one per name per resolution."""

    def __init__(self, index: IndexSource, platform: str, installed: Mapping[str, str]) -> None:
        self._index = index
        self._platform = platform
        self._installed = installed
        self.packages: dict[str, _Package | None] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def _fetch(self, name: str) -> None:
        entries = await self._index(name)
        self.packages[name] = (
            None
            if entries is None
            else _Package(name, entries, self._platform, self._installed.get(name))
        )

    async def need(self, names: Iterable[str]) -> None:
        missing = [name for name in names if name not in self.packages]
        if not missing:
            return
        if len(missing) == 1 and missing[0] not in self._tasks:
            await self._fetch(missing[0])  # no task needed to wait for one name
            return
        self.prefetch(missing)
        await asyncio.gather(*(self._tasks[name] for name in missing))

    def prefetch(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.packages and name not in self._tasks:
                task = asyncio.create_task(self._fetch(name))
                # A speculative fetch that fails only matters if the search needs that name,
                # and then ``need`` re-raises it; never warn about it otherwise.
                task.add_done_callback(_consume)
                self._tasks[name] = task

    def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


# --- the search ------------------------------------------------------------------------------

Nogood = dict[str, int]
"""Choices that cannot all hold in any solution: if every name in it is at a version inside
its mask, resolution cannot succeed. Masks cover every version that fails for the same reason
(all of a module's 1.x versions requiring ``d@^1``, say), so one lesson prunes many choices."""


def _merge(into: Nogood, other: Mapping[str, int], skip: str | None = None) -> None:
    for name, mask in other.items():
        if name != skip:
            into[name] = into[name] & mask if name in into else mask


@dataclass(slots=True, eq=False)
class _Frame:
    name: str
    package: _Package
    candidates: list[_Candidate]
    position: int = 0
    chosen: _Candidate | None = None
    #: Why each candidate tried so far failed; each has a term on ``name`` covering it.
    failures: list[Nogood] = field(default_factory=list)
    #: (name, its domain before) for each requirement the chosen version added, for undo.
    added: list[tuple[str, int | None]] = field(default_factory=list)


class _Solver:
    def __init__(
        self,
        module: str,
        range_: str | None,
        index: IndexSource,
        platform: str,
        installed: Mapping[str, str],
        max_steps: int,
    ) -> None:
        self.module = module
        self.range = range_
        self.platform = platform
        self.max_steps = max_steps
        self.fetcher = _Fetcher(index, platform, installed)
        #: Names in discovery order; the name at position i is decided at level i.
        self.order: list[str] = []
        self.position: dict[str, int] = {}
        self.requirements: dict[str, list[_Req]] = {}
        #: Versions of each discovered name still allowed by every requirement, as a bit mask.
        self.domain: dict[str, int] = {}
        self.frames: list[_Frame] = []
        #: Learned nogoods by each name they mention.
        self.learned: dict[str, list[Nogood]] = {}
        self.terms: dict[tuple[str, str, int], int] = {}
        self.error: ResolutionError | None = None
        self.fallback: Callable[[], ResolutionError] | None = None

    async def run(self) -> Resolution:
        await self.fetcher.need([self.module])
        package = self.fetcher.packages[self.module]
        mask = package.mask(self.range) if package is not None else 0
        root = _Req(ROOT, None, self.module, self.range, mask, "module")
        if self._require(root, None) is not None:
            raise self._failure()
        self._push()
        steps = 0
        while True:
            frame = self.frames[-1]
            level = len(self.frames) - 1
            if frame.position < len(frame.candidates):
                candidate = frame.candidates[frame.position]
                frame.position += 1
                steps += 1
                if steps > self.max_steps:
                    raise ResolutionTooComplex(
                        f"Resolving {self.module} tried {self.max_steps} versions without "
                        "settling; require exact versions of its dependencies to narrow it down."
                    )
                reason = self._refuted(frame.name, candidate)
                if reason is None:
                    await self.fetcher.need(candidate.dep_names)
                    reason = self._choose(frame, candidate, level)
                if reason is not None:
                    frame.failures.append(reason)
                    continue
                if level + 1 == len(self.order):
                    return self._resolution()
                self._push()
                continue
            # Every candidate failed: learn why, and jump back to the latest decision involved.
            nogood = self._derive(frame)
            if not nogood:
                raise self._failure()
            for name in nogood:
                self.learned.setdefault(name, []).append(nogood)
            target = max(self.position[name] for name in nogood)
            assert target < level
            self.frames.pop()
            while len(self.frames) - 1 > target:
                self._undo(self.frames.pop())
            back = self.frames[target]
            self._undo(back)
            back.failures.append(nogood)

    def _push(self) -> None:
        name = self.order[len(self.frames)]
        package = self.fetcher.packages[name]
        assert package is not None  # unknown names never get a domain
        domain = self.domain[name]
        candidates = [c for c in package.candidates if domain >> c.index & 1]
        if name == self.module and self.range is None and not self.frames:
            candidates.sort(key=lambda c: not c.stable)  # stable first, still newest first
        self.frames.append(_Frame(name, package, candidates))

    def _holds(self, name: str, mask: int) -> bool:
        at = self.position.get(name)
        if at is None or at >= len(self.frames):
            return False
        chosen = self.frames[at].chosen
        return chosen is not None and bool(mask >> chosen.index & 1)

    def _refuted(self, name: str, candidate: _Candidate) -> Nogood | None:
        """A learned nogood that choosing ``candidate`` would complete, if any."""
        bit = 1 << candidate.index
        for nogood in self.learned.get(name, ()):
            if nogood[name] & bit and all(
                other == name or self._holds(other, mask) for other, mask in nogood.items()
            ):
                return nogood
        return None

    def _term(self, owner: str, dependency: str, mask: int) -> int:
        """The versions of ``owner`` that need ``dependency`` within ``mask`` (any version of it
        when it is unknown): they all fail wherever this one's requirement fails."""
        key = (owner, dependency, mask)
        term = self.terms.get(key)
        if term is None:
            owner_package = self.fetcher.packages[owner]
            assert owner_package is not None
            target = self.fetcher.packages.get(dependency)
            term = 0
            for candidate in owner_package.candidates:
                ranges = candidate.dep_ranges.get(dependency)
                if ranges is None:
                    continue
                if target is not None:
                    needed = target.all_mask
                    for text in ranges:
                        needed &= target.mask(text)
                    if needed & ~mask:
                        continue
                term |= 1 << candidate.index
            self.terms[key] = term
        return term

    def _choose(self, frame: _Frame, candidate: _Candidate, level: int) -> Nogood | None:
        """Adds the candidate's requirements; on a clash undoes them and returns why."""
        frame.chosen = candidate
        for dep in candidate.entry.dependencies:
            package = self.fetcher.packages[dep.name]
            mask = package.mask(dep.range) if package is not None else 0
            req = _Req(candidate.label, frame.name, dep.name, dep.range, mask, dep.type)
            reason = self._require(req, frame.added)
            if reason is not None:
                self._undo(frame)
                return reason
        # Start fetching what the likely next choices will need while the search goes on.
        for name in candidate.dep_names:
            newest = self.domain.get(name, 0)
            package = self.fetcher.packages.get(name)
            if newest and package is not None and self.position[name] > level:
                lowest = (newest & -newest).bit_length() - 1
                self.fetcher.prefetch(package.candidates[lowest].dep_names)
        return None

    def _require(self, req: _Req, added: list[tuple[str, int | None]] | None) -> Nogood | None:
        """Records a requirement, or returns the choices that make it impossible."""
        package = self.fetcher.packages[req.name]
        if package is None:
            self._record(lambda: _unknown(req))
            return {} if req.owner is None else {req.owner: self._term(req.owner, req.name, 0)}
        existing = self.requirements.get(req.name)
        before = self.domain.get(req.name)
        domain = (package.base if before is None else before) & req.mask
        if not domain:
            # The ranges on this name exclude every version: a real conflict between requirers.
            culprits = _minimal([*(existing or ()), req], package)
            self._record(lambda: _explain(package, culprits, self.platform))
            nogood: Nogood = {}
            for q in culprits:
                if q.owner is not None:
                    _merge(nogood, {q.owner: self._term(q.owner, req.name, q.mask)})
            return nogood
        at = self.position.get(req.name)
        if at is not None and at < len(self.frames):
            chosen = self.frames[at].chosen
            assert chosen is not None
            assert req.owner is not None  # the root request comes before any decision
            if not req.mask >> chosen.index & 1:
                # The ranges are compatible, but not with the version already decided; going
                # back to that decision may fix it, so this is not the conflict to report.
                snapshot = [*(existing or ()), req]
                self.fallback = self.fallback or (
                    lambda: _clash_with_decision(package, snapshot, chosen)
                )
                nogood = {req.name: package.all_mask & ~req.mask}
                _merge(nogood, {req.owner: self._term(req.owner, req.name, req.mask)})
                return nogood
        if existing is None:
            self.requirements[req.name] = [req]
            self.position[req.name] = len(self.order)
            self.order.append(req.name)
        else:
            existing.append(req)
        self.domain[req.name] = domain
        if added is not None:
            added.append((req.name, before))
        return None

    def _derive(self, frame: _Frame) -> Nogood:
        """What an exhausted name teaches: the other choices in its candidates' failures,
        plus the requirers whose ranges kept the remaining versions out."""
        name = frame.name
        covered = 0
        nogood: Nogood = {}
        for failure in frame.failures:
            covered |= failure[name]
            _merge(nogood, failure, skip=name)
        requirements = self.requirements[name]
        uncovered = frame.package.base & ~covered
        needed: list[_Req] = []
        for req in requirements:
            if uncovered & ~req.mask:
                needed.append(req)
                uncovered &= req.mask
        assert not uncovered
        if not needed and all(req.owner is not None for req in requirements):
            # Nothing was excluded by a range, but the name is only here because of a requirer.
            needed.append(min(requirements, key=lambda req: self.position[req.owner or ""]))
        for req in needed:
            if req.owner is not None:
                _merge(nogood, {req.owner: self._term(req.owner, name, req.mask)})
        return nogood

    def _undo(self, frame: _Frame) -> None:
        for name, before in reversed(frame.added):
            requirements = self.requirements[name]
            requirements.pop()
            if before is None:
                del self.requirements[name], self.domain[name], self.position[name]
                popped = self.order.pop()
                assert popped == name
            else:
                self.domain[name] = before
        frame.added.clear()
        frame.chosen = None

    def _record(self, error: Callable[[], ResolutionError]) -> None:
        if self.error is None:
            self.error = error()

    def _failure(self) -> ResolutionError:
        if self.error is not None:
            return self.error
        if self.fallback is not None:
            return self.fallback()
        return ResolutionError(f"{self.module} cannot be resolved.")  # pragma: no cover

    def _resolution(self) -> Resolution:
        modules: dict[str, Locked] = {}
        for frame in sorted(self.frames, key=lambda f: f.name):
            chosen = frame.chosen
            assert chosen is not None
            requirements = self.requirements[frame.name]
            requirers = {req.requirer for req in requirements}
            required_by = ([ROOT] if ROOT in requirers else []) + sorted(requirers - {ROOT})
            kinds = {req.type for req in requirements}
            modules[frame.name] = Locked(
                name=frame.name,
                version=chosen.text,
                digest=chosen.entry.digest,
                type="module" if "module" in kinds else "service",
                dependencies=chosen.entry.dependencies,
                required_by=tuple(required_by),
            )
        return Resolution(root=modules[self.module], modules=MappingProxyType(modules))


# --- explanations ----------------------------------------------------------------------------


def _minimal(requirements: list[_Req], package: _Package) -> list[_Req]:
    """A minimal subset of the requirements that still excludes every allowed version.

    The last one (the requirement just added) always stays: without it there were versions.
    """
    keep = list(requirements)
    for req in requirements[:-1]:
        rest = [q for q in keep if q is not req]
        mask = package.base
        for q in rest:
            mask &= q.mask
        if not mask:
            keep = rest
    return keep


def _unknown(req: _Req) -> UnknownModule:
    if req.requirer == ROOT:
        detail = f"The registry has no module named {req.name!r}; check the name."
    else:
        detail = (
            f"The registry has no module named {req.name!r}, which {req.requirer} needs "
            f"({req.line()}); publish {req.name} or choose another version of the module "
            "that needs it."
        )
    return UnknownModule(detail, module=req.name, required_by=[req.requirer])


def _versions_list(package: _Package, mask: int) -> str:
    texts = package.texts(mask)
    if not texts:
        return "none"
    shown = ", ".join(texts[:_SHOWN_VERSIONS])
    more = len(texts) - _SHOWN_VERSIONS
    return f"{shown} and {more} older" if more > 0 else shown


def _available(package: _Package) -> str:
    text = f"{package.name} has {_versions_list(package, package.all_mask & ~package.yanked)}"
    if package.yanked:
        text += f" (yanked: {_versions_list(package, package.yanked)})"
    return text


def _platform_error(
    package: _Package, matching: int, chain: list[str], platform: str
) -> PlatformMismatch:
    bad = matching & package.platform_bad
    needs = ", ".join(
        f"{c.label} requires platform {c.entry.platform}"
        for c in package.candidates
        if bad >> c.index & 1
    )
    detail = (
        f"{'; '.join(chain)}: no matching version of {package.name} runs on this modyard "
        f"(platform {platform}): {needs}. Upgrade modyard, or require a version of "
        f"{package.name} that supports platform {platform}."
    )
    return PlatformMismatch(
        detail,
        chain=chain,
        module=package.name,
        versions=package.texts(bad),
        platform_version=platform,
    )


def _explain(package: _Package, culprits: list[_Req], platform: str) -> ResolutionError:
    """Turns requirements that exclude every allowed version into the error a caller reads."""
    name = package.name
    joint = package.all_mask
    for req in culprits:
        joint &= req.mask
    chain = [req.line() for req in culprits]
    if package.installed is not None and joint & package.usable:
        # The ranges could be met by a fresh install; it is the installed version that clashes.
        installed_line = f"workspace has {name}@{package.installed}"
        if not package.pin_mask:
            installed_line += " (no longer in the registry's index)"
        chain.append(installed_line)
        return VersionConflict(
            f"{', '.join(chain)}. Change {name} in the workspace to a version matching "
            f"{' and '.join(req.range or '*' for req in culprits)}, or choose versions whose "
            f"requirements accept {name}@{package.installed}.",
            chain=chain,
            module=name,
        )
    if joint & ~package.yanked & package.platform_bad and not joint & package.usable:
        return _platform_error(package, joint, chain, platform)
    if len(culprits) == 1:
        req = culprits[0]
        yanked = joint & package.yanked
        if yanked:
            detail = (
                f"{req.line()}, but every version of {name} matching {req.range or '*'} is "
                f"yanked ({_versions_list(package, yanked)}); {_available(package)}. Require "
                "a version that is not yanked."
            )
        else:
            detail = (
                f"{req.line()}, but no version of {name} matches {req.range or '*'}; "
                f"{_available(package)}. Change the range or publish a matching version."
            )
        return NoMatchingVersion(
            detail,
            chain=chain,
            module=name,
            range=req.range or "*",
            available=package.texts(package.all_mask & ~package.yanked),
            yanked=package.texts(yanked),
        )
    only_yanked = (
        f" (only yanked {_versions_list(package, joint)} would satisfy all of them)"
        if joint
        else ""
    )
    return VersionConflict(
        f"{', '.join(chain)}: no version of {name} satisfies all of these{only_yanked}; "
        f"{_available(package)}. Change one of these ranges, or require other versions of the "
        "modules that carry them.",
        chain=chain,
        module=name,
    )


def _clash_with_decision(
    package: _Package, requirements: list[_Req], chosen: _Candidate
) -> VersionConflict:
    chain = [req.line() for req in requirements]
    return VersionConflict(
        f"{', '.join(chain)}: {chosen.label} was chosen for the first requirements and the "
        f"last excludes it, and no other choice worked; {_available(package)}. Require "
        "exact versions to settle it.",
        chain=chain,
        module=package.name,
    )
