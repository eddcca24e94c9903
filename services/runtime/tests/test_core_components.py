"""The built-in components: what each sends where, what it calls, and how it fails."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import aiohttp.abc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator

from modyard.common.egress.aiohttp_client import EgressClients
from modyard.common.egress.policy import EgressPolicy
from modyard.common.settings import CommonSettings
from modyard.common.templates import TemplateError
from modyard.runtime.components.base import ComponentError, Delay, ExecutionContext
from modyard.runtime.components.core import (
    CORE_COMPONENTS,
    check_core_properties,
    core_component,
)
from modyard.runtime.components.core import http as core_http
from modyard.runtime.components.core.http import HttpComponent
from modyard.runtime.egress import gate as egress_gate
from modyard.runtime.egress.gate import RuntimeEgress

PAYLOAD: dict[str, Any] = {"total": 150, "customer": {"name": "Ada"}, "items": [1, 2]}


class Recorder:
    def __init__(self) -> None:
        self.logged: list[Any] = []
        self.emitted: list[tuple[str, Any]] = []

    async def log(self, entry: Any) -> None:
        self.logged.append(entry)

    async def emit(self, kind: str, data: Any) -> None:
        self.emitted.append((kind, data))


def context(properties: dict[str, Any], recorder: Recorder | None = None) -> ExecutionContext:
    return ExecutionContext(
        workspace="acme",
        flow_id="flow-1",
        node_id="node-1",
        message_id="msg-1",
        properties=properties,
        log=recorder.log if recorder else None,
        emit=recorder.emit if recorder else None,
    )


async def run(name: str, properties: dict[str, Any], payload: Any = PAYLOAD, **kw: Any) -> Any:
    component = core_component(name)
    assert component is not None
    return await component.run(context(properties, kw.get("recorder")), "in", payload)


# --- the registry ------------------------------------------------------------------------------


def test_the_registry_holds_the_six_non_trigger_components() -> None:
    assert sorted(CORE_COMPONENTS) == [
        "core.condition",
        "core.delay",
        "core.emit",
        "core.http",
        "core.log",
        "core.transform",
    ]
    for name, component in CORE_COMPONENTS.items():
        assert component.name == name
        assert core_component(name) is component
    assert core_component("core.webhook") is None
    assert core_component("transform") is None


@pytest.mark.parametrize("name", sorted(CORE_COMPONENTS))
def test_every_properties_schema_is_a_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(CORE_COMPONENTS[name].properties_schema)


@pytest.mark.parametrize(
    ("name", "ports"),
    [
        ("core.transform", ("out",)),
        ("core.condition", ("true", "false")),
        ("core.http", ("out",)),
        ("core.delay", ("out",)),
        ("core.emit", ("out",)),
        ("core.log", ()),
    ],
)
def test_output_ports(name: str, ports: tuple[str, ...]) -> None:
    assert CORE_COMPONENTS[name].out_ports == ports


@pytest.mark.parametrize(
    ("name", "properties", "pointer"),
    [
        ("core.transform", {"mapping": {"a": ["{{ nope.x }}"]}}, "/mapping/a/0"),
        ("core.condition", {"expression": "payload.total >"}, "/expression"),
        ("core.condition", {"expression": "import os"}, "/expression"),
        ("core.http", {"url": "https://x.test/{{ payload. }}"}, "/url"),
        ("core.http", {"url": "ftp://files.test/x"}, "/url"),
        ("core.http", {"url": "https://x.test", "headers": {"a": "{{ a }}"}}, "/headers/a"),
        ("core.http", {"url": "https://x.test", "body": {"k": "{{ ) }}"}}, "/body/k"),
        ("core.emit", {"type": "a.b", "data": "{{ payload.x; }}"}, "/data"),
        ("core.log", {"message": "{{ "}, "/message"),
    ],
)
def test_check_core_properties_refuses_what_cannot_run(
    name: str, properties: dict[str, Any], pointer: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        check_core_properties(name, properties)
    assert caught.value.pointer == pointer


def test_check_core_properties_accepts_runnable_properties() -> None:
    check_core_properties("core.transform", {"mapping": {"t": "{{ payload.total }}"}})
    check_core_properties("core.condition", {"expression": "payload.total > 100"})
    check_core_properties("core.http", {"url": "{{ config.base }}/x", "body": "{{ payload }}"})
    check_core_properties("core.delay", {"seconds": 5})
    check_core_properties("core.log", {})
    with pytest.raises(ValueError, match="no core component"):
        check_core_properties("core.nope", {})


async def test_properties_that_do_not_fit_the_schema_fail_without_retry() -> None:
    with pytest.raises(ComponentError) as caught:
        await run("core.delay", {"seconds": 0})
    assert caught.value.retryable is False
    assert caught.value.details["errors"][0]["pointer"] == "/seconds"
    with pytest.raises(ComponentError) as caught:
        await run("core.transform", {})
    assert caught.value.retryable is False


# --- transform, condition, delay, emit, log -----------------------------------------------------


async def test_transform_sends_the_rendered_mapping() -> None:
    mapping = {
        "total": "{{ payload.total }}",
        "label": "Order of {{ payload.customer.name }} in {{ flow.workspace }}",
        "items": "{{ payload.items }}",
        "ids": ["{{ flow.id }}", "{{ message.id }}"],
        "own": "{{ properties.mapping.fixed }}",
        "fixed": 1,
    }
    outputs = await run("core.transform", {"mapping": mapping})
    assert outputs == {
        "out": [
            {
                "total": 150,
                "label": "Order of Ada in acme",
                "items": [1, 2],
                "ids": ["flow-1", "msg-1"],
                "own": 1,
                "fixed": 1,
            }
        ]
    }


async def test_transform_of_a_scalar_mapping_sends_the_scalar() -> None:
    assert await run("core.transform", {"mapping": "{{ payload.total }}"}) == {"out": [150]}


async def test_a_template_that_cannot_render_fails_without_retry() -> None:
    with pytest.raises(ComponentError) as caught:
        await run("core.transform", {"mapping": {"x": "{{ 1 + 1 }}"}})
    assert caught.value.retryable is False
    assert caught.value.details["pointer"] == "/mapping/x"


@pytest.mark.parametrize(
    ("expression", "payload", "port"),
    [
        ("payload.total > 100", {"total": 150}, "true"),
        ("payload.total > 100", {"total": 50}, "false"),
        ("payload.total > 100", {}, "false"),
        ("payload.customer.vip", {"customer": {"vip": True}}, "true"),
        ("payload.items.length", {"items": []}, "false"),
        ("payload.status === 'paid' || payload.override", {"status": "open"}, "false"),
        ("payload.status === 'paid' || payload.override", {"override": 1}, "true"),
        ("flow.workspace == 'acme'", None, "true"),
    ],
)
async def test_condition_routes_the_unchanged_payload_by_the_expression(
    expression: str, payload: Any, port: str
) -> None:
    outputs = await run("core.condition", {"expression": expression}, payload)
    assert outputs == {port: [payload]}
    assert outputs[port][0] is payload


async def test_condition_with_junk_fails_without_retry() -> None:
    with pytest.raises(ComponentError) as caught:
        await run("core.condition", {"expression": "payload.total >> 1"})
    assert caught.value.retryable is False
    assert caught.value.details["position"] == 15


async def test_delay_asks_the_engine_to_send_the_payload_later() -> None:
    result = await run("core.delay", {"seconds": 90})
    assert result == Delay(90.0, {"out": [PAYLOAD]})
    assert isinstance(result, Delay)
    assert result.outputs["out"][0] is PAYLOAD


@pytest.mark.parametrize("seconds", [0, 0.5, 86401, "10"])
async def test_delay_outside_one_second_to_a_day_is_refused(seconds: Any) -> None:
    with pytest.raises(ComponentError):
        await run("core.delay", {"seconds": seconds})


async def test_emit_publishes_the_rendered_data_and_passes_the_payload_on() -> None:
    recorder = Recorder()
    properties = {"type": "acme.order.created", "data": {"amount": "{{ payload.total }}"}}
    outputs = await run("core.emit", properties, recorder=recorder)
    assert recorder.emitted == [("acme.order.created", {"amount": 150})]
    assert outputs == {"out": [PAYLOAD]}


async def test_emit_without_data_publishes_the_payload() -> None:
    recorder = Recorder()
    await run("core.emit", {"type": "acme.order.created"}, recorder=recorder)
    assert recorder.emitted == [("acme.order.created", PAYLOAD)]


@pytest.mark.parametrize("kind", ["single", "acme..x", ".acme.x", "acme.x.", "acme x.y", ""])
async def test_emit_refuses_types_that_are_not_dotted_names(kind: str) -> None:
    recorder = Recorder()
    with pytest.raises(ComponentError):
        await run("core.emit", {"type": kind}, recorder=recorder)
    assert recorder.emitted == []


async def test_log_writes_the_rendered_message_and_sends_nothing() -> None:
    recorder = Recorder()
    outputs = await run("core.log", {"message": "total={{ payload.total }}"}, recorder=recorder)
    assert outputs == {}
    assert recorder.logged == ["total=150"]


async def test_log_without_a_message_writes_the_payload() -> None:
    recorder = Recorder()
    await run("core.log", {}, recorder=recorder)
    assert recorder.logged == [PAYLOAD]


@pytest.mark.parametrize(("name", "properties"), [("core.log", {}), ("core.emit", {"type": "a.b"})])
async def test_a_context_without_its_callback_is_a_retryable_runtime_fault(
    name: str, properties: dict[str, Any]
) -> None:
    with pytest.raises(ComponentError) as caught:
        await run(name, properties)
    assert caught.value.retryable is True


# --- http (every exchange with a real server on the loopback interface) --------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[tuple[str, list[Seen]]]:
    """An aiohttp server on 127.0.0.1 answering every path with ``answer``; yields its base URL
    and the requests it has seen."""
    seen: list[Seen] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                {name.lower(): value for name, value in request.headers.items()},
                await request.read(),
            )
        )
        return await answer(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), seen


def answering(response: Callable[[], web.StreamResponse]) -> Answer:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return response()

    return answer


async def call(
    properties: dict[str, Any],
    payload: Any = PAYLOAD,
    component: HttpComponent | None = None,
) -> Any:
    component = component or HttpComponent()
    try:
        return await component.run(context(properties), "in", payload)
    finally:
        await component.aclose()


async def test_http_sends_the_rendered_request_and_passes_the_answer_on() -> None:
    def answer() -> web.Response:
        response = web.json_response({"id": 7}, status=201, headers={"X-Request-Id": "r1"})
        response.headers.add("X-Multi", "a")
        response.headers.add("X-Multi", "b")
        return response

    async with serving(answering(answer)) as (base, seen):
        outputs = await call(
            {
                "method": "POST",
                "url": base + "/customers/{{ payload.customer.name }}?fixed=1",
                "query": {"total": "{{ payload.total }}", "q": "a b&c"},
                "headers": {"Authorization": "Bearer {{ flow.id }}"},
                "body": {"total": "{{ payload.total }}", "items": "{{ payload.items }}"},
            }
        )
    assert outputs["out"][0]["status"] == 201
    assert outputs["out"][0]["body"] == {"id": 7}
    assert outputs["out"][0]["headers"]["x-request-id"] == "r1"
    assert outputs["out"][0]["headers"]["x-multi"] == "a, b"
    (request,) = seen
    assert request.method == "POST"
    assert request.path == "/customers/Ada"
    assert request.query == {"fixed": "1", "total": "150", "q": "a b&c"}
    assert request.headers["authorization"] == "Bearer flow-1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == core_http.USER_AGENT
    assert json.loads(request.body) == {"total": 150, "items": [1, 2]}


async def test_http_sends_text_bodies_as_text_and_no_body_when_absent() -> None:
    async with serving(answering(lambda: web.Response(text="plain answer"))) as (base, seen):
        text = await call({"method": "PUT", "url": base, "body": "n={{ payload.total }}"})
        await call(
            {"method": "PUT", "url": base, "body": "x", "headers": {"Content-Type": "text/csv"}}
        )
        await call({"url": base})
    assert text["out"][0]["body"] == "plain answer"
    assert seen[0].body == b"n=150"
    assert seen[0].headers["content-type"] == "text/plain; charset=utf-8"
    assert seen[1].headers["content-type"] == "text/csv"
    assert seen[2].method == "GET"
    assert seen[2].body == b""


async def test_http_keeps_no_cookies_between_requests() -> None:
    def set_cookie() -> web.Response:
        response = web.Response(text="ok")
        response.set_cookie("session", "flow-a-secret")
        return response

    component = HttpComponent()
    try:
        async with serving(answering(set_cookie)) as (base, seen):
            await component.run(context({"url": base}), "in", {})
            await component.run(context({"url": base}), "in", {})
    finally:
        await component.aclose()
    # One flow's cookies must never travel with another flow's requests.
    assert "cookie" not in seen[1].headers


@pytest.mark.parametrize(
    ("answer", "expect_json", "body"),
    [
        (lambda: web.json_response([1, "a"]), False, [1, "a"]),
        (
            lambda: web.Response(body=b'{"a":1}', content_type="application/vnd.x+json"),
            False,
            {"a": 1},
        ),
        (lambda: web.Response(body=b'{"a":1}', content_type="text/plain"), True, {"a": 1}),
        (
            lambda: web.Response(body=b"not json", content_type="application/json"),
            False,
            "not json",
        ),
        (lambda: web.Response(status=204), True, None),
        (
            lambda: web.Response(
                body="héllo".encode("latin-1"), content_type="text/plain", charset="latin-1"
            ),
            False,
            "héllo",
        ),
        (
            lambda: web.Response(
                body=b"caf\xc3\xa9", headers={"content-type": "text/plain; charset=no-such"}
            ),
            False,
            "café",
        ),
    ],
)
async def test_http_reads_the_answer_body(
    answer: Callable[[], web.StreamResponse], expect_json: bool, body: Any
) -> None:
    async with serving(answering(answer)) as (base, _seen):
        outputs = await call({"url": base, "expect_json": expect_json})
    assert outputs["out"][0]["body"] == body


@pytest.mark.parametrize("content", [b"<html>oops</html>", b'{"a": NaN}', b"[" * 100000])
async def test_http_expecting_json_fails_without_retry_on_anything_else(content: bytes) -> None:
    async with serving(answering(lambda: web.Response(body=content))) as (base, _seen):
        with pytest.raises(ComponentError) as caught:
            await call({"url": base, "expect_json": True})
    assert caught.value.retryable is False
    assert "not JSON" in caught.value.message


async def test_http_refuses_bodies_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_http, "MAX_RESPONSE_BYTES", 10)

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["size"]))

    async with serving(sized) as (base, _seen):
        with pytest.raises(ComponentError, match="larger than 10 bytes") as caught:
            await call({"url": f"{base}/?size=11"})
        ok = await call({"url": f"{base}/?size=10"})
    assert caught.value.retryable is False
    assert ok["out"][0]["body"] == "x" * 10


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (404, False), (410, False), (422, False),
     (429, True), (408, True), (500, True), (502, True), (503, True), (504, True), (301, False)],
)  # fmt: skip
async def test_http_failing_statuses_are_classified(status: int, retryable: bool) -> None:
    answer = answering(
        lambda: web.Response(
            status=status, text="details of the failure", headers={"location": "/elsewhere"}
        )
    )
    async with serving(answer) as (base, _seen):
        with pytest.raises(ComponentError) as caught:
            await call(
                {
                    "url": base + "/v1/x?token=secret",
                    "follow_redirects": False,
                }
            )
    error = caught.value
    assert (error.retryable, error.status) == (retryable, status)
    assert error.details["kind"] == "http_status"
    assert error.details["body"] == "details of the failure"
    assert "secret" not in error.message
    assert "secret" not in json.dumps(error.to_json())
    assert f"answered {status}" in error.message


async def test_http_passes_retry_after_on() -> None:
    answer = answering(lambda: web.Response(status=429, headers={"Retry-After": "42"}))
    async with serving(answer) as (base, _seen):
        with pytest.raises(ComponentError) as caught:
            await call({"url": base})
    assert caught.value.details["retry_after_seconds"] == 42.0


async def test_http_keeps_only_the_start_of_a_failing_answer() -> None:
    async with serving(answering(lambda: web.Response(status=500, body=b"e" * 100000))) as (
        base,
        _seen,
    ):
        with pytest.raises(ComponentError) as caught:
            await call({"url": base})
    assert caught.value.details["body"] == "e" * core_http.ERROR_BODY_BYTES


async def test_http_follows_redirects_by_default_up_to_a_limit() -> None:
    async def answer(request: web.Request) -> web.Response:
        if request.path == "/old":
            raise web.HTTPFound("/new")
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        return web.Response(text=request.path)

    async with serving(answer) as (base, _seen):
        outputs = await call({"url": f"{base}/old"})
        with pytest.raises(ComponentError) as caught:
            await call({"url": f"{base}/loop"})
    assert outputs["out"][0]["body"] == "/new"
    assert (caught.value.retryable, caught.value.details["kind"]) == (False, "protocol")


class FailingResolver(aiohttp.abc.AbstractResolver):
    """A DNS lookup that fails as a name that does not exist does, without asking any server."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        return None


