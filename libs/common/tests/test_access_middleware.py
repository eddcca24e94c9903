"""The request-context middleware's bookkeeping: metric series per route and status (kept per
middleware instead of looked up per request), the access log gated by its logger's level, and
the ids' logging context undone after each request."""

from __future__ import annotations

import io
import json

import httpx
import structlog
from fastapi import FastAPI, Response
from prometheus_client import REGISTRY

from modyard.common.errors import Conflict, install_problem_handlers
from modyard.common.logging import configure_logging
from modyard.common.observability.middleware import RequestContextMiddleware
from modyard.common.request_context import bound_context, current_request_id

SERVICE = "access-test"


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=SERVICE)

    @app.get("/stale-ids")
    async def stale_ids() -> Response:
        # An app that copies ids onto its answer: the request's own replace them.
        return Response(headers={"X-Request-ID": "stale", "X-Correlation-ID": "stale"})

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        if item == "taken":
            raise Conflict("taken")
        return {"item": item}

    return app


def requests_counted(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "modyard_http_requests_total",
        {"service": SERVICE, "method": "GET", "route": route, "status": status},
    )
    return value or 0.0


def durations_counted(route: str) -> float:
    value = REGISTRY.get_sample_value(
        "modyard_http_request_duration_seconds_count",
        {"service": SERVICE, "method": "GET", "route": route},
    )
    return value or 0.0


async def test_every_request_is_counted_in_its_route_and_status_series() -> None:
    route = "/items/{item}"
    ok, conflict, unmatched = (
        requests_counted(route, "200"),
        requests_counted(route, "409"),
        requests_counted("unmatched", "404"),
    )
    durations = durations_counted(route)
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for n in range(5):
            assert (await client.get(f"/items/{n}")).status_code == 200
        for _ in range(2):
            assert (await client.get("/items/taken")).status_code == 409
        assert (await client.get("/nowhere")).status_code == 404
    assert requests_counted(route, "200") == ok + 5
    assert requests_counted(route, "409") == conflict + 2
    assert requests_counted("unmatched", "404") == unmatched + 1
    assert durations_counted(route) == durations + 7


async def access_lines(level: str) -> list[dict[str, object]]:
    stream = io.StringIO()
    configure_logging(service="demo", level=level, json=True, stream=stream)
    try:
        transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/items/a")
            await client.get("/items/taken")
    finally:
        configure_logging(service="test", level="WARNING", json=False)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["event"] == "http_request"]


async def test_the_access_log_follows_the_level() -> None:
    info = await access_lines("INFO")
    assert [(line["route"], line["status"]) for line in info] == [
        ("/items/{item}", 200),
        ("/items/{item}", 409),
    ]
    assert await access_lines("WARNING") == []


def test_the_ids_are_unbound_after_the_request_and_the_outer_ones_come_back() -> None:
    structlog.contextvars.clear_contextvars()
    with bound_context(request_id="outer", correlation_id="c-outer"):
        with bound_context(request_id="inner"):
            assert current_request_id() == "inner"
            assert structlog.contextvars.get_contextvars() == {
                "request_id": "inner",
                "correlation_id": "inner",
            }
        assert current_request_id() == "outer"
        assert structlog.contextvars.get_contextvars() == {
            "request_id": "outer",
            "correlation_id": "c-outer",
        }
    assert current_request_id() is None
    assert structlog.contextvars.get_contextvars() == {}


async def test_the_callers_ids_come_back_once_on_the_answer_and_a_new_id_is_made_without() -> None:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        given = await client.get(
            "/stale-ids", headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}
        )
        made = await client.get("/items/a")
        unsafe = await client.get("/items/a", headers={"X-Request-ID": "bad id with spaces"})
    assert given.headers.get_list("x-request-id") == ["req-1"]
    assert given.headers.get_list("x-correlation-id") == ["corr-1"]
    request_id = made.headers["x-request-id"]
    assert len(request_id) == 32
    int(request_id, 16)
    assert made.headers["x-correlation-id"] == request_id
    assert unsafe.headers["x-request-id"] not in {"bad id with spaces", request_id}
