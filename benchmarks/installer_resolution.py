"""Dependency resolution speed: random roots resolved against a registry index of 2,000 modules
with 10 versions each and dependency chains 6 deep. Target: resolution p99 < 50 ms.

The index is built deterministically in memory (no infrastructure): six layers of modules, each
version depending on 1-3 modules of the next layer with ``^``, ``~`` and ``>=a <b`` ranges that
follow its own major version. A few ranges point at an older major, so shared dependencies
sometimes clash, and a few at a major nobody published, so the resolver has to back out of
versions; a few versions are yanked or need a newer platform, so they have to be skipped. The index source yields to the event loop on every fetch,
as an HTTP client would.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

from modyard.installer.resolution import (
    IndexDependency,
    IndexVersion,
    ResolutionError,
    resolve,
)

MODULES = 2000
DEPTH = 6
VERSIONS = (
    "1.0.0",
    "1.1.0",
    "1.2.0",
    "1.2.1",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "2.2.0",
    "3.0.0",
    "3.1.0",
)
RESOLUTIONS = 300
TARGET_P99_MS = 50
PLATFORM_VERSION = "1.8.0"
SEED = 20240611


def build_index(seed: int = SEED) -> dict[str, list[IndexVersion]]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible index, not secrets
    layers = [[f"m{layer}-{i:04}" for i in range(layer, MODULES, DEPTH)] for layer in range(DEPTH)]
    index: dict[str, list[IndexVersion]] = {}
    for depth, names in enumerate(layers):
        below = layers[depth + 1] if depth + 1 < DEPTH else []
        for name in names:
            # Dependencies change now and then between majors, as they do in real modules.
            base = rng.sample(below, rng.randint(1, 3)) if below else []
            later = [*base[:-1], rng.choice(below)] if below and rng.random() < 0.3 else base
            entries = []
            for number, version in enumerate(VERSIONS):
                major = int(version.split(".", 1)[0])
                dependencies = tuple(
                    IndexDependency(
                        dep, _range(rng, major), "service" if rng.random() < 0.1 else "module"
                    )
                    for dep in (later if major == 3 else base)
                )
                entries.append(
                    IndexVersion(
                        version=f"v{version}" if rng.random() < 0.02 else version,
                        yanked=number > 0 and rng.random() < 0.03,
                        digest=f"sha256:{name}-{version}",
                        dependencies=dependencies,
                        platform="^2.0.0" if number > 0 and rng.random() < 0.03 else "^1.2.0",
                    )
                )
            rng.shuffle(entries)  # the registry promises no order
            index[name] = entries
    return index


def _range(rng: random.Random, major: int) -> str:
    chance = rng.random()
    if chance < 0.02:
        return f"^{len(VERSIONS)}.0.0"  # a major nobody published: a dead end to back out of
    if major > 1 and chance < 0.07:
        major -= 1  # a stale range: the source of clashes between requirers
    shape = rng.random()
    if shape < 0.5:
        return f"^{major}.0.0"
    if shape < 0.7:
        return f"~{major}.1.0"
    if shape < 0.9:
        return f">={major}.0.0 <{major + 1}.0.0"
    return f"^{major}.0.0 || ^{major + 1}.0.0"


def _percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 2)


async def resolution_speed(_infra: object | None = None) -> dict[str, Any]:
    index = build_index()
    # The 2,000-module index stands in for the registry, which lives in another process; left
    # in this heap, its ~60,000 objects make every full garbage collection a 10-20 ms pause that
    # would be charged to whichever resolution happened to trigger it.
    gc.collect()
    gc.freeze()
    try:
        return await _measure(index)
    finally:
        gc.unfreeze()


async def _measure(index: dict[str, list[IndexVersion]]) -> dict[str, Any]:
    fetches = 0

    async def source(name: str) -> Sequence[IndexVersion] | None:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0)
        return index.get(name)

    roots = random.Random(SEED + 1).choices(  # noqa: S311 - reproducible roots
        [name for name in index if name.startswith("m0-")], k=RESOLUTIONS
    )
    samples: list[float] = []
    graph_sizes: list[int] = []
    failures = 0
    for root in roots:
        started = time.perf_counter()
        try:
            resolution = await resolve(root, None, source, platform_version=PLATFORM_VERSION)
        except ResolutionError:
            failures += 1
        else:
            graph_sizes.append(len(resolution.modules))
        samples.append(time.perf_counter() - started)
    p99 = _percentile(samples, 0.99)
    return {
        "benchmark": "installer_resolution",
        "modules": len(index),
        "versions_per_module": len(VERSIONS),
        "depth": DEPTH,
        "resolutions": len(samples),
        "resolved": len(graph_sizes),
        "conflicts": failures,
        "mean_graph_modules": round(statistics.fmean(graph_sizes), 1) if graph_sizes else 0,
        "max_graph_modules": max(graph_sizes, default=0),
        "index_fetches": fetches,
        "p50_ms": _percentile(samples, 0.50),
        "p99_ms": p99,
        "max_ms": round(max(samples) * 1000, 2),
        "target_p99_ms": TARGET_P99_MS,
        "target_met": p99 < TARGET_P99_MS,
    }
