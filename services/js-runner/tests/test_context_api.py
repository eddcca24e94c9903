"""The core of the Appmixer context API, each member used by a look-alike component."""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web
from jsrunner_env import Harness, loopback_server

ECHO = """
module.exports = {
    async receive(context) {
        const message = context.messages.in;
        await context.sendJson({
            content: message.content,
            original: message.originalContent,
            correlationId: message.correlationId,
            properties: context.properties,
            auth: context.auth,
            config: context.config,
            id: context.id,
            flowId: context.flowId,
            componentId: context.componentId,
            // The shared lib.js helpers' label lookup, as connectors write it (flows have nodes).
            label: context.componentId
                && (context.flowDescriptor[context.componentId].label || context.componentId),
            descriptor: context.flowDescriptor,
        }, 'out');
    }
};
"""

SEND_ARRAY = """
module.exports = {
    async receive(context) {
        await context.sendArray(context.messages.in.content.items, 'item');
        await context.sendJson({ count: context.messages.in.content.items.length }, 'summary');
        await context.sendJson({ again: true }, 'summary');
    }
};
"""

FAILS = """
const { util } = require('appmixer-lib');
module.exports = {
    async receive(context) {
        const how = context.messages.in.content.how;
        if (how === 'cancel') throw new context.CancelError('the user cancelled');
        if (how === 'http') throw new util.HttpError('rate limited', 429);
        if (how === 'notfound') throw new util.HttpError('no such user', 404);
        if (how === 'type') return null.boom;
        return context.sendJson({ ok: true }, 'out');
    }
};
"""

BASE_LAYER = """
const _ = require('lodash');
const moment = require('moment-timezone');
const Bluebird = require('bluebird');
const FormData = require('form-data');
const { PagingAggregator } = require('appmixer-lib').util;

const pages = [[1, 2], [3, 4], [5]];
const aggregator = new PagingAggregator(
    async (args, page) => pages[page],
    (accumulator, chunk) => accumulator.concat(chunk),
    (accumulator, chunk, page) => (page + 1 < pages.length ? page + 1 : -1),
);

module.exports = {
    async receive(context) {
        const all = await aggregator.fetch({}, 0, 2);
        const form = new FormData();
        form.append('a', 'b');
        await context.sendJson({
            chunks: _.chunk([1, 2, 3], 2),
            prague: moment.tz('2024-01-01T12:00:00Z', 'Europe/Prague').format('HH:mm'),
            bluebird: await Bluebird.resolve(7),
            form: typeof form.getBoundary(),
            all,
        }, 'out');
    }
};
"""

LOGS = """
module.exports = {
    async receive(context) {
        console.log('to the log, not to the protocol');
        process.stdout.write('raw stdout too\\n');
        context.log({ step: 'logged' });
        await context.sendJson({ ok: true }, 'out');
    }
};
"""


async def test_receive_gets_the_message_properties_and_auth_and_send_json_answers(
    harness: Harness,
) -> None:
    module = harness.module({"Echo": ECHO}, auth_service="acme:crm")
    reply = await harness.call(
        module,
        "Echo",
        {"id": 7},
        correlation_id="corr-1",
        properties={"limit": 3},
        config={"acme:crm": {"apiKey": "k-1"}, "other": {"apiKey": "nope"}},
        flow_id="flow-1",
        node_id="node-1",
        message_id="m-1",
    )
    assert reply == {
        "outputs": {
            "out": [
                {
                    "content": {"id": 7},
                    "original": {"id": 7},
                    "correlationId": "corr-1",
                    "properties": {"limit": 3},
                    "auth": {"apiKey": "k-1"},
                    # Without an account, auth is the service configuration, as config is.
                    "config": {"apiKey": "k-1"},
                    # The message's id: the same on every redelivery (Each keys state by it).
                    "id": "m-1",
                    "flowId": "flow-1",
                    "componentId": "node-1",
                    "label": "node-1",
                    "descriptor": {
                        "node-1": {
                            "type": f"{module}.Echo",
                            "label": None,
                            "config": {"properties": {"limit": 3}, "transform": {}},
                        }
                    },
                }
            ]
        }
    }


async def test_auth_is_the_whole_configuration_without_a_section_for_the_service(
    harness: Harness,
) -> None:
    module = harness.module({"Echo": ECHO}, auth_service="acme:crm")
    reply = await harness.call(module, "Echo", {}, config={"apiKey": "flat"})
    assert reply["outputs"]["out"][0]["auth"] == {"apiKey": "flat"}


async def test_send_array_sends_one_message_per_item_on_several_ports(harness: Harness) -> None:
    module = harness.module({"Split": SEND_ARRAY})
    reply = await harness.call(module, "Split", {"items": [{"n": 1}, {"n": 2}, {"n": 3}]})
    assert reply == {
        "outputs": {
            "item": [{"n": 1}, {"n": 2}, {"n": 3}],
            "summary": [{"count": 3}, {"again": True}],
        }
    }