def gate_with(
    resolver: aiohttp.abc.AbstractResolver | None = None, **headers: str
) -> RuntimeEgress:
    """A gate of the environment's policy whose lookups go to ``resolver``."""
    policy = EgressPolicy.from_settings(CommonSettings())
    return RuntimeEgress(policy, clients=EgressClients(policy, resolver=resolver, headers=headers))


async def test_http_dns_failures_are_retried() -> None:
    with pytest.raises(ComponentError) as caught:
        await call(
            {"url": "https://no-such-host.test/"},
            component=HttpComponent(gate_with(FailingResolver())),
        )
    assert (caught.value.retryable, caught.value.details["kind"]) == (True, "dns")


async def test_http_a_slow_server_times_out_as_a_whole_and_is_retried() -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    async with serving(slow) as (base, _seen):
        started = asyncio.get_running_loop().time()
        with pytest.raises(ComponentError) as caught:
            await call({"url": base + "/x?key=secret", "timeout_seconds": 0.05})
    assert asyncio.get_running_loop().time() - started < 2
    assert (caught.value.retryable, caught.value.details["kind"]) == (True, "timeout")
    assert caught.value.message.startswith(f"GET {base}/x failed: ")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.test/x",
        "file:///etc/passwd",
        "{{ payload.target }}",
        "https://{{ payload.nothing }}",
        "http://[::1",
    ],
)
async def test_http_refuses_urls_that_are_not_http_without_retry(url: str) -> None:
    with pytest.raises(ComponentError) as caught:
        await call({"url": url}, {"target": "gopher://x.test/"})
    assert caught.value.retryable is False


