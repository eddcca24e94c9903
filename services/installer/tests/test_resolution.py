"""Dependency resolution against an in-memory registry index (pure logic, no infrastructure)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import pytest

from modyard.common.semver import InvalidVersion, parse_version, satisfies
from modyard.installer.resolution import (
    DEFAULT_MAX_STEPS,
    IndexDependency,
    IndexVersion,
    NoMatchingVersion,
    PlatformMismatch,
    Resolution,
    ResolutionError,
    ResolutionTooComplex,
    UnknownModule,
    VersionConflict,
    resolve,
)

PLATFORM = "1.4.0"
#: Random graphs checked against brute force; raise it to hunt for a counterexample.
FUZZ_SEEDS = int(os.environ.get("RESOLUTION_FUZZ_SEEDS", "200"))


def v(
    version: str,
    *deps: str,
    yanked: bool = False,
    platform: str | None = None,
    services: Sequence[str] = (),
) -> IndexVersion:
    """``v("1.2.0", "b@^2", "c@~1.4")``: a version and its dependencies as ``name@range``."""
    dependencies = [IndexDependency(*_split(dep)) for dep in deps]
    dependencies += [IndexDependency(*_split(dep), type="service") for dep in services]
    return IndexVersion(
        version=version,
        yanked=yanked,
        digest=f"sha256:{version}",
        dependencies=tuple(dependencies),
        platform=platform,
    )


def _split(requirement: str) -> tuple[str, str]:
    name, range_ = requirement.split("@", 1)
    return name, range_


class Registry:
    """An IndexSource over a dict that counts fetches and how many run at once."""

    def __init__(self, modules: dict[str, list[IndexVersion]]) -> None:
        self.modules = modules
        self.fetches: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, name: str) -> Sequence[IndexVersion] | None:
        self.fetches[name] += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let concurrent fetches overlap, like HTTP would
            return self.modules.get(name)
        finally:
            self.in_flight -= 1


async def versions(
    modules: dict[str, list[IndexVersion]],
    module: str = "a",
    range_: str | None = None,
    *,
    installed: dict[str, str] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> dict[str, str]:
    """The resolved version of every module in the graph."""
    resolution = await resolve(
        module,
        range_,
        Registry(modules),
        platform_version=PLATFORM,
        installed=installed,
        max_steps=max_steps,
    )
    return {name: locked.version for name, locked in resolution.modules.items()}


async def failure(
    modules: dict[str, list[IndexVersion]],
    module: str = "a",
    range_: str | None = None,
    *,
    installed: dict[str, str] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> ResolutionError:
    with pytest.raises(ResolutionError) as caught:
        await versions(modules, module, range_, installed=installed, max_steps=max_steps)
    return caught.value


RELEASES = {
    "a": [v(x) for x in ("0.2.3", "0.2.9", "0.3.0", "1.1.0", "1.2.0", "1.2.7", "1.9.3", "2.0.0")]
}


# --- range semantics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_", "chosen"),
    [
        ("^1.2.0", "1.9.3"),
        ("^1", "1.9.3"),
        ("^0.2.3", "0.2.9"),  # below 1.0 a caret stays within the minor
        ("~1.2", "1.2.7"),
        ("~1.2.0", "1.2.7"),
        ("~1", "1.9.3"),
        ("1.2.0", "1.2.0"),  # a bare version is exact, not "at least"
        ("=1.2.0", "1.2.0"),
        ("v1.2.0", "1.2.0"),
        ("^v1.2.0", "1.9.3"),
        (">=1.1 <1.9", "1.2.7"),
        (">=1 <3", "2.0.0"),
        ("1.x", "1.9.3"),
        ("^0.2.0 || ~1.1.0", "1.1.0"),
        ("*", "2.0.0"),
        (None, "2.0.0"),
    ],
)
async def test_range_picks_the_newest_version_it_allows(range_: str | None, chosen: str) -> None:
    assert (await versions(RELEASES, "a", range_))["a"] == chosen


async def test_v_prefixed_versions_in_the_index_are_read_as_plain_semver() -> None:
    modules = {"a": [v("v1.2.0"), v("v1.10.0"), v("v2.0.0")]}

    assert (await versions(modules, "a", "^1.2"))["a"] == "1.10.0"
    assert (await versions(modules, "a", "v1.2.0"))["a"] == "1.2.0"


async def test_no_range_prefers_the_newest_stable_over_a_newer_prerelease() -> None:
    modules = {"a": [v("1.0.0"), v("1.1.0"), v("2.0.0-beta.2")]}

    assert (await versions(modules))["a"] == "1.1.0"


async def test_no_range_takes_a_prerelease_when_there_is_nothing_else() -> None:
    modules = {"a": [v("0.1.0-alpha.1"), v("0.1.0-beta.1")]}

    assert (await versions(modules))["a"] == "0.1.0-beta.1"


async def test_prereleases_only_match_ranges_that_ask_for_them() -> None:
    modules = {"a": [v("1.0.0"), v("2.0.0-rc.1"), v("2.0.0-rc.2")]}

    assert (await versions(modules, "a", "*"))["a"] == "1.0.0"
    assert (await versions(modules, "a", "^2.0.0-rc.1"))["a"] == "2.0.0-rc.2"


async def test_an_exact_prerelease_means_that_prerelease_not_its_release() -> None:
    modules = {"a": [v("2.0.0-rc.1"), v("2.0.0")]}

    assert (await versions(modules, "a", "2.0.0-rc.1"))["a"] == "2.0.0-rc.1"


async def test_an_unparseable_requested_range_is_the_callers_error() -> None:
    with pytest.raises(InvalidVersion):
        await resolve("a", "^^banana", Registry(RELEASES), platform_version=PLATFORM)


async def test_index_entries_that_cannot_be_parsed_are_ignored() -> None:
    modules = {"a": [v("1.0.0"), v("banana"), v("1.1.0", "b@^^1"), v("v1.0.0")], "b": [v("1.0.0")]}

    assert await versions(modules) == {"a": "1.0.0"}


# --- graphs -----------------------------------------------------------------------------------


async def test_transitive_dependencies_are_resolved_several_levels_deep() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1"), v("1.1.0", "b@^1")],
        "b": [v("1.0.0", "c@~2.1"), v("1.3.0", "c@~2.1"), v("2.0.0")],
        "c": [v("2.1.0", "d@>=1 <2"), v("2.1.4", "d@>=1 <2"), v("2.2.0")],
        "d": [v("1.0.0", "e@1.0.1"), v("1.5.0", "e@1.0.1"), v("2.0.0")],
        "e": [v("1.0.0"), v("1.0.1"), v("1.0.2")],
    }

    resolution = await resolve("a", "^1", Registry(modules), platform_version=PLATFORM)

    assert {name: locked.version for name, locked in resolution.modules.items()} == {
        "a": "1.1.0",
        "b": "1.3.0",
        "c": "2.1.4",
        "d": "1.5.0",
        "e": "1.0.1",
    }
    assert resolution.root.name == "a"
    assert resolution.root.required_by == ("root",)
    assert resolution.modules["e"].required_by == ("d@1.5.0",)
    assert resolution.modules["e"].digest == "sha256:1.0.1"
    assert resolution.modules["d"].dependencies == (IndexDependency("e", "1.0.1"),)


async def test_a_shared_dependency_gets_the_newest_version_both_ranges_allow() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1", "c@^1")],
        "b": [v("1.0.0", "d@^1.2")],
        "c": [v("1.0.0", "d@<1.5")],
        "d": [v("1.1.0"), v("1.2.0"), v("1.4.3"), v("1.5.0"), v("1.9.0")],
    }

    resolved = await versions(modules)

    assert resolved["d"] == "1.4.3"


async def test_backtracks_to_an_older_dependency_when_the_newest_conflicts() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1", "c@^1")],
        "b": [v("1.0.0", "d@^1"), v("1.1.0", "d@^1"), v("1.2.0", "d@^2")],
        "c": [v("1.0.0", "d@~1.3")],
        "d": [v("1.3.0"), v("1.3.5"), v("2.0.0")],
    }

    assert await versions(modules) == {"a": "1.0.0", "b": "1.1.0", "c": "1.0.0", "d": "1.3.5"}


async def test_backtracks_across_a_conflict_found_deeper_down() -> None:
    # b@2.0.0 looks fine until its own dependency e clashes with what c needs.
    modules = {
        "a": [v("1.0.0", "b@*", "c@*")],
        "b": [v("1.0.0", "e@^1"), v("2.0.0", "x@^1")],
        "x": [v("1.0.0", "e@^2")],
        "c": [v("1.0.0", "e@^1")],
        "e": [v("1.0.0"), v("2.0.0")],
    }

    assert await versions(modules) == {"a": "1.0.0", "b": "1.0.0", "c": "1.0.0", "e": "1.0.0"}


async def test_a_version_decided_early_is_revisited_when_a_later_requirer_needs_an_older_one() -> (
    None
):
    # d is decided (2.0.0) before e is reached; e accepts only d@^1, which a also accepts.
    modules = {
        "x": [v("1.0.0", "a@*", "b@*")],
        "a": [v("1.0.0", "d@*")],
        "b": [v("1.0.0", "e@*")],
        "e": [v("1.0.0", "d@^1")],
        "d": [v("1.0.0"), v("2.0.0")],
    }

    resolved = await versions(modules, "x")

    assert resolved["d"] == "1.0.0"


async def test_prefers_older_root_version_when_only_it_resolves() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1"), v("1.1.0", "b@^3")],
        "b": [v("1.0.0"), v("2.0.0")],
    }

    assert await versions(modules, "a", "^1") == {"a": "1.0.0", "b": "1.0.0"}


async def test_cycles_resolve_when_the_versions_agree() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1"), v("1.1.0", "b@^1")],
        "b": [v("1.0.0", "a@^1"), v("1.2.0", "a@~1.1")],
    }

    resolution = await resolve("a", None, Registry(modules), platform_version=PLATFORM)

    assert {n: m.version for n, m in resolution.modules.items()} == {"a": "1.1.0", "b": "1.2.0"}
    assert resolution.modules["a"].required_by == ("root", "b@1.2.0")


async def test_a_cycle_that_cannot_agree_ends_in_a_conflict_not_a_loop() -> None:
    modules = {"a": [v("1.0.0", "b@^1"), v("2.0.0")], "b": [v("1.0.0", "a@^2")]}

    error = await asyncio.wait_for(failure(modules, "a", "^1"), timeout=5)

    assert isinstance(error, VersionConflict)
    assert error.chain == ["root needs a@^1", "b@1.0.0 needs a@^2"]


async def test_a_module_depending_on_itself_is_fine() -> None:
    modules = {"a": [v("1.0.0", "a@^1")]}

    assert await versions(modules) == {"a": "1.0.0"}


async def test_service_dependencies_are_resolved_like_modules() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1", services=["http@^2"])],
        "b": [v("1.0.0", services=["http@~2.3"])],
        "http": [v("2.2.0"), v("2.3.1"), v("2.4.0"), v("3.0.0")],
    }

    resolution = await resolve("a", None, Registry(modules), platform_version=PLATFORM)

    assert resolution.modules["http"].version == "2.3.1"
    assert resolution.modules["http"].type == "service"
    assert resolution.modules["b"].type == "module"


async def test_a_name_required_as_module_and_service_is_locked_as_a_module() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1", services=["c@^1"])],
        "b": [v("1.0.0", "c@^1")],
        "c": [v("1.0.0")],
    }

    resolution = await resolve("a", None, Registry(modules), platform_version=PLATFORM)

    assert resolution.modules["c"].type == "module"


def _solutions(modules: dict[str, list[IndexVersion]]) -> list[dict[str, str]]:
    """Every consistent choice of versions that includes ``n0``, by brute force."""
    names = sorted(modules)
    options = [[None, *(e.version for e in modules[n] if not e.yanked)] for n in names]
    found = []
    for combination in itertools.product(*options):
        chosen = {n: ver for n, ver in zip(names, combination, strict=True) if ver is not None}
        if "n0" not in chosen:
            continue
        entries = {n: next(e for e in modules[n] if e.version == ver) for n, ver in chosen.items()}
        if all(
            dep.name in chosen and satisfies(chosen[dep.name], dep.range)
            for entry in entries.values()
            for dep in entry.dependencies
        ):
            found.append(chosen)
    return found


def _first_solution(modules: dict[str, list[IndexVersion]]) -> dict[str, str] | None:
    """Plain chronological backtracking in the same order the resolver promises: names in
    breadth-first discovery order, each one's versions newest first."""

    def search(order: list[str], chosen: dict[str, str], ranges: dict[str, list[str]]) -> Any:
        if len(chosen) == len(order):
            return chosen
        name = order[len(chosen)]
        entries = sorted(
            (e for e in modules.get(name, []) if not e.yanked),
            key=lambda e: parse_version(e.version),
            reverse=True,
        )
        for entry in entries:
            if not all(satisfies(entry.version, r) for r in ranges[name]):
                continue
            now = {**chosen, name: entry.version}
            if any(
                dep.name in now and not satisfies(now[dep.name], dep.range)
                for dep in entry.dependencies
            ):
                continue
            more = {n: list(r) for n, r in ranges.items()}
            grown = list(order)
            for dep in entry.dependencies:
                if dep.name not in more:
                    more[dep.name] = []
                    grown.append(dep.name)
                more[dep.name].append(dep.range)
            found = search(grown, now, more)
            if found is not None:
                return found
        return None

    return cast("dict[str, str] | None", search(["n0"], {}, {"n0": []}))


