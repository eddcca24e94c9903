"""Requests schemathesis found the runtime answering with a 500 (tests/test_api_fuzzing.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from modyard.runtime.app import create_app
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def runtime(infra: IsolatedInfra) -> AsyncIterator[tuple[RuntimeSettings, httpx.AsyncClient]]:
    settings = RuntimeSettings(database_url=infra.database_url, amqp_url=infra.amqp_url)
    async with in_process(create_app(settings)) as client:
        yield settings, client


async def test_a_nul_character_in_a_flow_is_a_422_problem_not_a_500(
    runtime: tuple[RuntimeSettings, httpx.AsyncClient],
) -> None:
    # PostgreSQL cannot store U+0000 in text or jsonb; JSON carries it without complaint.
    settings, client = runtime
    response = await client.post(
        "/v1/workspaces/nul/flows",
        json={"name": "flow\u0000name"},
        headers=auth_headers(settings),
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "\\u0000" in response.json()["detail"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("parameter", ["since", "until"])
async def test_unprocessed_message_filters_refuse_a_number_for_a_date_time(
    runtime: tuple[RuntimeSettings, httpx.AsyncClient], method: str, parameter: str
) -> None:
    # Regression: `until=0.5` was read as 0.5 s after the epoch and the filter matched nothing
    # (or, for DELETE and retry, everything before 1970) instead of telling the caller.
    settings, client = runtime
    response = await client.request(
        method,
        "/v1/unprocessed-messages",
        params={parameter: "0.5"},
        headers=auth_headers(settings),
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["pointer"] == f"/query/{parameter}"
    assert "ISO 8601" in error["detail"]
    good = await client.request(
        method,
        "/v1/unprocessed-messages",
        params={parameter: "2026-11-21T05:00:00Z"},
        headers=auth_headers(settings),
    )
    assert good.status_code == 200, good.text


def test_every_operation_has_its_own_operation_id() -> None:
    # Regression: the automations' endpoint route served five methods under one operationId.
    document = create_app(RuntimeSettings()).openapi()
    ids = [
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
