"""``modyard deploy …``: container modules on Docker, through the deployer's API."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from modyard.contracts.api.deployer import DeploymentOut
from modyard.sdk.cli_support import JsonOption, call_api, console, echo_json, err_console
from modyard.sdk.client import ModyardAPIError, ModyardClient

deploy_app = typer.Typer(
    help="Container modules deployed from a private registry: create, deploy, suspend, resume, "
    "update, delete, list, logs.",
    no_args_is_help=True,
)

Ref = Annotated[str, typer.Argument(help="The deployment's name (or id).")]
NoWait = Annotated[
    bool, typer.Option("--no-wait", help="Return at once instead of following the deployer.")
]
Timeout = Annotated[
    float, typer.Option("--timeout", help="How long to follow the deployer, in seconds.")
]
EnvOption = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="KEY=VALUE, repeatable; values are stored encrypted."),
]
STATUS_STYLE = {
    "running": "green",
    "deploying": "cyan",
    "suspended": "yellow",
    "warn": "red",
    "deleting": "magenta",
    "not_deployed": "dim",
}
#: States the deployer leaves a deployment in until something happens.
SETTLED = {"running", "warn", "suspended", "not_deployed"}
_DURATION = re.compile(r"^(\d+)([smhd])$")


def _styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{escape(status)}[/]" if style else escape(status)


def _env(pairs: list[str] | None) -> dict[str, str] | None:
    if pairs is None:
        return None
    env: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


def _since(value: str | None) -> datetime | None:
    """``10m``/``2h``/``30s``/``1d`` ago, or an ISO 8601 time."""
    if value is None:
        return None
    match = _DURATION.match(value)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (30s, 10m, 2h, 1d) nor an ISO 8601 time",
            param_hint="--since",
        ) from exc


def _line(deployment: DeploymentOut) -> str:
    text = f"{escape(deployment.name)}: {_styled(deployment.status)}"
    if deployment.endpoint:
        text += f" at {escape(deployment.endpoint)}"
    serving = deployment.serving_image
    if deployment.status == "warn" and serving and serving != deployment.image:
        text += f" (still serving {escape(serving)})"
    if deployment.restarts:
        text += f" ({deployment.restarts} restarts)"
    return text


async def _follow(
    client: ModyardClient, ref: str, first: DeploymentOut, timeout: float, *, gone_ok: bool = False
) -> DeploymentOut | None:
    """Poll until the deployment settles, showing what the deployer does (pull progress)."""
    deployment = first
    deadline = time.monotonic() + timeout
    with console.status(f"{escape(ref)}: {escape(deployment.progress or '…')}") as status:
        while True:
            settled = deployment.status in SETTLED and deployment.status == _expected(deployment)
            if settled or time.monotonic() > deadline:
                return deployment
            status.update(
                f"{escape(ref)}: {_styled(deployment.status)} {escape(deployment.progress or '')}"
            )
            await asyncio.sleep(0.5)
            try:
                deployment = await client.deployer.deployment(ref)
            except ModyardAPIError as exc:
                if gone_ok and exc.status == 404:
                    return None
                raise


def _expected(deployment: DeploymentOut) -> str:
    """The status the desired state leads to when nothing goes wrong (warn also settles)."""
    if deployment.status == "warn" and deployment.desired == "running":
        return "warn"
    return {"not_deployed": "not_deployed", "running": "running", "suspended": "suspended"}.get(
        deployment.desired, "deleted"
    )


def _report(deployment: DeploymentOut | None, as_json: bool, verb: str) -> None:
    if deployment is None:
        console.print(f"[green]✓[/] {verb}")
        return
    if as_json:
        echo_json(deployment)
    else:
        mark = "[red]✗[/]" if deployment.status == "warn" else "[green]✓[/]"
        console.print(f"{mark} {_line(deployment)}")
        if deployment.reason:
            console.print(f"  {escape(deployment.reason)}")
    if deployment.status == "warn":
        raise typer.Exit(1)


def _change(
    ref: str, action: str, no_wait: bool, timeout: float, as_json: bool, **options: Any
) -> None:
    async def run(client: ModyardClient) -> DeploymentOut | None:
        operation = getattr(client.deployer, action)
        first: DeploymentOut = await operation(ref, **options)
        if no_wait:
            return first
        return await _follow(client, ref, first, timeout, gone_ok=action == "delete")

    result = call_api(run)
    _report(result, as_json, f"{ref} deleted")


@deploy_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits and '-'.")],
    image: Annotated[str, typer.Option(help="host/user/repo:version")],
    token_id: Annotated[str, typer.Option("--token-id", help="The registry token's name.")],
    token: Annotated[
        str,
        typer.Option(
            envvar="MODYARD_DEPLOY_TOKEN",
            prompt=True,
            hide_input=True,
            help="The registry token (or $MODYARD_DEPLOY_TOKEN; prompted for when absent).",
        ),
    ],
    registry_host: Annotated[
        str | None,
        typer.Option("--registry-host", help="The registry host (default: the image's host)."),
    ] = None,
    tag: Annotated[str | None, typer.Option(help="The version, if the image has none.")] = None,
    env: EnvOption = None,
    port: Annotated[
        int | None, typer.Option(help="The port the module listens on (given as $PORT).")
    ] = None,
    deploy: Annotated[bool, typer.Option("--deploy", help="Deploy it right away.")] = False,
    timeout: Timeout = 300,
    as_json: JsonOption = False,
) -> None:
    """Register a container module (not deployed yet unless --deploy)."""
    host = registry_host or image.split("/", 1)[0]

    async def run(client: ModyardClient) -> DeploymentOut | None:
        created = await client.deployer.create(
            name=name,
            image=image,
            registry_host=host,
            token_id=token_id,
            token=token,
            tag=tag,
            env=_env(env),
            port=port,
        )
        if not deploy:
            return created
        return await _follow(client, name, await client.deployer.deploy(name), timeout)

    _report(call_api(run), as_json, "")


@deploy_app.command("deploy")
def deploy_command(
    ref: Ref, no_wait: NoWait = False, timeout: Timeout = 300, as_json: JsonOption = False
) -> None:
    """Pull the image with the token and start it; shows progress until running or warn."""
    _change(ref, "deploy", no_wait, timeout, as_json)


@deploy_app.command("suspend")
def suspend(
    ref: Ref, no_wait: NoWait = False, timeout: Timeout = 120, as_json: JsonOption = False
) -> None:
    """Stop the process; its container and data stay."""
    _change(ref, "suspend", no_wait, timeout, as_json)


@deploy_app.command("resume")
def resume(
    ref: Ref, no_wait: NoWait = False, timeout: Timeout = 300, as_json: JsonOption = False
) -> None:
    """Start a suspended deployment again."""
    _change(ref, "resume", no_wait, timeout, as_json)


@deploy_app.command("update")
def update(
    ref: Ref,
    tag: Annotated[str | None, typer.Option(help="The new version.")] = None,
    env: EnvOption = None,
    token_id: Annotated[str | None, typer.Option("--token-id")] = None,
    token: Annotated[str | None, typer.Option(help="A new registry token.")] = None,
    port: Annotated[int | None, typer.Option()] = None,
    no_wait: NoWait = False,
    timeout: Timeout = 300,
    as_json: JsonOption = False,
) -> None:
    """A new tag and/or env (--env replaces the env); a running module restarts with it, the
    old version serving on if the new one fails."""
    _change(
        ref,
        "update",
        no_wait,
        timeout,
        as_json,
        tag=tag,
        env=_env(env),
        token_id=token_id,
        token=token,
        port=port,
    )


@deploy_app.command("delete")
def delete(
    ref: Ref, no_wait: NoWait = False, timeout: Timeout = 120, as_json: JsonOption = False
) -> None:
    """Stop the process, delete its container and its data."""
    _change(ref, "delete", no_wait, timeout, as_json)


@deploy_app.command("list")
def list_deployments(
    status: Annotated[str | None, typer.Option(help="Only deployments in this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Deployments: name, image, tag, status, since, restarts, endpoint."""

    async def run(client: ModyardClient) -> list[DeploymentOut]:
        return [item async for item in client.deployer.all_deployments(status=status)]

    deployments = call_api(run)
    if as_json:
        echo_json(deployments)
        return
    table = Table("name", "image", "tag", "status", "since", "restarts", "endpoint")
    for item in deployments:
        table.add_row(
            escape(item.name),
            escape(item.image),
            escape(item.tag or ""),
            _styled(item.status),
            item.since,
            str(item.restarts),
            escape(item.endpoint or ""),
        )
    console.print(table)
    for item in deployments:
        if item.status == "warn" and item.reason:
            err_console.print(f"[red]{escape(item.name)}[/]: {escape(item.reason)}")


@deploy_app.command("logs")
def logs(
    ref: Ref,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only output since: 30s, 10m, 2h, 1d or an ISO time.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output.")
    ] = False,
    timestamps: Annotated[bool, typer.Option(help="Prefix each line with its time.")] = False,
) -> None:
    """The container's output (stdout and stderr)."""
    start = _since(since)

    async def run(client: ModyardClient) -> None:
        async for text in client.deployer.logs(
            ref, tail=tail, since=start, follow=follow, timestamps=timestamps
        ):
            sys.stdout.write(text)
            sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --follow, quietly
        call_api(run)
