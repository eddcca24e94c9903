"""The installer's resolver against ``resolvelib`` on random indexes (hypothesis).

The hand-written search in ``modyard.installer.resolution`` (backjumping, learned nogoods, bit
masks) is fast because it is clever; this keeps it honest. ``resolvelib`` (pip's resolver) is
handed the same index through a small provider that states modyard's rules plainly, and on every
generated index both must agree on whether a solution exists. Every answer of ours must satisfy
every constraint on its own terms (checked here without either solver), and resolvelib's answer
is checked the same way, so a provider that misstates the rules fails too.

The answers themselves may differ: modyard prefers newer versions for names nearer the root,
resolvelib has its own order. What must hold is that a solution exists for one exactly when it
exists for the other. ``RESOLUTION_ORACLE_EXAMPLES`` raises the number of indexes tried.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from resolvelib import AbstractProvider, BaseReporter
from resolvelib.resolvers import Resolution, ResolutionImpossible

from modyard.common.semver import InvalidVersion, parse_range, parse_version
from modyard.installer.resolution import (
    DependencyType,
    IndexDependency,
    IndexVersion,
    ResolutionError,
    resolve,
)
from modyard.installer.resolution import Resolution as Lock

PLATFORM = "1.4.0"
ROOT = "p0"
NAMES = ("p0", "p1", "p2", "p3", "p4")
#: A name no index has: a version that needs it can never be chosen.
GHOST = "ghost"
#: Versions an index may list: stable and prerelease, v-prefixed, build metadata.
VERSIONS = (
    "0.1.0",
    "0.2.0",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "v1.1.0",
    "1.2.0-rc.1",
    "1.2.0",
    "1.2.0+build.7",
    "2.0.0-beta.1",
    "2.0.0",
    "2.1.0",
)
#: Damage both sides must ignore: entries the registry would have refused.
BAD_VERSIONS = ("1.0", "banana")
#: Ranges a dependency (or the request) may carry; the common ones listed twice, so that
#: indexes are solvable about as often as not.
RANGES = (
    "*",
    "*",
    "^1.0.0",
    "^1.0.0",
    "~1.0.0",
    "^0.1.0",
    "^v1.1.0",
    ">=1.0.0 <2.0.0",
    ">=1.0.0 <2.0.0",
    "1.x",
    ">=2.0.0",
    ">=2.0.0",
    "<1.0.0 || >=2.0.0",
    "^2.0.0-beta.1",
    "1.0.0",
    "=1.2.0-rc.1",
    "1.2.0",
    "2.0.0",
)
BAD_RANGE = "^^nope"
#: Platform ranges of a version, against modyard's own ``PLATFORM``.
PLATFORMS = ("^1.0.0", ">=1.4.0", ">=2.0.0", "<1.0.0", "garbage")
EXAMPLES = int(os.environ.get("RESOLUTION_ORACLE_EXAMPLES", "300"))

Index = dict[str, list[IndexVersion]]


# --- modyard's rules, stated plainly (independent of resolution.py's masks and caches) ------


def parsed(text: str) -> Any | None:
    try:
        return parse_version(text)
    except InvalidVersion:
        return None


def range_ok(text: str) -> bool:
    try:
        parse_range(text)
    except InvalidVersion:
        return False
    return True


def allows(range_: str | None, version_text: str) -> bool:
    """npm ranges; a range that is one version means exactly that release (build ignored)."""
    if range_ is None:
        return True
    version = parse_version(version_text)
    stripped = range_.strip()
    exact = parsed(stripped[1:].strip() if stripped.startswith("=") else stripped)
    if exact is not None:
        return release(exact) == release(version)
    return bool(version in parse_range(range_))


def release(version: Any) -> tuple[int, int, int, tuple[str, ...]]:
    return (version.major, version.minor, version.patch, tuple(version.prerelease))


def candidates(index: Index, name: str, installed: Mapping[str, str]) -> list[IndexVersion]:
    """The versions of ``name`` any solution may use, newest first, normalised.

    Unparseable versions and versions with an unparseable dependency range are damage; the
    first entry of a version listed twice wins. An installed name can only be its installed
    version (yanked or not, whatever its platform range); otherwise yanked versions and
    versions for another platform are out.
    """
    seen: dict[str, IndexVersion] = {}
    for entry in index.get(name, ()):
        version = parsed(entry.version)
        if version is None or str(version) in seen:
            continue
        if not all(range_ok(dep.range) for dep in entry.dependencies):
            continue
        seen[str(version)] = IndexVersion(
            version=str(version),
            yanked=entry.yanked,
            digest=entry.digest,
            dependencies=entry.dependencies,
            platform=entry.platform,
        )
    entries = sorted(seen.values(), key=lambda e: parse_version(e.version), reverse=True)
    if name in installed:
        pinned = parsed(installed[name])
        return [e for e in entries if pinned is not None and e.version == str(pinned)]
    return [
        e
        for e in entries
        if not e.yanked
        and (e.platform is None or (range_ok(e.platform) and allows(e.platform, PLATFORM)))
    ]


def violations(
    index: Index,
    range_: str | None,
    installed: Mapping[str, str],
    chosen: Mapping[str, str],
) -> list[str]:
    """What is wrong with ``chosen`` (name → version) as an answer; empty when nothing is."""
    problems: list[str] = []
    if ROOT not in chosen:
        return [f"{ROOT} is not in the answer"]
    if not allows(range_, chosen[ROOT]):
        problems.append(f"{ROOT}@{chosen[ROOT]} misses the request {range_}")
    entries: dict[str, IndexVersion] = {}
    for name, version in chosen.items():
        entry = next((e for e in candidates(index, name, installed) if e.version == version), None)
        if entry is None:
            problems.append(f"{name}@{version} is not a usable version of {name}")
        else:
            entries[name] = entry
    # Every requirement of every chosen version holds, and nothing outside the graph is there.
    reached = {ROOT}
    todo = [ROOT]
    while todo:
        entry = entries.get(todo.pop())
        if entry is None:
            continue
        for dep in entry.dependencies:
            if dep.name not in chosen:
                problems.append(f"{entry.version} needs {dep.name}, which is not in the answer")
                continue
            if not allows(dep.range, chosen[dep.name]):
                problems.append(f"{dep.name}@{chosen[dep.name]} misses {dep.name}@{dep.range}")
            if dep.name not in reached:
                reached.add(dep.name)
                todo.append(dep.name)
    if extra := set(chosen) - reached:
        problems.append(f"{sorted(extra)} are in the answer but nothing needs them")
    return problems


# --- resolvelib, given the same rules --------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    name: str
    range: str | None


@dataclass(frozen=True)
class Candidate:
    name: str
    entry: IndexVersion


class Provider(AbstractProvider[Requirement, Candidate, str]):
    def __init__(self, index: Index, installed: Mapping[str, str]) -> None:
        self.index = index
        self.installed = installed

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.name

    def get_preference(self, identifier: str, *args: Any, **kwargs: Any) -> int:
        return 0

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        ranges = [req.range for req in requirements[identifier]]
        excluded = {c.entry.version for c in incompatibilities[identifier]}
        return [
            Candidate(identifier, entry)
            for entry in candidates(self.index, identifier, self.installed)
            if entry.version not in excluded and all(allows(r, entry.version) for r in ranges)
        ]

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        return allows(requirement.range, candidate.entry.version)

    def get_dependencies(self, candidate: Candidate) -> Iterable[Requirement]:
        return [Requirement(dep.name, dep.range) for dep in candidate.entry.dependencies]


def oracle(index: Index, range_: str | None, installed: Mapping[str, str]) -> dict[str, str] | None:
    provider = Provider(index, installed)
    # ``Resolution`` rather than ``Resolver``: the latter's result builder recurses forever on a
    # cycle left unconnected to the root after backtracking, so what the root reaches is walked
    # here instead.
    try:
        state = Resolution(provider, BaseReporter()).resolve(
            [Requirement(ROOT, range_)], max_rounds=10_000
        )
    except ResolutionImpossible:
        return None
    chosen: dict[str, str] = {}
    todo = [ROOT]
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        candidate = state.mapping[name]
        chosen[name] = candidate.entry.version
        todo.extend(req.name for req in provider.get_dependencies(candidate))
    return chosen


def ours(index: Index, range_: str | None, installed: Mapping[str, str]) -> Lock | None:
    async def source(name: str) -> Sequence[IndexVersion] | None:
        return index.get(name)

    try:
        return asyncio.run(
            resolve(ROOT, range_, source, platform_version=PLATFORM, installed=installed)
        )
    except ResolutionError:
        return None


# --- random indexes ---------------------------------------------------------------------------


def rare(common: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``common`` nine times in ten, ``odd`` otherwise."""
    return st.sampled_from(range(10)).flatmap(lambda n: odd if n == 9 else common)


