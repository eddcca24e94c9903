"""``modyard dev infra up|down|status`` across all components, plus ``.run/infra.env``."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from modyard.common.settings import CommonSettings
from modyard.dev import envfile
from modyard.dev.component import Component, Report, State
from modyard.dev.docker import Docker
from modyard.dev.image_registry import ImageRegistry
from modyard.dev.paths import RunLayout
from modyard.dev.postgres import Postgres
from modyard.dev.processes import run
from modyard.dev.prometheus import Prometheus
from modyard.dev.rabbitmq import RabbitMQ


def load_settings(layout: RunLayout) -> CommonSettings:
    """The user's configuration: environment and ``.env``, but not ``.run/infra.env``.

    ``infra.env`` is our own output; reading it back would make an earlier run's choice (an
    external server that has since gone away, say) stick forever.
    """
    return CommonSettings(_env_file=(layout.root / ".env",))


def effective_settings(layout: RunLayout) -> CommonSettings:
    """What the services will see: environment, ``.env`` and ``.run/infra.env``."""
    return CommonSettings(_env_file=(layout.root / ".env", layout.infra_env))


#: What ``infra up --with`` may add to the four components every ``up`` starts.
OPTIONAL = ("prometheus",)


def components(
    layout: RunLayout, settings: CommonSettings, *, extras: tuple[str, ...] = ()
) -> list[Component]:
    found: list[Component] = [
        Postgres(layout, settings),
        RabbitMQ(layout, settings),
        Docker(layout, settings),
        ImageRegistry(layout, settings),
    ]
    prometheus = Prometheus(layout, settings)
    # Asked for, or started by an earlier `up --with prometheus` (so `down` stops it).
    if "prometheus" in extras or prometheus.own_pid() is not None:
        found.append(prometheus)
    return found


def _each(items: list[Component], action: Callable[[Component], Report], verb: str) -> list[Report]:
    """Run ``action`` on every component in parallel (RabbitMQ alone needs several seconds)."""

    def guarded(component: Component) -> Report:
        try:
            return action(component)
        except Exception as exc:
            state = State.failed if component.required else State.unavailable
            return component.report(state, f"{verb} crashed: {exc!r}; see {component.log_file}")

    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(guarded, items))


@contextmanager
def exclusive(layout: RunLayout) -> Iterator[None]:
    """Serialise `up` and `down` (two `make` targets at once would race for the same ports)."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    with (layout.run_dir / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(
    layout: RunLayout, settings: CommonSettings, *, timeout: float, extras: tuple[str, ...] = ()
) -> list[Report]:
    unknown = sorted(set(extras) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"--with takes {', '.join(OPTIONAL)}, not {', '.join(unknown)}")
    with exclusive(layout):
        found = components(layout, settings, extras=extras)
        reports = _each(found, lambda c: c.up(timeout), "start")
        write_infra_env(layout, reports)
    return reports


def status(layout: RunLayout, settings: CommonSettings) -> list[Report]:
    return _each(components(layout, settings), lambda c: c.status(), "status")


def down(
    layout: RunLayout, settings: CommonSettings, *, timeout: float, purge: bool
) -> list[Report]:
    if not layout.run_dir.exists():
        # Nothing was ever started here; still report external servers as such.
        return _each(components(layout, settings), lambda c: c.down(timeout), "stop")
    with exclusive(layout):
        reports = _each(components(layout, settings), lambda c: c.down(timeout), "stop")
        if purge and not any(report.state is State.failed for report in reports):
            purge_run_dir(layout.run_dir)
    return reports


def write_infra_env(layout: RunLayout, reports: list[Report]) -> None:
    values: dict[str, str] = {}
    notes: dict[str, str] = {}
    for report in reports:
        if report.env:
            values.update(report.env)
        else:
            # Its setting stays at the default (or whatever .env/the environment say).
            notes[report.component] = f"{report.state}: {report.detail}"
    envfile.write(layout.infra_env, values, notes)


def mounts_under(directory: Path, mountinfo: str) -> list[Path]:
    """Mount points below ``directory`` in ``/proc/self/mounts`` text, deepest first."""
    prefix = str(directory).rstrip("/") + "/"
    found: list[Path] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        # The kernel escapes spaces, tabs, newlines and backslashes as octal.
        point = fields[1].encode().decode("unicode_escape")
        if point.startswith(prefix):
            found.append(Path(point))
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def purge_run_dir(run_dir: Path) -> None:
    """Delete ``.run/``; dockerd leaves mounts (network namespaces) that must go first."""
    if not run_dir.exists():
        return
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8")
    except OSError:
        mounts = ""
    for point in mounts_under(run_dir.resolve(), mounts):
        if run(["umount", str(point)]).returncode != 0:
            run(["umount", "-l", str(point)])
    shutil.rmtree(run_dir)
