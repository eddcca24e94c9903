from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from modyard.common.errors import Conflict, install_problem_handlers
from modyard.common.observability.middleware import RequestContextMiddleware


class Thing(BaseModel):
    name: str
    size: int


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service="test")

    @app.post("/things")
    async def create(thing: Thing) -> Thing:
        if thing.name == "taken":
            raise Conflict("A thing named 'taken' exists; pick another name.", name=thing.name)
        return thing

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_validation_error_is_a_problem_with_json_pointers(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "a", "size": "big"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/validation-error")
    assert body["errors"] == [{"pointer": "/body/size", "detail": body["errors"][0]["detail"]}]
    assert "integer" in body["errors"][0]["detail"]
    assert "/body/size" in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


async def test_missing_field_says_it_is_required(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"size": 1})
    body = response.json()
    assert body["errors"][0]["pointer"] == "/body/name"
    assert "required" in body["errors"][0]["detail"]


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/things", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "JSON" in response.json()["errors"][0]["detail"]


async def test_domain_problem_keeps_status_and_extensions(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "taken", "size": 1})
    assert response.status_code == 409
    body = response.json()
    assert body["type"].endswith("/conflict")
    assert body["name"] == "taken"
    assert body["instance"] == "/things"


async def test_unknown_path_and_wrong_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "/nowhere" in missing.json()["detail"]
    wrong = await client.delete("/things")
    assert wrong.status_code == 405
    assert wrong.json()["type"].endswith("/method-not-allowed")


async def test_unexpected_error_hides_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"]


async def test_request_and_correlation_ids_are_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/nowhere", headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}
    )
    assert response.headers["x-request-id"] == "req-1"
    assert response.headers["x-correlation-id"] == "corr-1"


async def test_unsafe_incoming_ids_are_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


async def test_log_lines_are_json_with_request_and_correlation_ids() -> None:
    import io
    import json

    from modyard.common.logging import configure_logging

    stream = io.StringIO()
    configure_logging(service="demo", level="INFO", json=True, stream=stream)
    try:
        transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post(
                "/things", json={"name": "a", "size": 1}, headers={"X-Correlation-ID": "corr-7"}
            )
    finally:
        configure_logging(service="test", level="WARNING", json=False)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = next(line for line in lines if line["event"] == "http_request")
    assert access["service"] == "demo"
    assert access["correlation_id"] == "corr-7"
    assert access["status"] == 200
    assert access["route"] == "/things"
    assert len(access["request_id"]) == 32


def test_a_logger_used_before_a_reconfiguration_names_the_new_service() -> None:
    # structlog keeps a logger's processors from its first use: the service's name must still
    # be the latest configuration's (a process hosting several apps in turn, as the tests do).
    import io
    import json

    import structlog

    from modyard.common.logging import configure_logging

    logger = structlog.get_logger("modyard.test.reconfigured")
    configure_logging(service="first", level="INFO", json=True, stream=io.StringIO())
    logger.info("warm")  # cached now, with the first configuration's processors
    stream = io.StringIO()
    configure_logging(service="second", level="INFO", json=True, stream=stream)
    try:
        logger.info("after")
    finally:
        configure_logging(service="test", level="WARNING", json=False)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert (line["event"], line["service"]) == ("after", "second")
