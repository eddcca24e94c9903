"""npm SDKs through HTTP(S)_PROXY, per-workspace egress allow-lists, webhook components and the
start/stop lifecycle, each used by a look-alike component (written here, not copied).

The SDK is the real axios, installed from the npm registry during the first session into the
shared test cache (then reused): it reads HTTP_PROXY as any SDK does, and the request leaves the
child's network namespace only through the runner's egress proxy.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from jsrunner_env import SHARED_CACHE, Harness, loopback_server

from modyard.jsrunner.npm import install

AXIOS_VERSION = "1.7.9"


@pytest.fixture(scope="module")
async def axios_dir(harness: Harness) -> Path:
    """A ``node_modules`` with axios, installed once per cache by npm (the runner's own npm)."""
    target = SHARED_CACHE / f"fixture-axios-{AXIOS_VERSION}"
    if not (target / "node_modules" / "axios" / "package.json").exists():
        staging = SHARED_CACHE / f"fixture-axios-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        package = {"name": "fixture", "version": "1.0.0", "dependencies": {"axios": AXIOS_VERSION}}
        (staging / "package.json").write_text(json.dumps(package))
        await install(staging, harness.settings, shown_as="axios fixture")
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another session won the race
    return target / "node_modules"


@pytest.fixture
async def vendor() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A loopback stand-in for a vendor's API; records what reached it."""
    seen: list[web.Request] = []

    async def users(request: web.Request) -> web.Response:
        seen.append(request)
        body = await request.text()
        return web.json_response(
            {"path": request.path, "query": dict(request.query), "body": body},
            headers={"x-vendor": "acme"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", users)
    async with loopback_server(app) as url:
        yield url, seen


AXIOS_GET = """
const axios = require('axios');
module.exports = {
    async receive(context) {
        const { url, method, data } = context.messages.in.content;
        try {
            const res = await axios({ url, method: method || 'get', data });
            await context.sendJson({ status: res.status, data: res.data, vendor: res.headers['x-vendor'] });
        } catch (err) {
            await context.sendJson({
                failed: true,
                status: err.response ? err.response.status : null,
                rule: err.response ? err.response.headers['x-modyard-egress-rule'] : null,
                code: err.code || null,
            });
        }
    }
};
"""

# What https-proxy-agent (googleapis, gaxios) and request do for an https URL: CONNECT, then
# talk through the tunnel (plain HTTP here: the loopback vendor has no certificate).
CONNECT = """
const http = require('http');
module.exports = {
    async receive(context) {
        const { host, port } = context.messages.in.content;
        const proxy = new URL(process.env.HTTPS_PROXY);
        const result = await new Promise((resolve) => {
            const req = http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: `${host}:${port}` });
            req.on('connect', (res, socket) => {
                if (res.statusCode !== 200) {
                    resolve({ status: res.statusCode, rule: res.headers['x-modyard-egress-rule'] });
                    socket.destroy();
                    return;
                }
                let text = '';
                socket.on('data', (chunk) => { text += chunk; });
                socket.on('end', () => resolve({ status: 200, answer: text.split('\\r\\n\\r\\n')[1] }));
                socket.write(`GET /tunnelled HTTP/1.1\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n`);
            });
            req.on('error', (err) => resolve({ error: err.code }));
            req.end();
        });
        await context.sendJson(result);
    }
};
"""

HTTP_REQUEST = """
module.exports = {
    async receive(context) {
        try {
            const res = await context.httpRequest({ url: context.messages.in.content.url, timeout: 300 });
            await context.sendJson({ status: res.status });
        } catch (err) {
            await context.sendJson({ failed: true, code: err.code, message: err.message });
        }
    }
};
"""

WEBHOOK = """
module.exports = {
    async receive(context) {
        const request = context.messages.webhook.content;
        await context.sendJson({ got: request.data, query: request.query, url: context.getWebhookUrl() }, 'out');
        await context.response({ ok: true, echo: request.data.id }, 201, { 'X-Acme': 'yes' });
    }
};
"""

LIFECYCLE = """
module.exports = {
    async start(context) {
        if (context.properties.failStart) {
            throw new Error('the vendor refused the webhook registration: bad token');
        }
        await context.httpRequest.post(context.properties.vendor + '/hooks', { url: context.getWebhookUrl() });
    },
    async stop(context) {
        await context.httpRequest.delete(context.properties.vendor + '/hooks/1');
    },
    async receive(context) {
        await context.sendJson({ ok: true });
    }
};
"""

NO_LIFECYCLE = """
module.exports = { async receive(context) { await context.sendJson({ ok: true }); } };
"""


def _with_axios(harness: Harness, source: str, axios: Path) -> str:
    name = harness.module({"Sdk": source})
    # The SDK as a module's own dependency (what the runner's npm install leaves in place).
    # (a copy: the sandbox reads only the module's own tree, a symlink out of it is refused).
    shutil.copytree(axios, harness.root / name / "node_modules")
    return name


async def test_axios_reaches_a_loopback_api_through_the_egress_proxy(
    harness: Harness, axios_dir: Path, vendor: tuple[str, list[web.Request]]
) -> None:
    base, seen = vendor
    module = _with_axios(harness, AXIOS_GET, axios_dir)
    got = await harness.call(module, "Sdk", {"url": f"{base}/users?id=7"})
    assert got["outputs"]["out"] == [
        {
            "status": 200,
            "data": {"path": "/users", "query": {"id": "7"}, "body": ""},
            "vendor": "acme",
        }
    ]
    posted = await harness.call(
        module, "Sdk", {"url": f"{base}/users", "method": "post", "data": {"a": 1}}
    )
    assert posted["outputs"]["out"][0]["data"]["body"] == '{"a":1}'
    assert [request.method for request in seen] == ["GET", "POST"]


async def test_an_sdk_to_a_platform_port_is_answered_403_with_the_rule(
    harness: Harness, axios_dir: Path
) -> None:
    module = _with_axios(harness, AXIOS_GET, axios_dir)
    # The database's port on loopback: loopback is allowed in tests, the platform never is.
    got = await harness.call(module, "Sdk", {"url": "http://127.0.0.1:5432/"})
    assert got["outputs"]["out"] == [
        {"failed": True, "status": 403, "rule": "platform-endpoint", "code": "ERR_BAD_REQUEST"}
    ]


async def test_connect_tunnels_are_checked_then_spliced(
    harness: Harness, vendor: tuple[str, list[web.Request]]
) -> None:
    base, seen = vendor
    port = int(base.rsplit(":", 1)[1])
    module = harness.module({"Tunnel": CONNECT})
    got = await harness.call(module, "Tunnel", {"host": "127.0.0.1", "port": port})
    assert got["outputs"]["out"][0]["status"] == 200
    assert '"path": "/tunnelled"' in got["outputs"]["out"][0]["answer"]
    assert [request.path for request in seen] == ["/tunnelled"]
    refused = await harness.call(module, "Tunnel", {"host": "127.0.0.1", "port": 5432})
    assert refused["outputs"]["out"] == [{"status": 403, "rule": "platform-endpoint"}]


async def test_a_workspace_allow_list_opens_only_its_own_calls(harness: Harness) -> None:
    """192.0.2.0/24 (TEST-NET-1, never routed) is refused by the deployment's policy: the
    workspace that allows it gets past the policy (then no host answers), the other is refused
    before anything is sent, through the same child."""
    module = harness.module({"Call": HTTP_REQUEST})
    target = {"url": "http://192.0.2.1:9/"}
    refused, allowed = await asyncio.gather(
        harness.call(module, "Call", target, workspace="ws-b"),
        harness.call(
            module,
            "Call",
            target,
            workspace="ws-a",
            egress={"cidrs": ["192.0.2.0/24"], "hosts": []},
        ),
    )
    assert refused["outputs"]["out"][0]["code"] == "EGRESS_REFUSED"
    assert "192.0.2.1" in refused["outputs"]["out"][0]["message"]
    assert allowed["outputs"]["out"][0]["failed"] is True
    assert allowed["outputs"]["out"][0]["code"] != "EGRESS_REFUSED"
    again = await harness.call(module, "Call", target, workspace="ws-b")
    assert again["outputs"]["out"][0]["code"] == "EGRESS_REFUSED"


async def test_the_sdk_proxy_applies_the_calling_workspace_list(
    harness: Harness, axios_dir: Path
) -> None:
    module = _with_axios(
        harness, AXIOS_GET.replace("method: method || 'get',", "timeout: 300,"), axios_dir
    )
    target = {"url": "http://192.0.2.1:9/"}
    refused = await harness.call(module, "Sdk", target, workspace="ws-b")
    assert refused["outputs"]["out"][0]["status"] == 403
    assert refused["outputs"]["out"][0]["rule"] == "non-global"
    allowed = await harness.call(
        module, "Sdk", target, workspace="ws-a", egress={"cidrs": ["192.0.2.0/24"]}
    )
    # Past the policy: no host answers there (502/504 from the proxy, or axios's timeout).
    assert allowed["outputs"]["out"][0].get("rule") is None
    assert allowed["outputs"]["out"][0]["status"] in (502, 504, None)


async def test_a_webhook_component_answers_its_caller_with_response(harness: Harness) -> None:
    module = harness.module({"Hook": WEBHOOK})
    url = "http://127.0.0.1:8003/v1/hooks/ws-a/f1/n1"
    got = await harness.call(
        module,
        "Hook",
        {"method": "POST", "headers": {}, "query": {"a": "1"}, "data": {"id": 7}},
        port="webhook",
        webhook_url=url,
    )
    assert got["outputs"] == {"out": [{"got": {"id": 7}, "query": {"a": "1"}, "url": url}]}
    assert got["response"] == {
        "body": {"ok": True, "echo": 7},
        "status": 201,
        "headers": {"X-Acme": "yes"},
    }


async def test_start_and_stop_run_with_the_webhook_url(
    harness: Harness, vendor: tuple[str, list[web.Request]]
) -> None:
    base, seen = vendor
    module = harness.module({"Hooked": LIFECYCLE, "Plain": NO_LIFECYCLE})
    url = "http://127.0.0.1:8003/v1/hooks/ws-a/f1/n1"
    started = await harness.call(
        module, "Hooked", None, port="start", webhook_url=url, properties={"vendor": base}
    )
    assert started == {"outputs": {}}
    stopped = await harness.call(module, "Hooked", None, port="stop", properties={"vendor": base})
    assert stopped == {"outputs": {}}
    assert [(r.method, r.path) for r in seen] == [("POST", "/hooks"), ("DELETE", "/hooks/1")]
    failed = await harness.call(
        module, "Hooked", None, port="start", properties={"vendor": base, "failStart": True}
    )
    assert failed["error"]["message"] == "the vendor refused the webhook registration: bad token"
    # A component without start/stop has nothing to do then.
    assert await harness.call(module, "Plain", None, port="start") == {"outputs": {}}
    assert len(seen) == 2


LIST_SOCKETS = """
module.exports = { async receive(context) {
    await context.sendJson(require('fs').readdirSync(context.messages.in.content.dir), 'out');
} };
"""


async def test_a_child_cannot_find_another_childs_proxy_socket(harness: Harness) -> None:
    """Proxy sockets have unguessable names in a directory children cannot list: a module
    cannot borrow another module's proxy (and the workspace allow-list of its calls)."""
    bystander = harness.module({"Call": HTTP_REQUEST})
    await harness.call(bystander, "Call", {"url": "http://127.0.0.1:9/"})  # its child runs
    sockets = list(harness.settings.run_path.glob("*/p.sock"))
    assert sockets
    assert all(len(path.parent.name) == 32 for path in sockets)
    module = harness.module({"List": LIST_SOCKETS})
    refused = await harness.call(module, "List", {"dir": str(harness.settings.run_path)})
    assert refused["error"]["retryable"] is False
    assert "Access to this API has been restricted" in refused["error"]["message"]


# A streamed body (no length: chunked), as SDK uploads send it, through HTTP_PROXY.
STREAMED = """
const http = require('http');
module.exports = { async receive(context) {
    const proxy = new URL(process.env.HTTP_PROXY);
    const target = context.messages.in.content.url;
    const answer = await new Promise((resolve, reject) => {
        const req = http.request({ host: proxy.hostname, port: proxy.port, method: 'POST', path: target,
            headers: { host: new URL(target).host, 'content-type': 'text/plain' } }, (res) => {
            let text = '';
            res.on('data', (chunk) => { text += chunk; });
            res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text).body }));
        });
        req.on('error', reject);
        req.write('part one, ');
        req.write('part two');
        req.end();
    });
    await context.sendJson(answer);
} };
"""


async def test_a_streamed_body_goes_through_the_proxy_whole(
    harness: Harness, vendor: tuple[str, list[web.Request]]
) -> None:
    base, seen = vendor
    module = harness.module({"Stream": STREAMED})
    got = await harness.call(module, "Stream", {"url": f"{base}/upload"})
    assert got["outputs"]["out"] == [{"status": 200, "body": "part one, part two"}]
    assert [request.path for request in seen] == ["/upload"]
