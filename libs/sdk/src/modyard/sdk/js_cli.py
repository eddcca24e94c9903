"""``modyard js …``: debugging Appmixer (``js``) components on the JavaScript runner.

- ``modyard js run MODULE COMPONENT --version V --message JSON``: one call, outside any flow,
  through the runner (``POST /v1/run``); prints the outputs per port, or the error as the
  runtime would classify it, and what the component logged.
- ``modyard js logs [--module M] [--follow]``: what components printed and why sandboxes stopped
  (``GET /v1/logs``), oldest first; ``--follow`` keeps reading.

The runner's URL: ``--url``, else ``MODYARD_JS_RUNNER_URL``, else ``http://127.0.0.1:8007``
(``modyard dev run``); an operator token as every operator command (``MODYARD_TOKEN`` or minted
from ``MODYARD_JWT_SECRET`` in development).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from modyard.sdk.cli_support import JsonOption, console, echo_json, fail, run_api

if TYPE_CHECKING:
    from modyard.sdk.client import ModyardClient

js_app = typer.Typer(
    help="JavaScript (Appmixer) components: run one once, read their logs.", no_args_is_help=True
)

DEFAULT_URL = "http://127.0.0.1:8007"
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="The JavaScript runner (default: MODYARD_JS_RUNNER_URL or :8007)."),
]


def _client(url: str | None) -> ModyardClient:
    from modyard.common.settings import CommonSettings
    from modyard.sdk.client import ModyardClient
    from modyard.sdk.tokens import operator_token

    where = url or os.environ.get("MODYARD_JS_RUNNER_URL") or DEFAULT_URL
    settings = CommonSettings()
    return ModyardClient(
        {"js-runner": where.rstrip("/")}, token=operator_token(settings), timeout=60
    )


def _json_option(text: str | None, name: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise fail(
            f'{name} is not JSON ({exc}); e.g. {name} \'{{"email": "ada@example.com"}}\''
        ) from None


@js_app.command("run")
def run(
    module: Annotated[str, typer.Argument(help="The module, e.g. acme.crm.")],
    component: Annotated[
        str, typer.Argument(help="The component: its full name or last part, e.g. Enrich.")
    ],
    version: Annotated[str, typer.Option("--version", "-v", help="The module version.")],
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="The message's content (JSON).")
    ] = None,
    port: Annotated[
        str, typer.Option("--port", help="The input port (tick/start/stop too).")
    ] = "in",
    properties: Annotated[
        str | None, typer.Option("--properties", help="The node's properties (JSON object).")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", help="What the component gets as context.auth (JSON object)."),
    ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Call one component once through the runner and print its outputs (and its logs)."""
    body = {
        "module": module,
        "version": version,
        "component": component,
        "message": _json_option(message, "--message"),
        "port": port,
        "properties": _json_option(properties, "--properties") or {},
        "config": _json_option(config, "--config") or {},
    }

    async def call() -> dict[str, Any]:
        async with _client(url) as client:
            response = await client._request("POST", "js-runner", "/v1/run", json=body)
            return dict(response.json())

    answer = run_api(call())
    if as_json:
        echo_json(answer)
    else:
        for line in answer["logs"]:
            console.print(f"[dim]{escape(line['level'])}[/] {escape(line['message'])}")
        reply = answer["reply"]
        if "error" in reply:
            error = reply["error"]
            retry = "retried" if error.get("retryable") else "not retried"
            console.print(f"[red]✗[/] {escape(str(error.get('message')))} ({retry})")
        for out_port, messages in (reply.get("outputs") or {}).items():
            for value in messages:
                console.print(f"[green]{escape(out_port)}[/] {escape(json.dumps(value))}")
        if "response" in reply:
            console.print(f"[cyan]response[/] {escape(json.dumps(reply['response']))}")
    if "error" in answer["reply"]:
        raise typer.Exit(1)


@js_app.command("logs")
def logs(
    module: Annotated[
        str | None, typer.Option("--module", help="Only this module's lines, e.g. acme.crm.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """What components printed (console.*, context.log) and why sandboxes stopped."""

    async def read() -> None:
        after = 0
        async with _client(url) as client:
            while True:
                params: dict[str, Any] = {"after": after}
                if module:
                    params["module"] = module
                page = (await client._request("GET", "js-runner", "/v1/logs", params=params)).json()
                for item in page["items"]:
                    if as_json:
                        echo_json(item)
                    else:
                        console.print(
                            f"[dim]{escape(item['module'])} {item['pid']}[/] "
                            f"{escape(item['level'])} {escape(item['message'])}"
                        )
                after = int(page["last"])
                if not follow:
                    return
                await asyncio.sleep(1.0)

    try:
        run_api(read())
    except KeyboardInterrupt:
        return
