"""Tracing's switch (the OTEL_* variables), nothing loaded when it is off, the label budgets that
bound the metrics' cardinality, and the Fernet token time the secret-age gauge reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from cryptography.fernet import Fernet

from modyard.common.observability.labels import OTHER, LabelBudget, NestedBudget
from modyard.common.observability.secret_age import token_time
from modyard.common.observability.tracing import requested


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}, False),
    ],
)
def test_tracing_is_on_only_when_the_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert requested(environ) is on


_BUILD = """
import sys
from modyard.registry.app import create_app
create_app()
from modyard.common.observability import tracing
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.instrumentation")))
print(tracing.ENABLED, len(loaded))
"""


def _build_app(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", _BUILD],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _script_result(script: str) -> Any:
    """Run ``script`` in a fresh interpreter with no OTEL_* variables; what it printed after
    ``RESULT``, parsed (tracing's global provider and context stay out of this test process)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=clean,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_with_tracing_off_no_sdk_or_instrumentation_is_loaded() -> None:
    assert _build_app({}) == "False 0"


def test_with_an_exporter_named_the_sdk_and_instrumentations_are_installed() -> None:
    enabled, loaded = _build_app({"OTEL_TRACES_EXPORTER": "console"}).split()
    assert enabled == "True"
    assert int(loaded) > 0


def test_a_label_budget_admits_its_limit_and_counts_the_rest_as_other() -> None:
    budget = LabelBudget(2)
    assert [budget(v) for v in ("a", "b", "c", "a", "d", "b")] == ["a", "b", OTHER, "a", OTHER, "b"]


def test_a_nested_budget_bounds_outer_and_inner_values() -> None:
    budget = NestedBudget(outer=1, inner=2)
    assert budget("flow-1", "n1") == ("flow-1", "n1")
    assert budget("flow-1", "n2") == ("flow-1", "n2")
    assert budget("flow-1", "n3") == ("flow-1", OTHER)
    assert budget("flow-2", "n1") == (OTHER, OTHER)


def test_the_time_of_a_fernet_token_is_read_without_its_key() -> None:
    before = int(time.time())
    token = Fernet(Fernet.generate_key()).encrypt(b"secret").decode()
    made = token_time(token)
    assert made is not None
    assert before <= made <= int(time.time())
    assert token_time("not a token") is None
    assert token_time("") is None


_PROPAGATE = """
import json, os
os.environ.update(OTEL_TRACES_EXPORTER="console", OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                  OTEL_TRACES_SAMPLER_ARG="0.01")
from modyard.common.observability import tracing
tracing.configure_tracing("units")
seen = {}
for flags in ("00", "01"):
    parent = {"traceparent": f"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}"}
    with tracing.consuming("q", parent) as span:
        with tracing.publishing("x", "k", {"keep": "me"}) as carried:
            seen[flags] = {"span": span is not None, "carried": carried}
print("RESULT " + json.dumps(seen))
"""


def test_a_trace_left_out_by_the_sampler_travels_on_without_spans_a_sampled_one_with_them() -> None:
    seen = _script_result(_PROPAGATE)
    unsampled, sampled = seen["00"], seen["01"]
    # Unsampled: no span, the same context (trace, parent span, flags) passed on.
    assert unsampled["span"] is False
    assert unsampled["carried"] == {
        "keep": "me",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
    }
    # Sampled: the consumer's span, and the producer's own span id in the same trace.
    assert sampled["span"] is True
    version, trace_id, span_id, flags = sampled["carried"]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert span_id != "b7ad6b7169203331"
    assert sampled["carried"]["keep"] == "me"


_NESTED = """
import json, os
os.environ.update(OTEL_TRACES_EXPORTER="console", OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                  OTEL_TRACES_SAMPLER_ARG="0")
from modyard.common.observability import tracing
tracing.configure_tracing("units")
other = "1" * 32

def hooks():
    with tracing.publishing("x", "k", None) as carried:
        pass
    return {
        "recording": tracing.recording(),
        "sampled": tracing.sampled_span_context() is not None,
        "exemplar": tracing.trace_id_exemplar(),
        "carried": carried["traceparent"],
        "injected": tracing.inject({})["traceparent"],
    }

seen = {}
outer = "00-" + "0" * 31 + "1-" + "0" * 15 + "1-00"
with tracing.consuming("q", {"traceparent": outer}):
    seen["unsampled"] = hooks()
    with tracing.consuming("q", {"traceparent": "00-" + other + "-" + "0" * 15 + "2-01"}):
        seen["sampled inside"] = hooks()
    with tracing.span("internal"):
        seen["span inside"] = hooks()
    with tracing.consuming("q", {}):  # a new trace the sampler (ratio 0) leaves out
        seen["new trace inside"] = hooks()
    seen["after"] = hooks()
print("RESULT " + json.dumps(seen))
"""


def test_the_hooks_inside_a_trace_left_out_answer_for_the_innermost_context() -> None:
    """A message of a trace the sampler left out answers the ledger's, the exemplar's and the
    publish's questions from its own marker; a context made current inside it (a sampled message,
    a span, a new trace) answers for itself, and the marker is back after it."""
    seen = _script_result(_NESTED)
    unsampled = f"00-{1:032x}-{1:016x}-00"
    for name in ("unsampled", "after"):
        assert seen[name] == {
            "recording": False,
            "sampled": False,
            "exemplar": None,
            "carried": unsampled,
            "injected": unsampled,
        }
    inside = seen["sampled inside"]
    assert (inside["recording"], inside["sampled"]) == (True, True)
    assert inside["exemplar"] == {"trace_id": "1" * 32}
    # The publish's own span: same trace, a new span id, sampled.
    version, trace_id, span_id, flags = inside["carried"].split("-")
    assert (version, trace_id, flags) == ("00", "1" * 32, "01")
    assert span_id != "0" * 15 + "2"
    assert inside["injected"] == f"00-{'1' * 32}-{inside['injected'].split('-')[2]}-01"
    # A span inside the left-out trace stays in it and records nothing (parent-based).
    in_span = seen["span inside"]
    assert (in_span["recording"], in_span["sampled"], in_span["exemplar"]) == (False, False, None)
    assert in_span["carried"].split("-")[1] == f"{1:032x}"
    assert in_span["carried"].endswith("-00")
    # A new trace inside: its own trace id travels on, not the outer one.
    new = seen["new trace inside"]
    assert (new["recording"], new["sampled"], new["exemplar"]) == (False, False, None)
    assert new["carried"].split("-")[1] not in (f"{1:032x}", "1" * 32)
    assert new["carried"] == new["injected"]
    assert int(new["carried"].split("-")[3], 16) & 1 == 0  # not sampled


_ROOTS = """
import json, os, random
os.environ.update(OTEL_TRACES_EXPORTER="console", OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                  OTEL_TRACES_SAMPLER_ARG="0.5")
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from modyard.common.observability import tracing
tracing.configure_tracing("units")
finished = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(finished))
random.seed(7)
kept, dropped = 0, []
for _ in range(2000):
    with tracing.consuming("q", None) as span:
        if span is None:
            dropped.append([tracing.inject({})["traceparent"], tracing.inject({})["traceparent"]])
        else:
            kept += 1
exported = finished.get_finished_spans()
trace.get_tracer_provider().shutdown()  # the console exporter's output done before the result
print("RESULT " + json.dumps({
    "kept": kept,
    "exported": len(exported),
    "exported_trace_ids_distinct": len({s.context.trace_id for s in exported}),
    "exported_roots": sum(1 for s in exported if s.parent is None),
    "dropped": dropped[:50],
    "dropped_count": len(dropped),
}))
"""


def test_new_traces_are_kept_at_the_samplers_ratio_and_dropped_ones_carry_their_context() -> None:
    """A message without a traceparent gets its root decision without a span; the ones the
    sampler keeps get a span of the very trace id it said yes to (asked again, it agrees), so the
    ratio is the configured one (0.5), not its square."""
    seen = _script_result(_ROOTS)
    assert seen["kept"] + seen["dropped_count"] == 2000
    assert 800 <= seen["kept"] <= 1200, seen["kept"]
    assert seen["exported"] == seen["kept"] == seen["exported_trace_ids_distinct"]
    assert seen["exported_roots"] == seen["kept"]
    for first, again in seen["dropped"]:
        # One context per message, sent on the same each time: a valid id, not sampled.
        assert first == again
        version, trace_id, span_id, flags = first.split("-")
        assert version == "00"
        assert int(trace_id, 16) != 0
        assert int(span_id, 16) != 0
        assert int(flags, 16) & 1 == 0
    assert len({pair[0].split("-")[1] for pair in seen["dropped"]}) == len(seen["dropped"])


_BATCHED = """
import json, os
os.environ.update(OTEL_TRACES_EXPORTER="console")
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from modyard.common.observability import tracing
tracing.configure_tracing("units")
finished = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(finished))
callers = []
for flags in ("01", "00", "01"):
    span_id = f"{len(callers) + 1:016x}"
    parent = {"traceparent": f"00-{len(callers) + 1:032x}-{span_id}-{flags}"}
    with tracing.continuing(parent):
        callers.append(tracing.sampled_span_context())
with tracing.batched_statement("INSERT", "node_executions", "INSERT …", callers):
    pass
with tracing.batched_statement("SELECT", "node_executions", "SELECT …", [callers[1], None]):
    pass
spans = [
    {
        "name": s.name,
        "kind": s.kind.name,
        "trace": format(s.context.trace_id, "032x"),
        "parent": format(s.parent.span_id, "016x"),
        "links": [format(link.context.span_id, "016x") for link in s.links],
        "attributes": dict(s.attributes),
    }
    for s in finished.get_finished_spans()
]
print("RESULT " + json.dumps({"sampled": [c is not None for c in callers], "spans": spans}))
"""


def test_a_batched_statement_is_a_span_of_its_first_sampled_caller_linked_to_the_others() -> None:
    seen = _script_result(_BATCHED)
    assert seen["sampled"] == [True, False, True]
    # One span only: the statement whose callers were all left out by the sampler has none.
    (statement,) = seen["spans"]
    assert statement["name"] == "INSERT node_executions"
    assert statement["kind"] == "CLIENT"
    assert (statement["trace"], statement["parent"]) == (f"{1:032x}", f"{1:016x}")
    assert statement["links"] == [f"{3:016x}"]
    assert statement["attributes"]["db.system.name"] == "postgresql"
    assert statement["attributes"]["db.collection.name"] == "node_executions"
    assert statement["attributes"]["db.operation.batch.size"] == 3


_TRACE = "0af7651916cd43dd8448eb211c80319c"
_SPAN = "b7ad6b7169203331"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": f"00-{_TRACE}-{_SPAN}-00"},
        {"traceparent": f"00-{_TRACE}-{_SPAN}-01"},
        {"traceparent": f"00-{_TRACE}-{_SPAN}-03"},  # sampled, random trace id (W3C level 2)
        {"traceparent": f"00-{_TRACE}-{_SPAN}-02".encode()},  # the lean wire's bytes
        {"traceparent": f"00-{_TRACE}-{_SPAN}-01", "tracestate": "vendor=1,other=two"},
        {"traceparent": f"00-{_TRACE.upper()}-{_SPAN}-01"},
        {"traceparent": f"00-{'0' * 32}-{_SPAN}-01"},
        {"traceparent": f"00-{_TRACE}-{'0' * 16}-01"},
        {"traceparent": f"00-{_TRACE}-{_SPAN}-01-extra"},
        {"traceparent": f"01-{_TRACE}-{_SPAN}-01-future"},
        {"traceparent": f"ff-{_TRACE}-{_SPAN}-01"},
        {"traceparent": f"  00-{_TRACE}-{_SPAN}-01 "},
        {"traceparent": "00-0_f7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": ""},
        {"traceparent": 42},
    ],
)
def test_a_message_s_traceparent_reads_as_the_w3c_propagator_reads_it(
    headers: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from modyard.common.observability import tracing

    monkeypatch.setattr(tracing, "_otel", tracing._bind_api())
    expected = trace.get_current_span(
        TraceContextTextMapPropagator().extract(tracing._text_carrier(headers))
    ).get_span_context()
    context = tracing._remote_context(headers)
    if not expected.is_valid:
        assert context is None
        return
    assert context is not None
    assert trace.get_current_span(context).get_span_context() == expected
    # Written back, it is the header the propagator itself would write.
    written: dict[str, Any] = {}
    tracing._write_traceparent(written, expected)
    propagated: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(propagated, context=context)
    assert written == propagated


def test_a_root_s_decision_from_its_trace_id_is_the_built_in_samplers_own() -> None:
    """consuming() decides a message without a traceparent by a rule on its trace id instead of
    asking the sampler (_root_rule): for each sampler OTEL_TRACES_SAMPLER names, the rule keeps
    exactly the ids the sampler itself keeps; a sampler it does not know is asked as before."""
    import random

    from opentelemetry.sdk.trace import sampling

    from modyard.common.observability.tracing import _root_rule

    samplers = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(0.3),
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(sampling.TraceIdRatioBased(0.3)),
    }
    draw = random.Random(24)
    ids = [draw.getrandbits(128) for _ in range(5000)]
    # The edges of the ratio's bound, on both sides, in the low 64 bits the sampler reads.
    bound = sampling.TraceIdRatioBased(0.3).bound
    ids += [(7 << 64) | (bound - 1), (7 << 64) | bound, bound + 1]
    for name, sampler in samplers.items():
        rule = _root_rule(sampler)
        assert rule is not None, name
        expected = [
            sampler.should_sample(None, tid, "process q").decision.is_sampled() for tid in ids
        ]
        assert [rule(tid) for tid in ids] == expected, name
    ratio_rule = _root_rule(samplers["parentbased_traceidratio"])
    assert ratio_rule is not None
    kept = sum(ratio_rule(tid) for tid in ids[:5000])
    assert 1300 <= kept <= 1700, kept  # about 30 %: the rule is not "keep all" by accident

    class Custom(sampling.TraceIdRatioBased):
        """Another sampler, however alike: asked itself."""

    assert _root_rule(Custom(0.3)) is None
    assert _root_rule(sampling.ParentBased(Custom(0.3))) is None