#: Ranges written around a version ``X`` a solution may use: "planted" versions make deep
#: solvable graphs common, where independent random ranges rarely line up.
AROUND = ("^{}", "~{}", "{}", ">={}", "<={} || >=9.0.0", ">={} <3.0.0")


@st.composite
def index_versions(draw: st.DrawFn, planted: Mapping[str, str]) -> IndexVersion:
    # Mostly one or two dependencies: a version with none ends the graph, so plenty of those
    # make every answer a single module.
    count = draw(st.sampled_from((1, 1, 2, 2, 0, 3)))
    dependencies = []
    for _ in range(count):
        name = draw(rare(st.sampled_from(NAMES), st.just(GHOST)))
        if name in planted and draw(st.booleans()):
            range_ = draw(st.sampled_from(AROUND)).format(planted[name])
        else:
            range_ = draw(rare(st.sampled_from(RANGES), st.just(BAD_RANGE)))
        kind: DependencyType = draw(st.sampled_from(("module", "service")))
        dependencies.append(IndexDependency(name=name, range=range_, type=kind))
    return IndexVersion(
        version=draw(rare(st.sampled_from(VERSIONS), st.sampled_from(BAD_VERSIONS))),
        yanked=draw(rare(st.just(False), st.just(True))),
        digest="sha256:0",
        dependencies=tuple(dependencies),
        platform=draw(rare(st.none(), st.sampled_from(PLATFORMS))),
    )