@pytest.mark.parametrize("seed", range(FUZZ_SEEDS))
async def test_random_graphs_get_the_first_newest_solution_and_fail_only_without_one(
    seed: int,
) -> None:
    rng = random.Random(seed)
    pool = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0"]
    ranges = ["^1", "^2", "~1.1", ">=1.1", "*", "1.2.0", "^1 || ^2.1", "<2"]
    names = ["n0", "n1", "n2", "n3", "n4"]
    modules = {
        name: [
            v(
                version,
                *(
                    f"{dep}@{rng.choice(ranges)}"
                    for dep in rng.sample([n for n in names if n != name], rng.randint(0, 2))
                ),
                yanked=rng.random() < 0.1,
            )
            for version in sorted(rng.sample(pool, rng.randint(1, 4)))
        ]
        for name in names
    }
    solutions = _solutions(modules)

    try:
        resolution = await resolve("n0", None, Registry(modules), platform_version=PLATFORM)
    except ResolutionError:
        assert not solutions
        assert _first_solution(modules) is None
        return

    assert solutions
    lock = {name: locked.version for name, locked in resolution.modules.items()}
    assert lock == _first_solution(modules)
    assert any(lock.items() <= solution.items() for solution in solutions)
    for locked in resolution.modules.values():
        for dep in locked.dependencies:
            assert satisfies(lock[dep.name], dep.range)
    assert parse_version(lock["n0"]) == max(parse_version(s["n0"]) for s in solutions)


