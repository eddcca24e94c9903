"""What a benchmarked process costs, read from ``/proc`` (Linux): resident memory and CPU time.

CPU time per unit of work is the figure that stays meaningful when other processes share the
machine's cores, where throughput alone would also measure the neighbours."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    # The command name (field 2) may contain spaces: the fields that follow start after its ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / _TICKS_PER_SECOND


async def py_spy_record(
    directory: str, processes: Mapping[str, int]
) -> list[asyncio.subprocess.Process]:
    """py-spy recording each named process (raw samples in ``directory/<name>.txt``) until it is
    interrupted; the benchmarks' ``MODYARD_BENCH_<X>_PROFILE`` knobs. Attached before returning.
    py-spy is a developer's tool, not a dependency of the project: ``uv tool install py-spy``."""
    if shutil.which("py-spy") is None:
        raise RuntimeError("profiling needs py-spy on PATH: `uv tool install py-spy`")
    Path(directory).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once
    profilers = [
        await asyncio.create_subprocess_exec(
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(Path(directory) / f"{name}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
        )
        for name, pid in processes.items()
    ]
    await asyncio.sleep(1)  # attached before the load starts
    return profilers
