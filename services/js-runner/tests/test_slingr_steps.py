"""Slingr flow steps on the runner (issue 21): a step calling a script calling
``dependencies.http`` against a loopback API, ``config.get()`` after ``configurationBuilder``,
``sys.utils``, ``sys.exceptions``, members that are not supported, and the per-script limits
(time, memory): each contained while a bystander package keeps answering."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from jsrunner_env import Harness, loopback_server, runner_settings, running_harness
from slingr_env import add_package, step

CONFIG = {"apiUrl": "", "token": "t0ken"}


@pytest.fixture(scope="module")
async def slingr(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    # A 1 s script limit (the setting's default is Slingr's 30 s): the child stops the script
    # itself, the supervisor's deadline for the call (the limit + 5 s) never has to kill it.
    settings = runner_settings(slingr_timeout_seconds=1, slingr_heap_mb=24)
    async with running_harness(settings, tmp_path_factory.mktemp("slingr")) as harness:
        yield harness


@pytest.fixture(scope="module")
async def vendor() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def ping(request: web.Request) -> web.Response:
        seen.append(
            {
                "auth": request.headers.get("Authorization"),
                "mode": request.query.get("mode"),
                "body": await request.json(),
            }
        )
        return web.json_response({"got": (await request.json())["message"]}, status=201)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/landed")

    async def landed(request: web.Request) -> web.Response:
        return web.json_response({"landed": True})

    app = web.Application()
    app.router.add_post("/ping", ping)
    app.router.add_get("/moved", moved)
    app.router.add_get("/landed", landed)
    async with loopback_server(app) as url:
        yield url, seen


async def test_a_step_calls_a_script_that_calls_the_vendor_with_the_built_config(
    slingr: Harness, vendor: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = vendor
    module = add_package(slingr, "relay")
    reply = await step(
        slingr, module, "callApi", {"message": "hello"}, config={**CONFIG, "apiUrl": url}
    )
    # step.json's default mode (a one-element list: that value), the script's formatting, the
    # builder's header, the full response.
    assert reply == {
        "outputs": {"out": [{"status": 201, "echoed": {"got": "Hello!"}}]},
        # sys.logs lines, for the flow's log.
        "logs": [{"source": "sys.logs", "level": "info", "message": "pinged with status 201"}],
    }
    assert seen[-1] == {"auth": "Bearer t0ken", "mode": "loud", "body": {"message": "Hello!"}}
    # The message's inputs win over step.json's defaults.
    await step(
        slingr,
        module,
        "callApi",
        {"message": "x", "mode": "plain"},
        config={**CONFIG, "apiUrl": url},
    )
    assert seen[-1]["mode"] == "plain"


async def test_http_goes_through_the_egress_policy(slingr: Harness) -> None:
    module = add_package(slingr, "relay")
    # The platform's database port on loopback: refused by the policy, not reached.
    reply = await step(
        slingr,
        module,
        "callApi",
        {"message": "x"},
        config={**CONFIG, "apiUrl": "http://10.0.0.1:5432"},
    )
    error = reply["error"]
    assert error["retryable"] is False, error
    assert error["kind"] == "egress_refused", error


async def test_utils_crypto_and_text(slingr: Harness) -> None:
    module = add_package(slingr, "relay")
    reply = await step(slingr, module, "sign", {"text": "abc"}, config=CONFIG)
    [out] = reply["outputs"]["out"]
    assert out == {
        "sha256": hashlib.sha256(b"abc").hexdigest(),
        "hmac": hmac.new(b"k3y", b"abc", hashlib.sha256).hexdigest(),
        "b64": "YWJj",
        "back": "abc",
        "jwtOk": True,
        "jwtBad": False,
        "title": "Hello Slingr World",
        "line": "Hi abc",
    }


@pytest.mark.parametrize(
    ("code", "retryable", "status"), [("badRequest", False, 400), ("serviceUnavailable", True, 503)]
)
async def test_throw_exception_is_a_classified_failure(
    slingr: Harness, code: str, retryable: bool, status: int
) -> None:
    module = add_package(slingr, "relay")
    reply = await step(slingr, module, "refuse", {"code": code}, config=CONFIG)
    assert reply["error"]["message"] == f"the relay refuses {code}"
    assert (reply["error"]["retryable"], reply["error"]["status"]) == (retryable, status)


async def test_an_unknown_exception_code_is_not_retried(slingr: Harness) -> None:
    module = add_package(slingr, "relay")
    reply = await step(slingr, module, "refuse", {"code": "quotaGone"}, config=CONFIG)
    assert reply["error"]["retryable"] is False
    assert reply["error"]["kind"] == "err_slingr_exception"


async def test_a_step_that_throws_fails_without_retry(slingr: Harness) -> None:
    # Its own TypeError would be thrown again on every try: not retried, named for the log.
    module = add_package(slingr, "relay")
    reply = await step(slingr, module, "crash", {}, config=CONFIG)
    assert reply["error"]["retryable"] is False, reply
    assert "Cannot read properties of undefined (reading 'length')" in reply["error"]["message"]
    after = await step(slingr, module, "sign", {"text": "fine"}, config=CONFIG)
    assert after["outputs"]["out"][0]["back"] == "fine"


async def test_an_unsupported_member_fails_naming_it(slingr: Harness) -> None:
    module = add_package(slingr, "relay")
    reply = await step(slingr, module, "entities", {}, config=CONFIG)
    assert "sys.data.find is not supported on modyard" in reply["error"]["message"]
    assert reply["error"]["retryable"] is False


BYSTANDER_STEP = "sign"


async def _bystander(slingr: Harness, module: str, rounds: int) -> None:
    for _ in range(rounds):
        reply = await step(slingr, module, BYSTANDER_STEP, {"text": "ok"}, config=CONFIG)
        assert reply["outputs"]["out"][0]["back"] == "ok", reply
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("spin", "err_script_timeout", "did not finish within its 1 s limit"),
        ("hog", "err_script_memory", "more than its 24 MiB of memory"),
    ],
)
async def test_a_runaway_step_is_stopped_and_nothing_else(
    slingr: Harness, name: str, code: str, words: str
) -> None:
    module = add_package(slingr, "relay")
    bystander = add_package(slingr, "relay", as_name=f"relay-bystander-{name}")
    await _bystander(slingr, bystander, 1)
    reply, _ = await asyncio.gather(
        step(slingr, module, name, {}, config=CONFIG), _bystander(slingr, bystander, 10)
    )
    assert words in reply["error"]["message"], reply
    assert (reply["error"]["kind"], reply["error"]["retryable"]) == (code, False)
    # The same package answers its next call (a fresh worker took the stopped one's place).
    after = await step(slingr, module, "sign", {"text": "again"}, config=CONFIG)
    assert after["outputs"]["out"][0]["back"] == "again"
    await _bystander(slingr, bystander, 1)


async def test_a_call_waiting_for_a_worker_past_the_limit_fails_alone(slingr: Harness) -> None:
    # One more runaway call than the package has workers: the last one waits for a worker,
    # and its limit counts from its arrival, so it never outlasts the supervisor's deadline.
    module = add_package(slingr, "relay", as_name="relay-queued")
    workers = slingr.settings.slingr_workers
    replies = await asyncio.gather(
        *(step(slingr, module, "spin", {}, config=CONFIG) for _ in range(workers + 1))
    )
    for reply in replies:
        assert (reply["error"]["kind"], reply["error"]["retryable"]) == (
            "err_script_timeout",
            False,
        ), reply
        assert "did not finish within its 1 s limit" in reply["error"]["message"], reply
    # Not the sandbox stopped by the supervisor: the same child answers the next call.
    after = await step(slingr, module, "sign", {"text": "still"}, config=CONFIG)
    assert after["outputs"]["out"][0]["back"] == "still"


async def test_a_webhook_sync_listener_answers_with_its_return_value(slingr: Harness) -> None:
    module = add_package(slingr, "relay")
    reply = await slingr.runner.handle(
        {
            "module": module,
            "version": "1.0.0",
            "component": "",
            "port": "listener",
            "payload": {"method": "POST", "path": "/ping", "data": {"message": "hi"}},
            "config": CONFIG,
        }
    )
    assert reply == {
        "outputs": {},
        "response": {"status": 200, "body": {"pong": "hi", "by": "Bearer t0ken"}},
    }
    nowhere = await slingr.runner.handle(
        {
            "module": module,
            "version": "1.0.0",
            "component": "",
            "port": "listener",
            "payload": {"method": "POST", "path": "/nowhere", "data": {}},
            "config": CONFIG,
        }
    )
    assert nowhere["error"]["status"] == 404
    assert "no webhook listener for /nowhere" in nowhere["error"]["message"]


async def test_start_and_stop_of_a_flow_run_nothing(slingr: Harness) -> None:
    module = add_package(slingr, "relay")
    for port in ("start", "stop"):
        assert await step(slingr, module, "spin", None, port=port, config=CONFIG) == {"outputs": {}}


async def test_an_appmixer_module_has_no_listeners(slingr: Harness) -> None:
    module = slingr.module({"Ok": "module.exports = { async receive(context) {} };"})
    reply = await slingr.runner.handle(
        {
            "module": module,
            "version": "1.0.0",
            "component": "",
            "port": "listener",
            "payload": {"method": "POST", "path": "/ping", "data": {}},
        }
    )
    assert reply["error"]["status"] == 404
    assert "is not a Slingr package" in reply["error"]["message"]


async def test_redirects_are_followed_unless_the_step_says_not_to(
    slingr: Harness, vendor: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = vendor
    module = add_package(slingr, "relay")
    followed = await step(slingr, module, "fetch", {"url": f"{url}/moved"}, config=CONFIG)
    assert followed["outputs"]["out"] == [
        {"status": 200, "location": None, "body": {"landed": True}}
    ]
    kept = await step(
        slingr, module, "fetch", {"url": f"{url}/moved", "follow": False}, config=CONFIG
    )
    [out] = kept["outputs"]["out"]
    assert (out["status"], out["location"]) == (302, "/landed")


@pytest.mark.parametrize("attempt", ["read", "spawn", "write"])
async def test_package_code_that_reaches_require_still_meets_the_sandbox(
    slingr: Harness, attempt: str
) -> None:
    module = add_package(slingr, "relay")
    bystander = add_package(slingr, "relay", as_name=f"relay-bystander-escape-{attempt}")
    reply, _ = await asyncio.gather(
        step(slingr, module, "escape", {"attempt": attempt}, config=CONFIG),
        _bystander(slingr, bystander, 3),
    )
    error = reply["error"]
    assert (error["kind"], error["retryable"]) == ("err_access_denied", False), error
    after = await step(slingr, module, "sign", {"text": "still"}, config=CONFIG)
    assert after["outputs"]["out"][0]["back"] == "still"