# --- conflicts and errors ---------------------------------------------------------------------


async def test_a_conflict_names_the_versions_that_carry_each_clashing_range() -> None:
    modules = {
        "x": [v("1.0.0", "a@^1", "c@^1")],
        "a": [v("1.1.0", "b@^2"), v("1.2.0", "b@^2")],
        "c": [v("1.0.0", "b@~1.4")],
        "b": [v("1.4.0"), v("1.4.2"), v("2.0.0")],
    }

    error = await failure(modules, "x")

    assert isinstance(error, VersionConflict)
    assert error.chain == ["a@1.2.0 needs b@^2", "c@1.0.0 needs b@~1.4"]
    assert error.detail.startswith("a@1.2.0 needs b@^2, c@1.0.0 needs b@~1.4")
    assert error.module == "b"


async def test_a_conflict_with_the_request_itself_names_root() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1"), v("2.0.0")],
        "b": [v("1.0.0", "c@^1")],
        "c": [v("1.0.0", "a@>=2")],
    }

    error = await failure(modules, "a", "^1")

    assert isinstance(error, VersionConflict)
    assert error.chain == ["root needs a@^1", "c@1.0.0 needs a@>=2"]
    assert error.detail.startswith("root needs a@^1, c@1.0.0 needs a@>=2: ")


