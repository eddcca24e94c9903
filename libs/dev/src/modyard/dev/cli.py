"""``modyard dev``: local infrastructure, migrations and running the services.

Mounted by the main CLI with ``app.add_typer(dev_app, name="dev")``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modyard.dev import infra
from modyard.dev.component import Report, State
from modyard.dev.paths import RepoNotFoundError, RunLayout, layout
from modyard.dev.rabbitmq import RabbitMQ
from modyard.dev.runner import RunOptions, Supervisor, default_on_ready
from modyard.dev.services import (
    BACKOFFICE_URL,
    ScriptNotFoundError,
    Service,
    script_path,
    select,
)


def _console(*, stderr: bool = False) -> Console:
    # Rich falls back to 80 columns without a terminal (CI logs), folding every URL; be wider.
    wide = None if sys.stderr.isatty() or "COLUMNS" in os.environ else 160
    return Console(stderr=stderr, width=wide)


console = _console()
err_console = _console(stderr=True)

app = typer.Typer(
    name="dev",
    help="Developer tools: local infrastructure, database migrations, running the services.",
    no_args_is_help=True,
)
infra_app = typer.Typer(
    help="Local PostgreSQL, RabbitMQ, dockerd and image registry under .run/.",
    no_args_is_help=True,
)
app.add_typer(infra_app, name="infra")

STATE_STYLES: dict[State, str] = {
    State.started: "bold green",
    State.running: "green",
    State.external: "cyan",
    State.stopped: "dim",
    State.starting: "yellow",
    State.unavailable: "yellow",
    State.failed: "bold red",
}
STATE_LABELS: dict[State, str] = {
    State.started: "started",
    State.running: "running",
    State.external: "external / already running",
    State.stopped: "stopped",
    State.starting: "not answering",
    State.unavailable: "unavailable",
    State.failed: "FAILED",
}


def _layout() -> RunLayout:
    try:
        return layout()
    except RepoNotFoundError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def _table(title: str, reports: list[Report]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("component", style="bold")
    table.add_column("URL", overflow="fold")
    table.add_column("state")
    table.add_column("details", overflow="fold")
    for report in reports:
        style = STATE_STYLES[report.state]
        label = STATE_LABELS[report.state]
        if not report.required and report.state in {State.unavailable, State.stopped}:
            label += " (optional)"
        detail, *more = report.detail.splitlines() or [""]
        if more:
            detail += " (log excerpt below)"
        table.add_row(report.component, report.url, f"[{style}]{label}[/]", detail)
    return table


def _show_errors(reports: list[Report]) -> None:
    # Multi-line details (log tails) are unreadable in a table cell; repeat them in full.
    for report in reports:
        if "\n" in report.detail and report.state in {State.failed, State.unavailable}:
            colour = "red" if report.is_error else "yellow"
            err_console.print(f"[bold {colour}]{report.component}:[/] {report.detail}")


TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for each component.", min=1)
]


@infra_app.command("up")
def infra_up(
    timeout: TimeoutOption = 120.0,
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="Also start an optional component: prometheus (scrapes every service on "
            "127.0.0.1, with deploy/monitoring's alert rules, at http://127.0.0.1:9090).",
        ),
    ] = None,
) -> None:
    """Start whatever is not already reachable; idempotent, fast when all is running."""
    run = _layout()
    began = time.monotonic()
    extras = tuple(name for value in with_ or [] for name in value.split(",") if name)
    with console.status("Bringing up PostgreSQL, RabbitMQ, dockerd and the image registry…"):
        try:
            reports = infra.up(run, infra.load_settings(run), timeout=timeout, extras=extras)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--with") from None
    console.print(_table(f"modyard infrastructure ({time.monotonic() - began:.1f}s)", reports))
    console.print(f"[dim]Settings written to {run.infra_env}[/]")
    _show_errors(reports)
    if any(report.is_error for report in reports):
        raise typer.Exit(1)


@infra_app.command("down")
def infra_down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete .run/ (all data, logs, settings).")
    ] = False,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Stop exactly the processes `infra up` started; external servers are left alone."""
    run = _layout()
    with console.status("Stopping the local infrastructure…"):
        reports = infra.down(run, infra.load_settings(run), timeout=timeout, purge=purge)
    console.print(_table("modyard infrastructure", reports))
    failed = [report for report in reports if report.state is State.failed]
    _show_errors(failed)
    if failed:
        raise typer.Exit(1)
    if purge:
        console.print(f"[dim]Deleted {run.run_dir}[/]")


@infra_app.command("status")
def infra_status() -> None:
    """Show each component's state without starting or stopping anything."""
    run = _layout()
    console.print(_table("modyard infrastructure", infra.status(run, infra.load_settings(run))))


ServicesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Services to act on (registry, installer, runtime, appcell-gateway, deployer, "
        "backoffice, js-runner); "
        "all when omitted.",
        show_default=False,
    ),
]


def _services(names: list[str] | None) -> list[Service]:
    try:
        return select(names)
    except ValueError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command("migrate")
def migrate(services: ServicesArgument = None) -> None:
    """Run every service's database migrations (`modyard-<service> migrate`)."""
    run = _layout()
    for service in _services(services):
        try:
            command = [script_path(service.script), "migrate"]
        except ScriptNotFoundError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from exc
        console.print(f"[bold]→ {service.name}:[/] {' '.join(command)}")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("MODYARD_LOG_JSON", "false")  # readable in a terminal unless chosen
        result = subprocess.run(command, cwd=run.root, env=env, check=False)  # noqa: S603
        if result.returncode != 0:
            err_console.print(
                f"[bold red]error:[/] migrations of {service.name} failed "
                f"(exit code {result.returncode}); its output is above"
            )
            raise typer.Exit(1)
    console.print("[green]All migrations applied.[/]")


@app.command("run")
def run_services(
    services: ServicesArgument = None,
    ready_timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait for every service's /readyz to answer 200.", min=1),
    ] = 180.0,
    stop_timeout: Annotated[
        float, typer.Option(help="Seconds between SIGTERM and SIGKILL when stopping.", min=0)
    ] = 10.0,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between readiness probes.", min=0.05)
    ] = 0.5,
    json_logs: Annotated[
        bool, typer.Option("--json-logs/--no-json-logs", help="Keep the services' JSON logs.")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status/--no-status", help="Run `modyard status` once all are ready.")
    ] = True,
) -> None:
    """Run the services with prefixed logs until Ctrl-C; fails if one of them exits."""
    run = _layout()
    chosen = _services(services)
    supervisor = Supervisor(
        services=chosen,
        urls={
            **infra.effective_settings(run).service_urls(),
            "backoffice": os.environ.get("MODYARD_BACKOFFICE_URL", BACKOFFICE_URL),
        },
        console=console,
        options=RunOptions(
            ready_timeout=ready_timeout,
            stop_timeout=stop_timeout,
            poll_interval=poll_interval,
            json_logs=json_logs,
            # The JavaScript runner on its own broker user, as in production.
            extra_env=RabbitMQ(run, infra.effective_settings(run)).js_runner_env(),
        ),
        cwd=run.root,
    )
    try:
        code = supervisor.run(on_ready=(lambda: default_on_ready(console)) if status else None)
    except ScriptNotFoundError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