async def test_http_headers_that_break_the_protocol_fail_without_retry() -> None:
    async with serving(answering(web.Response)) as (base, seen):
        with pytest.raises(ComponentError) as caught:
            await call(
                {"url": base, "headers": {"X-A": "{{ payload.v }}"}},
                {"v": "a\r\nInjected: 1"},
            )
    assert caught.value.retryable is False
    assert seen == []


async def test_http_shares_one_client_and_follows_the_runtime_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = gate_with(**{"x-client": "0"})

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("x-client", "other"))

    monkeypatch.setattr(egress_gate, "_current", first)
    component = core_component("core.http")
    assert isinstance(component, HttpComponent)
    try:
        async with serving(echo) as (base, _seen):
            for _ in range(3):
                outputs = await component.run(context({"url": base}), "in", {})
                assert outputs["out"][0]["body"] == "0"
            assert len(first.clients._clients) == 1
            monkeypatch.setattr(egress_gate, "_current", gate_with())
            outputs = await component.run(context({"url": base}), "in", {})
        assert outputs["out"][0]["body"] == "other"
    finally:
        await component.aclose()
        await first.aclose()


# --- http against raw sockets: failures a well-behaved server does not produce --------------------


@contextmanager
def closed_port() -> Iterator[int]:
    # Bound then closed without listening: nothing accepts there, so a connection is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