async def test_rejections_are_classified_like_the_runtime_classifies_failures(
    harness: Harness,
) -> None:
    module = harness.module({"Fails": FAILS})
    cancel = await harness.call(module, "Fails", {"how": "cancel"})
    assert cancel["error"]["retryable"] is False
    assert cancel["error"]["message"] == "the user cancelled"
    limited = await harness.call(module, "Fails", {"how": "http"})
    assert limited["error"]["status"] == 429
    assert limited["error"]["retryable"] is True
    missing = await harness.call(module, "Fails", {"how": "notfound"})
    assert (missing["error"]["status"], missing["error"]["retryable"]) == (404, False)
    unknown = await harness.call(module, "Fails", {"how": "type"})
    assert unknown["error"]["retryable"] is True  # unknown errors are retried, as in Appmixer
    assert "null" in unknown["error"]["message"]
    assert await harness.call(module, "Fails", {"how": "fine"}) == {
        "outputs": {"out": [{"ok": True}]}
    }


async def test_the_base_layer_and_the_appmixer_lib_shim_are_there_without_declaring_them(
    harness: Harness,
) -> None:
    module = harness.module({"Base": BASE_LAYER})
    reply = await harness.call(module, "Base", {})
    assert reply == {
        "outputs": {
            "out": [
                {
                    "chunks": [[1, 2], [3]],
                    "prague": "13:00",
                    "bluebird": 7,
                    "form": "string",
                    "all": [1, 2, 3, 4, 5],
                }
            ]
        }
    }


async def test_console_output_goes_to_the_log_and_never_breaks_the_protocol(
    harness: Harness,
) -> None:
    module = harness.module({"Logs": LOGS})
    for _ in range(3):
        assert await harness.call(module, "Logs", {}) == {"outputs": {"out": [{"ok": True}]}}


HTTP_COMPONENT = """
module.exports = {
    async receive(context) {
        const { url, mode } = context.messages.in.content;
        if (mode === 'post') {
            const response = await context.httpRequest({
                url, method: 'POST', data: { name: 'Ada' }, params: { page: 2 },
                headers: { 'X-Api-Key': context.auth.apiKey },
            });
            return context.sendJson({ status: response.status, data: response.data }, 'out');
        }
        if (mode === 'get') {
            const response = await context.httpRequest.get(url);
            return context.sendJson({ status: response.status, data: response.data }, 'out');
        }
        try {
            await context.httpRequest(url);
        } catch (err) {
            // A status travels on the error, as with axios.
            return context.sendJson({ failed: err.response ? err.response.status : err.code,
                                      message: err.message }, 'out');
        }
    }
};
"""

PASS_THROUGH = """
module.exports = { async receive(context) { await context.httpRequest(context.messages.in.content.url); } };
"""


