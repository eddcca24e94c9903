"""Test helpers for the runtime and for what calls its HTTP API (the runtime's CLI, the
backoffice)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from aiohttp import web

from modyard.testing.polling import eventually


class FetchReceiver:
    """An HTTP server on 127.0.0.1 that automations ``fetch`` (``POST {url}/<name>``) to show
    what they heard: a JSON body as its value, any other body as its text."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def record(request: web.Request) -> web.Response:
            text = await request.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            self.calls.append((request.match_info["name"], body))
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/{name}", record)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def seen(self, name: str) -> list[Any]:
        return [body for called, body in self.calls if called == name]

    async def wait_for(self, name: str, count: int = 1) -> list[Any]:
        async def enough() -> bool:
            return len(self.seen(name)) >= count

        await eventually(enough)
        return self.seen(name)


async def unprocessed_messages(
    api: httpx.AsyncClient, runtime: str, workspace: str, count: int
) -> tuple[str, list[str]]:
    """A started flow whose node fails for good, and the ids of ``count`` messages it gave up
    on (a payload ``url`` that is not http: the ``core.http`` node fails, not retryable)."""
    created = await api.post(
        f"{runtime}/v1/workspaces/{workspace}/flows",
        json={
            "name": f"fragile-{uuid.uuid4().hex[:6]}",
            "definition": {
                "nodes": {
                    "hook": {"component": "core.webhook"},
                    "call": {
                        "component": "core.http",
                        "properties": {"method": "POST", "url": "{{ payload.url }}"},
                    },
                },
                "connections": [{"from": "hook", "to": "call"}],
                "retry_policy": {"max_attempts": 1},
            },
        },
    )
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    started = await api.post(f"{runtime}/v1/workspaces/{workspace}/flows/{flow_id}/start")
    assert started.is_success, started.text
    for index in range(count):
        sent = await api.post(
            f"{runtime}/v1/hooks/{workspace}/{flow_id}/hook", json={"url": f"ftp://nowhere/{index}"}
        )
        assert sent.status_code == 202, sent.text
    ids: list[str] = []

    async def stored() -> bool:
        page = await api.get(f"{runtime}/v1/unprocessed-messages", params={"flow": flow_id})
        ids[:] = [item["id"] for item in page.json()["items"]]
        return len(ids) == count

    await eventually(stored, timeout=30)
    return flow_id, ids