@asynccontextmanager
async def loopback_server(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_http_a_refused_connection_on_a_closed_port_is_retried() -> None:
    with closed_port() as port:
        with pytest.raises(ComponentError) as caught:
            await call({"url": f"http://127.0.0.1:{port}/x"})
    assert caught.value.retryable is True
    assert caught.value.details["kind"] == "connection"
    assert caught.value.details["exception"] == "ClientConnectorError"


async def test_http_talks_to_a_real_server() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        body = json.dumps({"echo": request_line.decode().split()[1]}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async with loopback_server(answer) as port:
        outputs = await call({"url": f"http://127.0.0.1:{port}/hello?n={{{{ payload.total }}}}"})
    assert outputs["out"][0]["status"] == 200
    assert outputs["out"][0]["body"] == {"echo": "/hello?n=150"}


async def test_http_a_server_hanging_up_without_answering_is_retried() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    async with loopback_server(hang_up) as port:
        with pytest.raises(ComponentError) as caught:
            await call({"url": f"http://127.0.0.1:{port}/"})
    assert caught.value.retryable is True
    assert caught.value.details["kind"] == "connection"


async def test_http_an_answer_cut_off_midway_is_retried() -> None:
    async def cut_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly the start")
        await writer.drain()
        writer.close()

    async with loopback_server(cut_off) as port:
        with pytest.raises(ComponentError) as caught:
            await call({"url": f"http://127.0.0.1:{port}/"})
    assert (caught.value.retryable, caught.value.details["kind"]) == (True, "connection")


def test_properties_checked_once_stay_checked_and_bad_ones_fail_every_time() -> None:
    """Valid properties are remembered by identity (one check per flow load, not per message);
    invalid ones are never remembered: every message sees the failure."""
    transform = core_component("core.transform")
    assert transform is not None
    good = {"mapping": {"n": "{{ payload.total }}"}}
    for _ in range(2):
        assert asyncio.run(transform.run(context(good), "in", PAYLOAD)) == {"out": [{"n": 150}]}
    bad: dict[str, Any] = {"mapping": {}, "extra": 1}
    for _ in range(2):
        with pytest.raises(ComponentError) as failure:
            asyncio.run(transform.run(context(bad), "in", PAYLOAD))
        assert failure.value.retryable is False