async def test_requesting_another_version_of_an_installed_module_is_a_conflict() -> None:
    modules = {"a": [v("1.0.0"), v("2.0.0")]}

    error = await failure(modules, "a", "^2", installed={"a": "1.0.0"})

    assert isinstance(error, VersionConflict)
    assert error.chain == ["root needs a@^2", "workspace has a@1.0.0"]
    assert await versions(modules, "a", "^2") == {"a": "2.0.0"}


async def test_the_chain_leaves_out_requirements_that_do_not_clash() -> None:
    modules = {
        "x": [v("1.0.0", "a@^1", "b@>=1", "c@^1")],
        "a": [v("1.0.0", "d@^1")],
        "b": [v("1.0.0", "d@*")],
        "c": [v("1.0.0", "d@^2")],
        "d": [v("1.0.0"), v("2.0.0")],
    }

    error = await failure(modules, "x")

    assert error.chain == ["a@1.0.0 needs d@^1", "c@1.0.0 needs d@^2"]


async def test_an_unsolvable_graph_is_reported_without_trying_every_combination() -> None:
    # Twelve unrelated modules with ten versions each sit between the two clashing ones; a
    # search that retried their combinations would exhaust the budget instead of explaining.
    fillers = {f"m{i:02}": [v(f"1.{minor}.0") for minor in range(10)] for i in range(12)}
    modules = {
        "x": [v("1.0.0", "a@*", *(f"{name}@^1" for name in fillers), "z@*")],
        "a": [v(f"1.{minor}.0", "b@^2") for minor in range(10)],
        "z": [v(f"1.{minor}.0", "b@^1") for minor in range(10)],
        "b": [v("1.0.0"), v("2.0.0")],
        **fillers,
    }

    error = await failure(modules, "x", max_steps=500)

    assert isinstance(error, VersionConflict)
    assert error.chain == ["a@1.9.0 needs b@^2", "z@1.9.0 needs b@^1"]