@st.composite
def problems(draw: st.DrawFn) -> tuple[Index, str | None, dict[str, str]]:
    planted = {name: draw(st.sampled_from(VERSIONS)).removeprefix("v") for name in NAMES}
    index = {
        name: draw(st.lists(index_versions(planted), min_size=2, max_size=8)) for name in NAMES
    }
    for name in NAMES:  # each planted version is listed (perhaps yanked, perhaps twice)
        entry = draw(index_versions(planted))
        at = draw(st.integers(0, len(index[name])))
        index[name].insert(
            at,
            IndexVersion(
                planted[name], entry.yanked, "sha256:0", entry.dependencies, entry.platform
            ),
        )
    range_ = draw(st.none() | st.sampled_from(RANGES))
    installed = draw(
        rare(
            st.just({}),
            st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VERSIONS), max_size=2),
        )
    )
    return index, range_, installed


def v(version: str, *deps: str, yanked: bool = False, platform: str | None = None) -> IndexVersion:
    return IndexVersion(
        version=version,
        yanked=yanked,
        dependencies=tuple(IndexDependency(*dep.partition("@")[::2]) for dep in deps),
        platform=platform,
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(problems())
# A conflict only a step back from the newest root version settles.
@example(
    (
        {
            "p0": [v("1.0.0", "p1@^1"), v("2.0.0", "p1@^2", "p2@^1")],
            "p1": [v("1.0.0"), v("2.0.0", "p2@^2")],
            "p2": [v("1.0.0")],
        },
        None,
        {},
    )
)
# An installed dependency steers the choice of its requirer.
@example(
    (
        {"p0": [v("1.0.0", "p1@^1"), v("2.0.0", "p1@^2")], "p1": [v("1.0.0"), v("2.0.0")]},
        None,
        {"p1": "1.0.0"},
    )
)
# Found by this test: a solution (p0@1.0.0, p3@1.0.0) resolvelib 1.2 misses (its backjumping).
@example(
    (
        {
            "p0": [
                v("1.2.0", "p0@0.2.0"),
                v("1.0.0", "p3@^1.0.0"),
                v("0.2.0", "p2@^1.0.0", "p3@1.1.0"),
            ],
            "p2": [v("1.2.0")],
            "p3": [v("1.2.0", "p0@0.2.0"), v("1.0.0"), v("1.1.0", "p1@~1.0.0")],
        },
        None,
        {},
    )
)
# Unknown dependency on the newest version, a cycle, a yanked and a platform-excluded version.
@example(
    (
        {
            "p0": [
                v("1.0.0", "p1@*"),
                v("1.1.0", "ghost@*"),
                v("1.2.0", yanked=True),
                v("1.3.0", platform=">=2.0.0"),
            ],
            "p1": [v("1.0.0", "p0@^1.0.0")],
        },
        "^1.0.0",
        {},
    )
)
def test_a_solution_exists_whenever_resolvelib_finds_one_and_satisfies_every_constraint(
    problem: tuple[Index, str | None, dict[str, str]],
) -> None:
    index, range_, installed = problem
    note(f"index={index!r}\nrange={range_!r}\ninstalled={installed!r}")

    compare(index, range_, installed)


def compare(index: Index, range_: str | None, installed: Mapping[str, str]) -> None:
    """Both resolvers on one problem: where resolvelib finds a solution modyard finds one too,
    and every answer of modyard's satisfies every constraint.

    The other way round cannot lean on resolvelib: its backjumping can give up on a problem that
    has a solution (sarugaku/resolvelib#206, open). So when only modyard finds one, its answer,
    checked on its own terms, is the proof that one exists; and when modyard finds none, a plain
    exhaustive search must find none either.
    """
    answer = ours(index, range_, installed)
    expected = oracle(index, range_, installed)
    event("solvable" if expected is not None else "unsolvable")
    if expected is not None:
        event(f"{len(expected)} modules in the answer")
        assert violations(index, range_, installed, expected) == [], "the oracle's own answer"
        assert answer is not None, f"modyard found no solution; resolvelib found {expected}"
    if answer is not None:
        chosen = {name: locked.version for name, locked in answer.modules.items()}
        assert violations(index, range_, installed, chosen) == []
        assert answer.root.name == ROOT
        for name, locked in answer.modules.items():
            wanted = next(
                e for e in candidates(index, name, installed) if e.version == locked.version
            )
            assert locked.dependencies == wanted.dependencies
        if expected is None:
            event("resolvelib missed a solution (its backjumping; modyard's answer holds)")
    else:
        assert not exhaustive(index, range_, installed), "modyard missed a solution"


def exhaustive(index: Index, range_: str | None, installed: Mapping[str, str]) -> bool:
    """Whether any solution exists: every version of each name tried where it is first needed,
    every later requirement checked against it. Slow and obviously complete."""

    def search(chosen: dict[str, str], pending: list[tuple[str, str | None]]) -> bool:
        if not pending:
            return True
        (name, wanted), rest = pending[0], pending[1:]
        if name in chosen:
            return allows(wanted, chosen[name]) and search(chosen, rest)
        return any(
            search(
                {**chosen, name: entry.version},
                [*rest, *((dep.name, dep.range) for dep in entry.dependencies)],
            )
            for entry in candidates(index, name, installed)
            if allows(wanted, entry.version)
        )

    return search({}, [(ROOT, range_)])


# --- dense graphs: every version valid and usable, ranges that clash often ------------------

DENSE_VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "3.0.0")
DENSE_RANGES = ("^1", "^2", "~1.1", ">=1.1", "*", "1.2.0", "^1 || ^2.1", "<2", ">=2 <3", "^3")


@st.composite
def dense_problems(draw: st.DrawFn) -> Index:
    """Backtracking, backjumping and learned nogoods at work: most answers need several tries."""
    index: Index = {}
    for name in NAMES:
        versions = draw(st.lists(st.sampled_from(DENSE_VERSIONS), min_size=1, max_size=5))
        others = [n for n in NAMES if n != name]
        index[name] = [
            IndexVersion(
                version=version,
                dependencies=tuple(
                    IndexDependency(dep, draw(st.sampled_from(DENSE_RANGES)))
                    for dep in draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
                ),
            )
            for version in versions
        ]
    return index


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense_problems())
def test_on_dense_graphs_a_solution_exists_whenever_resolvelib_finds_one(index: Index) -> None:
    note(f"index={index!r}")

    compare(index, None, {})
