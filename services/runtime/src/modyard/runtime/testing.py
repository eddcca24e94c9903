"""Test helpers for what calls the runtime's HTTP API (the runtime's CLI, the backoffice)."""

from __future__ import annotations

import uuid

import httpx

from modyard.common.testing.polling import eventually


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
