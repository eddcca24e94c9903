"""A cell installed through the real services, as tests and benchmarks need one: its module
published to the registry, installed by the installer, and served by the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from modyard.testing.polling import eventually


@dataclass(frozen=True)
class InstalledCell:
    #: How the gateway's API names it: ``<workspace>:<slug>``.
    key: str
    installation_id: str
    #: What ``modyard cell run --credentials`` reads: the cell's own broker user and queue.
    credentials: dict[str, Any]


async def install_cell(
    client: httpx.AsyncClient,
    *,
    registry: str,
    installer: str,
    gateway: str,
    archive: bytes,
    workspace: str,
    slug: str,
    config: dict[str, Any],
) -> InstalledCell:
    """Create ``workspace``, publish ``archive`` and install it as ``slug``; returns once the
    gateway reports the cell ready. ``client`` calls as an operator."""
    created = await client.post(
        f"{installer}/v1/workspaces", json={"slug": workspace, "name": workspace}
    )
    assert created.status_code == 201, created.text
    published = await client.post(
        f"{registry}/v1/modules", content=archive, headers={"content-type": "application/zip"}
    )
    assert published.status_code in (200, 201), published.text
    installed = await client.post(
        f"{installer}/v1/workspaces/{workspace}/installations",
        json={"module": published.json()["name"], "slug": slug, "config": config},
    )
    assert installed.status_code == 201, installed.text
    key = f"{workspace}:{slug}"

    async def ready() -> bool:
        found = await client.get(f"{gateway}/v1/cells/{key}")
        return found.status_code == 200 and found.json()["status"] == "ready"

    await eventually(ready, timeout=60, interval=0.2)
    credentials = await client.get(f"{gateway}/v1/cells/{key}/credentials")
    assert credentials.status_code == 200, credentials.text
    return InstalledCell(key, str(installed.json()["id"]), dict(credentials.json()))


async def first_answer(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], *, timeout: float = 30.0
) -> httpx.Response:
    """POST ``body`` to an action call ``url`` until it answers 200: the first calls wait for a
    cell process that was just started to connect. ``AssertionError`` after ``timeout`` s."""
    answers: list[httpx.Response] = []

    async def answered() -> bool:
        answers.append(await client.post(url, json=body))
        return answers[-1].status_code == 200

    try:
        await eventually(answered, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"the cell does not answer: {answers[-1].text}") from None
    return answers[-1]