async def test_an_index_that_needs_too_much_search_gives_up_with_a_clear_error() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1"), v("1.1.0", "b@^2"), v("1.2.0", "b@^3")],
        "b": [v("1.0.0")],
    }

    error = await failure(modules, max_steps=2)

    assert isinstance(error, ResolutionTooComplex)
    assert "exact versions" in error.detail
    assert await versions(modules, max_steps=4) == {"a": "1.0.0", "b": "1.0.0"}


async def test_an_unknown_root_module_is_reported_as_unknown() -> None:
    error = await failure({}, "ghost", "^1")

    assert isinstance(error, UnknownModule)
    assert error.module == "ghost"
    assert error.required_by == ["root"]


async def test_an_unknown_dependency_names_the_version_that_requires_it() -> None:
    modules = {"a": [v("1.0.0", "b@^1")], "b": [v("1.0.0", "ghost@^2")]}

    error = await failure(modules)

    assert isinstance(error, UnknownModule)
    assert error.required_by == ["b@1.0.0"]
    assert "b@1.0.0" in error.detail
    assert "'ghost'" in error.detail


async def test_an_older_version_is_chosen_when_the_newest_needs_an_unknown_module() -> None:
    modules = {"a": [v("1.0.0", "b@^1"), v("1.1.0", "ghost@^1")], "b": [v("1.0.0")]}

    assert await versions(modules) == {"a": "1.0.0", "b": "1.0.0"}


