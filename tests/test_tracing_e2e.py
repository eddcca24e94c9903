"""One webhook, one trace: the five services, a module worker and a cell as processes of their
own, each exporting its spans over OTLP/HTTP (the standard ``OTEL_*`` variables) to a sink in the
test. The flow is webhook → module worker (failing once, so its node goes through a delay tier) →
``core.http`` to the gateway's action call → the cell → ``core.log``; the test asserts that every
process's spans belong to the webhook's trace, with the expected parents."""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modyard.runtime.webhooks.payloads import COMPONENT_ERROR
from modyard.testing.cells import install_cell
from modyard.testing.cluster import Cluster, running_cluster
from modyard.testing.infra import IsolatedInfra
from modyard.testing.otlp import OtlpSink, ReceivedSpan
from modyard.testing.polling import eventually
from modyard.testing.runtime_webhooks import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the example cell lives in examples/

from examples.resellerclub_cell.module_archive import module_zip as cell_zip  # noqa: E402

pytestmark = pytest.mark.infra

WS = "traced"
CELL_CONFIG = {"userid": "reseller", "password": "secret", "TestMode": "1"}


def module_zip() -> bytes:
    document = {
        "name": "trace-mod",
        "version": "1.0.0",
        "kind": "connector",
        "components": [
            {
                "name": "Echo",
                "role": "action",
                "executor": {"type": "amqp"},
                "out_ports": [{"name": "out"}],
            }
        ],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("modyard.yaml", yaml.safe_dump(document))
    return buffer.getvalue()


#: What ``modyard cell run TARGET --credentials FILE`` does, without the CLI around it.
_SERVE = """
import asyncio, json, sys
from modyard.common.logging import configure_logging
from modyard.sdk.cell.runner import load_target, serve
from modyard.cell.worker import WorkerOptions
configure_logging(service="worker", level="INFO", json=True)
issued = json.load(open(sys.argv[2]))
options = WorkerOptions(amqp_url=issued["amqp_url"], queue=issued["queue"])
asyncio.run(serve(load_target(sys.argv[1]), options))
"""


def worker_command(target: str, credentials: Path) -> list[str]:
    return [sys.executable, "-c", _SERVE, target, str(credentials)]


@asynccontextmanager
async def worker_process(
    target: str, credentials: dict[str, Any], directory: Path, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``modyard cell run <target>`` (tests/<module>.py) as a process, until it consumes."""
    credentials_file = directory / f"{target.replace(':', '-')}.json"
    credentials_file.write_text(json.dumps(credentials))
    log_file = directory / f"{target.replace(':', '-')}.log"
    with log_file.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *worker_command(target, credentials_file),
            cwd=TESTS,
            env={**os.environ, "MODYARD_LOG_LEVEL": "INFO", **env},
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await eventually(
            lambda: "worker_started" in log_file.read_text() or process.returncode is not None,
            timeout=60,
        )
        assert "worker_started" in log_file.read_text(), log_file.read_text()
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


class Traced:
    def __init__(
        self, cluster: Cluster, sink: OtlpSink, flow_id: str, receiver: WebhookReceiver
    ) -> None:
        self.cluster = cluster
        self.sink = sink
        self.flow_id = flow_id
        self.receiver = receiver


@pytest.fixture(scope="module")
async def traced(
    infra: IsolatedInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Traced]:
    sink = OtlpSink()
    await sink.start()
    receiver = WebhookReceiver()
    await receiver.start()
    directory = tmp_path_factory.mktemp("traced")
    suffix = f"traced_{uuid.uuid4().hex[:6]}"
    overrides = {
        "runtime": {
            # core.http calls the gateway on loopback; the gateway is named elsewhere to the
            # runtime so that its egress policy does not refuse the platform's own service.
            "MODYARD_EGRESS_ALLOW_LOOPBACK": "true",
            "MODYARD_GATEWAY_URL": "http://127.0.0.1:9",
            "MODYARD_RUNTIME_COMPONENT_TIMEOUT_SECONDS": "10",
            "MODYARD_RUNTIME_WEBHOOK_POLL_INTERVAL_SECONDS": "0.2",
        }
    }
    try:
        async with running_cluster(
            {**infra.env(), **sink.env(), "MODYARD_STATE_GAUGES_INTERVAL_SECONDS": "0.5"},
            schema_suffix=suffix,
            overrides=overrides,
        ) as cluster:
            async with httpx.AsyncClient(headers=cluster.operator, timeout=30) as client:
                cell = await install_cell(
                    client,
                    registry=cluster.url("registry"),
                    installer=cluster.url("installer"),
                    gateway=cluster.url("appcell-gateway"),
                    archive=cell_zip(),
                    workspace=WS,
                    slug="rc",
                    config=CELL_CONFIG,
                )
                published = await client.post(
                    f"{cluster.url('registry')}/v1/modules",
                    content=module_zip(),
                    headers={"content-type": "application/zip"},
                )
                assert published.status_code == 201, published.text
                installer = cluster.url("installer")
                installed = await client.post(
                    f"{installer}/v1/workspaces/{WS}/installations",
                    json={"module": "trace-mod", "slug": "tm"},
                )
                assert installed.status_code == 201, installed.text
                granted = await client.post(
                    f"{installer}/v1/workspaces/{WS}/installations/tm/acl/grant-users"
                )
                assert granted.status_code == 201, granted.text
                runtime = cluster.url("runtime")
                issued: dict[str, Any] = {}

                async def credentials() -> bool:
                    response = await client.post(
                        f"{runtime}/v1/workspaces/{WS}/installations/tm/worker-credentials"
                    )
                    issued.update(response.json() if response.status_code == 201 else {})
                    return response.status_code == 201

                await eventually(credentials, timeout=30)
                flow_id = await make_flow(client, cluster)
                subscribed = await client.post(
                    f"{runtime}/v1/system-webhooks",
                    json={
                        "url": receiver.url,
                        "events": [COMPONENT_ERROR],
                        "secret": "a-webhook-secret-of-some-length",
                    },
                )
                assert subscribed.status_code == 201, subscribed.text
            async with (
                worker_process("trace_workers:worker", issued, directory, sink.env()),
                worker_process("fault_cells:echo", cell.credentials, directory, sink.env()),
            ):
                yield Traced(cluster, sink, flow_id, receiver)
    finally:
        await receiver.close()
        await sink.close()


async def make_flow(client: httpx.AsyncClient, cluster: Cluster) -> str:
    runtime = cluster.url("runtime")
    token = cluster.operator["Authorization"]
    action = (
        f"{cluster.url('appcell-gateway')}/v1/cells/{WS}:rc/plugins/NewResellerClub/actions/fetch"
    )
    definition = {
        "nodes": {
            "hook": {"component": "core.webhook"},
            "mod": {"component": "tm.Echo"},
            "cell": {
                "component": "core.http",
                "properties": {
                    "method": "POST",
                    "url": action,
                    "headers": {"authorization": token},
                    "body": {"payload": {"domain": "traced.example"}},
                    "expect_json": True,
                },
            },
            "sink": {"component": "core.log"},
        },
        "connections": [
            {"from": "hook", "to": "mod"},
            {"from": "mod", "to": "cell"},
            {"from": "cell", "to": "sink"},
        ],
        "retry_policy": {"base_delay_seconds": 1, "multiplier": 1, "max_attempts": 5},
    }
    created = await client.post(
        f"{runtime}/v1/workspaces/{WS}/flows", json={"name": "traced", "definition": definition}
    )
    assert created.status_code == 201, created.text
    flow_id = str(created.json()["id"])

    async def started() -> bool:
        response = await client.post(f"{runtime}/v1/workspaces/{WS}/flows/{flow_id}/start")
        return response.status_code == 200

    await eventually(started, timeout=30)
    return flow_id


def only(spans: list[ReceivedSpan], **where: Any) -> list[ReceivedSpan]:
    def matches(span: ReceivedSpan) -> bool:
        for key, value in where.items():
            if key in ("service", "kind", "name"):
                if getattr(span, key) != value:
                    return False
            elif span.attributes.get(key.replace("__", ".")) != value:
                return False
        return True

    return [span for span in spans if matches(span)]


def describe(spans: list[ReceivedSpan]) -> str:
    """The trace as an indented tree, for a failure's message."""
    children = OtlpSink.children(spans)
    ids = {span.span_id for span in spans}
    lines: list[str] = []

    def walk(span: ReceivedSpan, depth: int) -> None:
        interesting = {k: v for k, v in span.attributes.items() if k.startswith("modyard")}
        lines.append(f"{'  ' * depth}{span.service} {span.kind} {span.name} {interesting}")
        for child in children.get(span.span_id, []):
            walk(child, depth + 1)

    for span in spans:
        if span.parent_id not in ids:
            walk(span, 0)
    return "\n".join(lines)


def node_spans(spans: list[ReceivedSpan], node: str) -> list[ReceivedSpan]:
    return [
        span
        for span in spans
        if span.service == "modyard-runtime"
        # A node run from a delivery (CONSUMER), or chained in process after its parent node.
        and (span.kind == "CONSUMER" or span.attributes.get("modyard.chained") is True)
        and span.attributes.get("modyard.node.id") == node
    ]


async def test_one_webhook_is_one_trace_across_runtime_module_worker_gateway_and_cell(
    traced: Traced,
) -> None:
    runtime = traced.cluster.url("runtime")
    async with httpx.AsyncClient(timeout=30) as client:
        sent = await client.post(
            f"{runtime}/v1/hooks/{WS}/{traced.flow_id}/hook", json={"fail_once": True}
        )
    assert sent.status_code == 202, sent.text
    sink = traced.sink

    def root() -> ReceivedSpan | None:
        for span in sink.spans:
            if (
                span.service == "modyard-runtime"
                and span.kind == "SERVER"
                and str(span.attributes.get("url.path", "")).startswith("/v1/hooks/")
            ):
                return span
        return None

    try:
        await eventually(lambda: root() is not None, timeout=30)
    except AssertionError:
        seen = sorted(
            {
                (s.service, s.kind, s.name, str(s.attributes))
                for s in sink.spans
                if "runtime" in s.service
            }
        )
        raise AssertionError(f"no webhook span among {seen}") from None
    hook = root()
    assert hook is not None
    assert hook.parent_id == ""
    trace = hook.trace_id

    def complete() -> bool:
        spans = sink.trace(trace)
        return (
            bool(node_spans(spans, "sink"))
            and bool(only(spans, service="modyard-worker-fault-echo", kind="CONSUMER"))
            and bool(only(spans, name=f"deliver system webhook {COMPONENT_ERROR}"))
        )

    try:
        await eventually(complete, timeout=60)
    except AssertionError:
        raise AssertionError(describe(sink.trace(trace))) from None
    spans = sink.trace(trace)
    services = {span.service for span in spans}
    assert {
        "modyard-runtime",
        "modyard-appcell-gateway",
        "modyard-worker-trace-mod",
        "modyard-worker-fault-echo",
    } <= services, services

    # Every node ran in the webhook's trace, with the flow's attributes.
    # (core.webhook runs in the webhook's request: its outputs are the first messages.)
    for node in ("mod", "cell", "sink"):
        found = node_spans(spans, node)
        assert found, f"{node}\n{describe(spans)}"
        assert all(s.attributes["modyard.workspace"] == WS for s in found)
        assert all(s.attributes["modyard.flow.id"] == traced.flow_id for s in found)
        assert all(
            s.attributes.get("messaging.system") == "rabbitmq" or s.kind == "INTERNAL"
            for s in found
        )
    # The first node's message was published while the webhook's request was handled.
    first = min(node_spans(spans, "mod"), key=lambda s: s.attributes["modyard.attempt"])
    assert hook in OtlpSink.ancestors(spans, first)

    # The module worker failed once: its node ran twice, the retry through the 1 s delay tier,
    # the second attempt a descendant of the first.
    attempts = sorted(node_spans(spans, "mod"), key=lambda s: s.attributes["modyard.attempt"])
    assert [s.attributes["modyard.attempt"] for s in attempts] == [1, 2]
    assert attempts[0] in OtlpSink.ancestors(spans, attempts[1])
    delay_publish = OtlpSink.ancestors(spans, attempts[1])[0]
    assert delay_publish.kind == "PRODUCER"
    assert delay_publish.attributes["messaging.rabbitmq.destination.routing_key"] == (
        "runtime.delay.1s"
    )
    assert attempts[1].attributes["modyard.module"] == "trace-mod"
    assert attempts[1].attributes["modyard.installation"] == "tm"

    # Each attempt reached the module worker's process, as a child of the runtime's publish.
    worked = only(spans, service="modyard-worker-trace-mod", kind="CONSUMER")
    assert len(worked) == 2
    for consumed in worked:
        parent = OtlpSink.ancestors(spans, consumed)[0]
        assert parent.service == "modyard-runtime"
        assert parent.kind == "PRODUCER"
    assert {OtlpSink.ancestors(spans, w)[1].span_id for w in worked} == {
        a.span_id for a in attempts
    }

    # core.http → the gateway's request (a child of the runtime's HTTP client span) → the cell.
    cell_node = node_spans(spans, "cell")[0]
    served = only(spans, service="modyard-appcell-gateway", kind="SERVER")
    assert len(served) == 1
    client_span = OtlpSink.ancestors(spans, served[0])[0]
    assert client_span.service == "modyard-runtime"
    assert client_span.kind == "CLIENT"
    assert cell_node in OtlpSink.ancestors(spans, client_span)
    call = only(spans, service="modyard-appcell-gateway", name="call cell NewResellerClub.fetch")
    assert len(call) == 1
    assert call[0].attributes["modyard.cell"] == f"{WS}:rc"
    (answered,) = only(spans, service="modyard-worker-fault-echo", kind="CONSUMER")
    assert OtlpSink.ancestors(spans, answered)[0] == call[0]

    # The core nodes after the module's ran in process, chained: the cell's call below the
    # module's successful attempt, the last node below the cell's.
    assert cell_node.kind == "INTERNAL"
    assert OtlpSink.ancestors(spans, cell_node)[0] == attempts[1]
    # The last node follows the cell's node; database statements are spans of the trace too.
    sink_node = node_spans(spans, "sink")[0]
    assert sink_node.kind == "INTERNAL"
    assert OtlpSink.ancestors(spans, sink_node)[0] == cell_node
    statements = [s for s in spans if s.kind == "CLIENT" and "db.system.name" in s.attributes]
    statements += [s for s in spans if s.kind == "CLIENT" and "db.system" in s.attributes]
    assert statements, sorted({s.name for s in spans})
    # The runtime ledger's own statements (asyncpg, batched across executions): each node's
    # lookup and record, children of that node's span.
    nodes = {s.span_id for node in ("mod", "cell", "sink") for s in node_spans(spans, node)}
    for name in ("SELECT node_executions", "INSERT node_executions"):
        ledger = only(spans, service="modyard-runtime", kind="CLIENT", name=name)
        assert ledger, f"no {name}: {sorted({s.name for s in spans})}"
        assert all(s.attributes["db.system.name"] == "postgresql" for s in ledger)
        assert {s.parent_id for s in ledger} <= nodes, describe(spans)
    recorded = {s.parent_id for s in only(spans, name="INSERT node_executions")}
    assert {s.span_id for s in node_spans(spans, "sink")} <= recorded


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            f"{url}/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    return response.text


def samples(text: str, name: str, **labels: str) -> list[str]:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return [
        line
        for line in text.splitlines()
        if line.startswith(name + "{") and all(label in line for label in wanted)
    ]


async def test_flow_node_and_cell_metrics_carry_the_trace_as_exemplar(traced: Traced) -> None:
    runtime = traced.cluster.url("runtime")
    async with httpx.AsyncClient(timeout=30) as client:
        sent = await client.post(f"{runtime}/v1/hooks/{WS}/{traced.flow_id}/hook", json={"n": 2})
    assert sent.status_code == 202

    async def sunk() -> bool:
        text = await scrape(runtime)
        return bool(
            samples(
                text,
                "modyard_flow_node_executions_total",
                flow=traced.flow_id,
                node="sink",
                outcome="succeeded",
            )
        )

    await eventually(sunk, timeout=60)
    text = await scrape(runtime)
    traces = {span.trace_id for span in traced.sink.spans}
    # The failed first attempt of the first test's run, by class, and its retry.
    (failed,) = samples(text, "modyard_flow_node_failures_total", flow=traced.flow_id, node="mod")
    assert 'class="http_status"' in failed or 'class="retryable"' in failed, failed
    assert samples(text, "modyard_flow_node_retries_total", flow=traced.flow_id, node="mod")
    # Histogram buckets with exemplars naming traces the sink received.
    exemplars = [
        line.split("# {")[1]
        for line in samples(text, "modyard_flow_e2e_latency_seconds_bucket", flow=traced.flow_id)
        if "# {" in line
    ]
    assert exemplars
    assert any(e.split('trace_id="')[1][:32] in traces for e in exemplars)
    # The work queue has its consumer; the delay tiers are watched too.
    (consumers,) = samples(text, "modyard_queue_consumers", queue="runtime.work")
    assert float(consumers.split()[-1]) >= 1
    assert samples(text, "modyard_queue_messages", queue="runtime.delay.1s")
    assert samples(text, "modyard_outbox_oldest_pending_age_seconds", service="runtime")

    gateway = await scrape(traced.cluster.url("appcell-gateway"))
    calls = samples(
        gateway,
        "modyard_cell_request_duration_seconds_count",
        cell=f"{WS}:rc",
        action="NewResellerClub.fetch",
        outcome="ok",
    )
    assert calls
    assert float(calls[0].split()[-1]) >= 1


async def test_the_system_webhook_of_a_failed_attempt_is_delivered_in_its_trace(
    traced: Traced,
) -> None:
    """The first test's run failed once: the component.error webhook the runtime delivered later,
    from its own loop, continues the failed attempt's trace, and the receiver gets it."""
    sink = traced.sink
    deliveries = [
        span for span in sink.spans if span.name == f"deliver system webhook {COMPONENT_ERROR}"
    ]
    assert deliveries
    delivery = deliveries[0]
    spans = sink.trace(delivery.trace_id)
    ancestors = OtlpSink.ancestors(spans, delivery)
    failed = [a for a in ancestors if a.attributes.get("modyard.node.id") == "mod"]
    assert failed, describe(spans)
    assert failed[0].attributes["modyard.attempt"] == 1
    assert ancestors[-1].attributes["url.path"].startswith("/v1/hooks/")
    (post,) = [s for s in spans if s.parent_id == delivery.span_id and s.kind == "CLIENT"]
    assert post.attributes["http.request.method"] == "POST"
    # The receiver saw the trace in the request's traceparent header.
    carried = [
        request.headers.get("traceparent", "")
        for request in traced.receiver.requests
        if request.json()["event"] == COMPONENT_ERROR
    ]
    assert any(value.split("-")[1] == delivery.trace_id for value in carried if value)


async def test_a_retried_unprocessed_message_starts_a_trace_linked_to_the_attempt_that_gave_up(
    traced: Traced,
) -> None:
    sink = traced.sink
    runtime = traced.cluster.url("runtime")
    # The request names its own trace: an earlier test's webhook span can reach the sink late (the
    # exporter sends in batches), so "the spans after this point" would not pick out this one.
    original = secrets.token_hex(16)
    async with httpx.AsyncClient(timeout=30, headers=traced.cluster.operator) as client:
        sent = await client.post(
            f"{runtime}/v1/hooks/{WS}/{traced.flow_id}/hook",
            json={"fatal_once": True},
            headers={"traceparent": f"00-{original}-{secrets.token_hex(8)}-01"},
        )
        assert sent.status_code == 202
        found: list[dict[str, Any]] = []

        async def stored() -> bool:
            listed = await client.get(
                f"{runtime}/v1/unprocessed-messages", params={"flow": traced.flow_id}
            )
            found[:] = [
                item
                for item in listed.json()["items"]
                if (item.get("payload") or {}).get("fatal_once")
            ]
            return bool(found)

        await eventually(stored, timeout=60)

        def hooks() -> list[ReceivedSpan]:
            return [
                span
                for span in sink.trace(original)
                if span.kind == "SERVER"
                and str(span.attributes.get("url.path")).startswith("/v1/hooks/")
            ]

        await eventually(lambda: bool(hooks()), timeout=30)
        assert len(hooks()) == 1
        retried = await client.post(f"{runtime}/v1/unprocessed-messages/{found[0]['id']}")
        assert retried.status_code == 202, retried.text

    def linked() -> list[ReceivedSpan]:
        return [span for span in sink.spans if span.name == "retry unprocessed message"]

    await eventually(lambda: bool(linked()), timeout=30)
    (retry,) = linked()
    assert retry.trace_id != original
    gave_up = [
        span for span in node_spans(sink.trace(original), "mod") if span.span_id in retry.links
    ]
    assert len(gave_up) == 1, describe(sink.trace(original))
    # The retried node ran in the new trace, below the retry.
    await eventually(lambda: bool(node_spans(sink.trace(retry.trace_id), "mod")), timeout=30)
    rerun = node_spans(sink.trace(retry.trace_id), "mod")[0]
    assert retry in OtlpSink.ancestors(sink.trace(retry.trace_id), rerun)
