"""auth.js calls (accounts): a look-alike apiKey auth.js whose ``validate`` asks a loopback
vendor, run in the real sandbox under the egress policy."""

from __future__ import annotations

from aiohttp import web
from jsrunner_env import Harness, loopback_server

from modyard.jsrunner.accounts import auth_calls
from modyard.testing.accounts import API_KEY_AUTH_JS

GOOD_KEY = "key-good-0001"

ECHO = "module.exports = { receive: async (context) => context.sendJson(context.auth) };"


def vendor() -> web.Application:
    async def me(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {GOOD_KEY}":
            return web.json_response(
                {"message": "Invalid API key: check Settings > API"}, status=401
            )
        return web.json_response({"user": {"email": "ann@vendor.test"}})

    app = web.Application()
    app.router.add_get("/me", me)
    return app


def call(module: str, method: str, **context: str) -> auth_calls.AuthCall:
    return auth_calls.AuthCall(
        module=module,
        version="1.0.0",
        path="auth.js",
        method=method,
        context=context,  # type: ignore[arg-type]
    )


async def test_describe_gives_the_form_and_connect_validates_against_the_vendor(
    harness: Harness,
) -> None:
    module = harness.module({"Echo": ECHO}, files={"auth.js": API_KEY_AUTH_JS})
    described = await auth_calls.run(harness.runner, call(module, "describe"))
    assert described.ok, described
    assert described.result is not None
    assert described.result["type"] == "apiKey"
    assert list(described.result["fields"]) == ["apiKey", "baseUrl"]
    assert described.result["fields"]["apiKey"]["name"] == "API Key"
    assert described.result["accountNameFromProfileInfo"] == "user.email"

    async with loopback_server(vendor()) as base:
        valid = await auth_calls.run(
            harness.runner, call(module, "connect", apiKey=GOOD_KEY, baseUrl=base)
        )
        assert valid.ok, valid
        assert valid.result == {"name": "ann@vendor.test"}

        invalid = await auth_calls.run(
            harness.runner, call(module, "connect", apiKey="key-wrong", baseUrl=base)
        )
        assert not invalid.ok
        # The vendor's own message, not axios's "Request failed with status code 401".
        assert invalid.message == "Invalid API key: check Settings > API"
        assert invalid.status == 401


async def test_a_path_outside_the_module_or_an_unknown_member_is_refused(
    harness: Harness,
) -> None:
    module = harness.module({"Echo": ECHO}, files={"auth.js": API_KEY_AUTH_JS})
    outside = call(module, "describe")
    outside.path = "../auth.js"
    answer = await auth_calls.run(harness.runner, outside)
    assert not answer.ok
    assert "has no ../auth.js" in (answer.message or "")
    member = call(module, "call")
    member.member = "constructor"
    answer = await auth_calls.run(harness.runner, member)
    assert not answer.ok
    assert "not callable" in (answer.message or "")
