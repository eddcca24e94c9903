"""Shapes of Slingr's official packages on the runner (look-alike ``fixtures/slingr/stack``,
written for these tests): ``configurationBuilder`` as a file path, ``label`` fields read through
``config.get``, the http service's ``authorization`` types (oauth2, digest; others refused by
name), its shortcut forms and top-level options, and the webhook event of Slingr's http service."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from jsrunner_env import Harness, loopback_server, runner_settings, running_harness
from slingr_env import add_package, step

CONFIG = {"clientId": "cid-1", "apiKey": "k3y-us6"}
DIGEST_USER, DIGEST_PASSWORD, REALM, NONCE = "ann", "s3cret", "stack", "n0nce"


@pytest.fixture(scope="module")
async def slingr(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = runner_settings(slingr_timeout_seconds=3, slingr_heap_mb=32)
    async with running_harness(settings, tmp_path_factory.mktemp("slingr-packages")) as harness:
        yield harness


def _digest_ok(header: str, method: str) -> bool:
    """The server side of RFC 7616 (MD5, qop auth), written for this test."""
    values = {
        name: quoted or bare
        for name, quoted, bare in re.findall(
            r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header.removeprefix("Digest ")
        )
    }
    if values.get("username") != DIGEST_USER or values.get("nonce") != NONCE:
        return False

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the digest scheme's own

    ha1 = md5(f"{DIGEST_USER}:{REALM}:{DIGEST_PASSWORD}")
    ha2 = md5(f"{method}:{values['uri']}")
    expected = md5(f"{ha1}:{NONCE}:{values['nc']}:{values['cnonce']}:auth:{ha2}")
    return values.get("response") == expected


@pytest.fixture(scope="module")
async def vendor() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "auth": request.headers.get("Authorization"),
                "body": body,
            }
        )
        return web.json_response({"method": request.method, "body": body}, status=200)

    async def guarded(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        seen.append({"method": request.method, "path": request.path_qs, "auth": header})
        if header.startswith("Digest ") and _digest_ok(header, request.method):
            return web.json_response({"in": True, "q": request.query.get("q")})
        return web.Response(
            status=401,
            headers={"WWW-Authenticate": f'Digest realm="{REALM}", nonce="{NONCE}", qop="auth"'},
        )

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/guarded", guarded)
    app.router.add_get("/moved", moved)
    async with loopback_server(app) as url:
        yield url, seen


# --- configurationBuilder ------------------------------------------------------------------------


async def test_a_configuration_builder_file_builds_the_configuration(slingr: Harness) -> None:
    # package.json: "configurationBuilder": "/configurationBuilder.js", a file declaring
    # `let configurationBuilder = function (config) {…}` (github, google-workspace, skeleton).
    module = add_package(slingr, "stack")
    reply = await step(slingr, module, "whoami", {}, config=CONFIG)
    assert reply["outputs"]["out"] == [{"oauth": {"clientId": "cid-1", "scope": "read write"}}]


# --- label fields -------------------------------------------------------------------------------


async def test_label_fields_are_read_at_run_time(slingr: Harness) -> None:
    module = add_package(slingr, "stack")
    reply = await step(slingr, module, "labels", {}, config=CONFIG)
    [out] = reply["outputs"]["out"]
    assert out["base"] == "https://api.stack.example/v2"  # a literal value
    assert out["dataCenter"] == "https://us6.stack.example"  # an expression over the settings
    assert out["copy"] == "cid-1"  # @config.<another setting>
    # @config.WEBHOOK_URL: the installation's listener address, unknown to the runner alone.
    assert out["hook"] is None
    assert "STACK_API_BASE_URL" in out["all"]


# --- authorization -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "header"),
    [
        ({"type": "oauth2", "accessToken": "t0k", "headerPrefix": "Bearer"}, "Bearer t0k"),
        ({"type": "oauth2", "accessToken": "t0k", "headerPrefix": "token"}, "token t0k"),
        ({"type": "oauth2", "accessToken": "t0k"}, "Bearer t0k"),
        ({"type": "basic", "username": "ann", "password": "pw"}, "Basic YW5uOnB3"),
    ],
)
async def test_an_authorization_object_sends_its_header(
    slingr: Harness,
    vendor: tuple[str, list[dict[str, Any]]],
    authorization: dict[str, Any],
    header: str,
) -> None:
    url, seen = vendor
    module = add_package(slingr, "stack")
    reply = await step(
        slingr,
        module,
        "vendorCall",
        {"url": f"{url}/echo", "authorization": authorization},
        config=CONFIG,
    )
    assert reply["outputs"]["out"] == [{"method": "GET", "body": ""}], reply
    assert seen[-1]["auth"] == header


async def test_a_digest_authorization_answers_the_server_s_challenge(
    slingr: Harness, vendor: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = vendor
    module = add_package(slingr, "stack")
    before = len(seen)
    reply = await step(
        slingr,
        module,
        "vendorCall",
        {
            "url": f"{url}/guarded",
            "authorization": {"type": "digest", "username": DIGEST_USER, "password": "s3cret"},
            "extra": {"params": {"q": "a b"}},
        },
        config=CONFIG,
    )
    assert reply["outputs"]["out"] == [{"in": True, "q": "a b"}], reply
    assert [entry["auth"][:7] for entry in seen[before:]] == ["", "Digest "]


@pytest.mark.parametrize("kind", ["oauth", "awsSignature", "bearer"])
async def test_an_authorization_type_modyard_does_not_send_is_refused_by_name(
    slingr: Harness, vendor: tuple[str, list[dict[str, Any]]], kind: str
) -> None:
    url, seen = vendor
    module = add_package(slingr, "stack")
    before = len(seen)
    reply = await step(
        slingr,
        module,
        "vendorCall",
        {"url": f"{url}/echo", "authorization": {"type": kind, "token": "x"}},
        config=CONFIG,
    )
    assert f"authorization type '{kind}' is not supported on modyard" in reply["error"]["message"]
    assert reply["error"]["retryable"] is False
    assert len(seen) == before  # nothing went out without its credentials


async def test_an_oauth2_authorization_without_a_token_is_refused(
    slingr: Harness, vendor: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = vendor
    module = add_package(slingr, "stack")
    reply = await step(
        slingr,
        module,
        "vendorCall",
        {"url": f"{url}/echo", "authorization": {"type": "oauth2", "headerPrefix": "Bearer"}},
        config=CONFIG,
    )
    assert "authorization oauth2 has no accessToken" in reply["error"]["message"]


# --- shortcuts and top-level options -------------------------------------------------------------


async def test_a_string_is_a_path_on_the_base_url_and_the_second_argument_the_body(
    slingr: Harness, vendor: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = vendor
    module = add_package(slingr, "stack")
    config = {**CONFIG, "baseUrl": url}
    posted = await step(slingr, module, "shortcut", {"which": "post"}, config=config)
    [out] = posted["outputs"]["out"]
    assert (out["method"], json.loads(out["body"])) == ("POST", {"name": "test1"}), posted
    got = await step(slingr, module, "shortcut", {"which": "get"}, config=config)
    assert got["outputs"]["out"] == [{"method": "GET", "body": ""}], got
    assert seen[-1]["path"] == "/echo?page=2"


async def test_options_are_read_from_settings_then_the_top_level(
    slingr: Harness, vendor: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = vendor
    module = add_package(slingr, "stack")
    full = await step(slingr, module, "shortcut", {"which": "full", "base": url}, config=CONFIG)
    [out] = full["outputs"]["out"]
    assert (out["status"], out["body"]) == (200, {"method": "GET", "body": ""}), out
    # settings win over the top level.
    settings_first = await step(
        slingr, module, "shortcut", {"which": "settingsFirst", "base": url}, config=CONFIG
    )
    assert settings_first["outputs"]["out"] == [{"method": "GET", "body": ""}]
    kept = await step(
        slingr, module, "shortcut", {"which": "noRedirect", "base": url}, config=CONFIG
    )
    [out] = kept["outputs"]["out"]
    assert (out["status"], out["headers"]["location"]) == (302, "/echo"), out


@pytest.mark.parametrize(
    ("which", "words"),
    [
        ("post", "the path '/echo' needs a base URL"),
        ("bad", "'ftp://files.example/x' is not an http(s) URL"),
        ("number", "42 is neither options"),
    ],
)
async def test_a_request_that_cannot_go_out_is_refused_naming_the_value(
    slingr: Harness, which: str, words: str
) -> None:
    module = add_package(slingr, "stack")
    reply = await step(slingr, module, "shortcut", {"which": which}, config=CONFIG)
    assert words in reply["error"]["message"], reply
    assert reply["error"]["retryable"] is False


# --- webhooks ------------------------------------------------------------------------------------


async def test_a_webhook_listener_gets_slingr_s_event_data(slingr: Harness) -> None:
    module = add_package(slingr, "stack")
    reply = await slingr.runner.handle(
        {
            "module": module,
            "version": "1.0.0",
            "component": "",
            "port": "listener",
            "payload": {
                "method": "POST",
                "path": "/stack",
                "data": {"id": 7},
                "headers": {"X-Stack-Event": "push"},
                "query": {"page": "3"},
            },
            "config": CONFIG,
        }
    )
    assert reply["response"] == {
        "status": 200,
        "body": {
            "type": "webhook",
            "id": 7,
            "kind": "push",
            "page": "3",
            "method": "POST",
            "url": "/stack?page=3",
        },
    }, reply