async def test_http_request_reaches_a_loopback_server_through_the_egress_policy(
    harness: Harness,
) -> None:
    seen: list[dict[str, object]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "query": dict(request.query),
                "key": request.headers.get("X-Api-Key"),
                "body": await request.json() if request.can_read_body else None,
            }
        )
        if request.path == "/missing":
            return web.json_response({"error": "no"}, status=404)
        if request.path == "/busy":
            return web.json_response({"error": "later"}, status=503)
        return web.json_response({"hello": "there"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with loopback_server(app) as base:
        module = harness.module({"Http": HTTP_COMPONENT, "Pass": PASS_THROUGH})
        posted = await harness.call(
            module, "Http", {"url": f"{base}/users", "mode": "post"}, config={"apiKey": "k"}
        )
        assert posted == {"outputs": {"out": [{"status": 200, "data": {"hello": "there"}}]}}
        assert seen[-1] == {
            "method": "POST",
            "query": {"page": "2"},
            "key": "k",
            "body": {"name": "Ada"},
        }
        got = await harness.call(module, "Http", {"url": f"{base}/x", "mode": "get"})
        assert got["outputs"]["out"][0]["data"] == {"hello": "there"}
        missing = await harness.call(module, "Http", {"url": f"{base}/missing", "mode": "err"})
        assert missing["outputs"]["out"][0]["failed"] == 404
        # Not caught by the component: the status classifies the failure.
        busy = await harness.call(module, "Pass", {"url": f"{base}/busy"})
        assert (busy["error"]["status"], busy["error"]["retryable"]) == (503, True)
        gone = await harness.call(module, "Pass", {"url": f"{base}/missing"})
        assert (gone["error"]["status"], gone["error"]["retryable"]) == (404, False)


async def test_http_request_to_the_platform_is_refused_and_not_retried(harness: Harness) -> None:
    module = harness.module({"Pass": PASS_THROUGH})
    # The database's port on loopback: loopback is allowed here, the platform never is.
    refused = await harness.call(module, "Pass", {"url": "http://127.0.0.1:5432/"})
    assert refused["error"]["retryable"] is False
    assert refused["error"]["kind"] == "egress_refused"
    metadata = await harness.call(module, "Pass", {"url": "http://169.254.169.254/latest"})
    assert metadata["error"]["retryable"] is False


async def test_calls_of_one_child_run_concurrently(harness: Harness) -> None:
    slow = """
module.exports = { async receive(context) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    await context.sendJson(context.messages.in.content, 'out');
} };
"""
    module = harness.module({"Slow": slow})
    replies = await asyncio.gather(*(harness.call(module, "Slow", {"n": n}) for n in range(20)))
    assert [reply["outputs"]["out"][0]["n"] for reply in replies] == list(range(20))


#: Bodies as connectors send them (utils.ai's transcription posts form-data with a file, others
#: post Buffers, URLSearchParams or use axios' Basic `auth`), and binary downloads (the speech
#: component reads `responseType: 'stream'` and stores it with saveFileStream).
HTTP_BODIES = """
const FormData = require('form-data');
const { Readable } = require('stream');
module.exports = { async receive(context) {
    const { url, mode } = context.messages.in.content;
    const post = (data, config) => context.httpRequest.post(url, data, config);
    if (mode === 'form') {
        const form = new FormData();
        form.append('model', 'whisper-1');
        form.append('file', Readable.from([Buffer.from([0, 1, 2, 255])]), { filename: 'a.bin', knownLength: 4 });
        return context.sendJson((await post(form, { headers: form.getHeaders() })).data, 'out');
    }
    if (mode === 'buffer') return context.sendJson((await post(Buffer.from([0, 1, 2, 255]))).data, 'out');
    if (mode === 'search') return context.sendJson((await post(new URLSearchParams({ a: '1', b: 'x y' }))).data, 'out');
    if (mode === 'basic') {
        const config = { auth: { username: 'ann', password: 'pä:ss' }, headers: { Authorization: 'nope' } };
        return context.sendJson((await context.httpRequest.get(url, config)).data, 'out');
    }
    const got = {};
    for (const responseType of ['arraybuffer', 'stream', 'text']) {
        const { data } = await context.httpRequest({ url, responseType });
        const bytes = Buffer.isBuffer(data) ? data : typeof data === 'string' ? null : Buffer.concat(await data.toArray());
        got[responseType] = { buffer: Buffer.isBuffer(data), stream: typeof data.pipe === 'function', bytes: bytes && [...bytes] };
    }
    return context.sendJson(got, 'out');
} };
"""


async def test_http_request_sends_binary_form_and_basic_bodies_and_reads_bytes_intact(
    harness: Harness,
) -> None:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/bin":
            return web.Response(body=bytes([0, 1, 2, 200, 255]), content_type="audio/mpeg")
        seen: dict[str, object] = {
            "type": request.headers.get("Content-Type", "").split(";")[0],
            "auth": request.headers.get("Authorization"),
        }
        if request.path == "/form":
            form = await request.post()
            upload = form["file"]
            assert isinstance(upload, web.FileField)
            seen["fields"] = {"model": form["model"], "file": list(upload.file.read())}
            seen["filename"] = upload.filename
        else:
            seen["body"] = list(await request.read())
        return web.json_response(seen)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with loopback_server(app) as base:
        module = harness.module({"Bodies": HTTP_BODIES})

        async def sent(mode: str, path: str) -> dict[str, object]:
            reply = await harness.call(module, "Bodies", {"url": f"{base}{path}", "mode": mode})
            assert "outputs" in reply, reply
            answer: dict[str, object] = reply["outputs"]["out"][0]
            return answer

        assert await sent("form", "/form") == {
            "type": "multipart/form-data",
            "auth": None,
            "fields": {"model": "whisper-1", "file": [0, 1, 2, 255]},
            "filename": "a.bin",
        }
        assert await sent("buffer", "/b") == {
            "type": "application/octet-stream",
            "auth": None,
            "body": [0, 1, 2, 255],
        }
        assert await sent("search", "/s") == {
            "type": "application/x-www-form-urlencoded",
            "auth": None,
            "body": list(b"a=1&b=x+y"),
        }
        basic = await sent("basic", "/a")
        assert basic["auth"] == "Basic " + base64.b64encode("ann:pä:ss".encode()).decode()
        assert await sent("bin", "/bin") == {
            "arraybuffer": {"buffer": True, "stream": False, "bytes": [0, 1, 2, 200, 255]},
            "stream": {"buffer": False, "stream": True, "bytes": [0, 1, 2, 200, 255]},
            "text": {"buffer": False, "stream": False, "bytes": None},
        }