async def test_a_range_nothing_matches_lists_what_is_available() -> None:
    modules = {"a": [v("1.0.0", "b@^5")], "b": [v("1.0.0"), v("1.1.0")]}

    error = await failure(modules)

    assert isinstance(error, NoMatchingVersion)
    assert error.chain == ["a@1.0.0 needs b@^5"]
    assert error.available == ["1.1.0", "1.0.0"]
    assert "1.1.0, 1.0.0" in error.detail


# --- yanked, platform, installed ---------------------------------------------------------------


async def test_a_yanked_version_is_never_chosen() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1"), v("1.1.0", "b@^1", yanked=True)],
        "b": [v("1.0.0"), v("1.2.0", yanked=True)],
    }

    assert await versions(modules) == {"a": "1.0.0", "b": "1.0.0"}
    assert (await failure(modules, "a", "1.1.0")).__class__ is NoMatchingVersion


async def test_when_only_a_yanked_version_matches_the_error_says_it_was_skipped() -> None:
    modules = {"a": [v("1.0.0", "b@~1.2")], "b": [v("1.0.0"), v("1.2.0", yanked=True)]}

    error = await failure(modules)

    assert isinstance(error, NoMatchingVersion)
    assert error.yanked == ["1.2.0"]
    assert error.available == ["1.0.0"]
    assert "yanked" in error.detail
    assert "1.2.0" in error.detail


async def test_a_version_for_another_platform_is_skipped_for_an_older_one() -> None:
    modules = {"a": [v("1.0.0", platform="^1.0.0"), v("1.1.0", platform="^2.0.0")]}

    assert (await versions(modules))["a"] == "1.0.0"


async def test_platform_mismatch_names_the_versions_and_both_platforms() -> None:
    modules = {
        "a": [v("1.0.0", "b@^2")],
        "b": [v("1.0.0"), v("2.0.0", platform=">=1.5.0"), v("2.1.0", platform="^2.0.0")],
    }

    error = await failure(modules)

    assert isinstance(error, PlatformMismatch)
    assert error.module == "b"
    assert error.versions == ["2.1.0", "2.0.0"]
    assert error.platform_version == PLATFORM
    assert "b@2.1.0 requires platform ^2.0.0" in error.detail
    assert "b@2.0.0 requires platform >=1.5.0" in error.detail
    assert PLATFORM in error.detail


async def test_an_installed_version_that_satisfies_every_range_is_reused() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1")],
        "b": [v("1.3.0"), v("1.4.0"), v("1.5.0")],
    }

    resolved = await versions(modules, installed={"b": "1.3.0"})

    assert resolved == {"a": "1.0.0", "b": "1.3.0"}


async def test_an_installed_yanked_version_is_still_reused() -> None:
    modules = {"a": [v("1.0.0", "b@^1")], "b": [v("1.3.0", yanked=True), v("1.4.0")]}

    assert (await versions(modules, installed={"b": "v1.3.0"}))["b"] == "1.3.0"


async def test_a_requirement_the_installed_version_misses_is_a_conflict_naming_the_workspace() -> (
    None
):
    modules = {"a": [v("1.0.0", "b@^2")], "b": [v("1.3.0"), v("2.0.0")]}

    error = await failure(modules, installed={"b": "1.3.0"})

    assert isinstance(error, VersionConflict)
    assert error.chain == ["a@1.0.0 needs b@^2", "workspace has b@1.3.0"]


async def test_an_installed_version_steers_the_choice_of_its_requirers() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1"), v("2.0.0", "b@^2")],
        "b": [v("1.3.0"), v("2.0.0")],
    }

    assert await versions(modules, installed={"b": "1.3.0"}) == {"a": "1.0.0", "b": "1.3.0"}


async def test_installed_modules_outside_the_graph_are_ignored() -> None:
    modules = {"a": [v("1.0.0")]}

    assert await versions(modules, installed={"zzz": "9.9.9"}) == {"a": "1.0.0"}


# --- fetching ---------------------------------------------------------------------------------


async def test_each_module_index_is_fetched_once_per_resolution() -> None:
    modules = {
        "a": [v("1.0.0", "b@^1", "c@^1")],
        "b": [v("1.0.0", "d@^1"), v("1.1.0", "d@^2")],
        "c": [v("1.0.0", "d@^1", "b@^1")],
        "d": [v("1.0.0", "a@^1"), v("2.0.0", "a@^1")],
    }
    registry = Registry(modules)

    resolution = await resolve("a", None, registry, platform_version=PLATFORM)

    assert resolution.modules["b"].version == "1.0.0"  # it had to backtrack
    assert registry.fetches == Counter({"a": 1, "b": 1, "c": 1, "d": 1})


async def test_dependencies_are_fetched_concurrently() -> None:
    modules: dict[str, list[IndexVersion]] = {"a": [v("1.0.0", *(f"d{i}@^1" for i in range(5)))]}
    modules.update({f"d{i}": [v("1.0.0")] for i in range(5)})
    registry = Registry(modules)

    await resolve("a", None, registry, platform_version=PLATFORM)

    assert registry.most_in_flight == 5


async def test_an_index_source_failure_propagates() -> None:
    async def broken(name: str) -> Sequence[IndexVersion] | None:
        raise ConnectionError("registry down")

    with pytest.raises(ConnectionError):
        await resolve("a", None, broken, platform_version=PLATFORM)


# --- the lock ---------------------------------------------------------------------------------


async def test_to_lock_is_stable_and_round_trips() -> None:
    modules = {
        "a": [v("1.0.0", "c@^1", "b@^1", services=["s@^1"])],
        "b": [v("1.0.0", "d@^1"), v("1.1.0", "d@^1")],
        "c": [v("1.0.0", "d@~1.2")],
        "d": [v("1.2.0"), v("1.2.5"), v("1.3.0")],
        "s": [v("1.0.0")],
    }
    shuffled = {
        name: random.Random(7).sample(entries, len(entries)) for name, entries in modules.items()
    }

    first = await resolve("a", "^1", Registry(modules), platform_version=PLATFORM)
    second = await resolve("a", "^1", Registry(shuffled), platform_version=PLATFORM)
    lock = first.to_lock()

    assert json.dumps(lock) == json.dumps(second.to_lock())
    assert list(lock["modules"]) == ["a", "b", "c", "d", "s"]
    assert lock["root"] == "a"
    assert lock["modules"]["d"] == {
        "version": "1.2.5",
        "digest": "sha256:1.2.5",
        "type": "module",
        "dependencies": [],
        "required_by": ["b@1.1.0", "c@1.0.0"],
    }
    assert lock["modules"]["a"]["dependencies"][2] == {
        "name": "s",
        "range": "^1",
        "type": "service",
    }
    assert Resolution.from_lock(json.loads(json.dumps(lock))) == first


def test_index_entries_are_read_from_the_registry_json() -> None:
    entry = IndexVersion.from_json(
        {
            "version": "1.2.0",
            "yanked": True,
            "digest": "sha256:abc",
            "dependencies": [
                {"name": "b", "range": "^2.0.0", "type": "module"},
                {"name": "http", "range": "~1.4", "type": "service"},
            ],
            "platform": "^1.0.0",
        }
    )

    assert entry == IndexVersion(
        "1.2.0",
        yanked=True,
        digest="sha256:abc",
        dependencies=(IndexDependency("b", "^2.0.0"), IndexDependency("http", "~1.4", "service")),
        platform="^1.0.0",
    )
    assert IndexVersion.from_json({"version": "1.0.0", "platform": None}).platform is None
    with pytest.raises(ValueError, match="dependency type"):
        IndexVersion.from_json({"version": "1.0.0", "dependencies": [{"name": "b", "type": "x"}]})
