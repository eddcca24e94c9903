"""OpenTelemetry traces, configured only by the standard ``OTEL_*`` environment variables.

Off by default. Tracing turns on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``,
``console``) or an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), unless ``OTEL_SDK_DISABLED=true``. Everything else is the
SDK's own reading of the environment: the sampler (``OTEL_TRACES_SAMPLER``/``_ARG``, parent-based
always-on by default), resource attributes (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``,
``modyard-<service>`` when neither names one), the batch processor (``OTEL_BSP_*``), the OTLP
exporter's endpoint, headers and timeout (``http/protobuf``), and the propagators
(``OTEL_PROPAGATORS``, W3C trace context and baggage by default).

When off, nothing is instrumented and no SDK module is imported: the hooks in the bus, the lean
AMQP wire and the runtime's worker test :data:`ENABLED` (one attribute read) and do nothing else.

Message propagation is ours, because no maintained instrumentation sees those paths: the bus
publishes on aiormq's channel directly (aio-pika's instrumentation patches ``Exchange.publish``),
and the lean wire (:mod:`modyard.cell.wire`) is not aio-pika at all. W3C ``traceparent`` and
``tracestate`` (and no other propagator's fields: ``OTEL_PROPAGATORS`` is for HTTP) travel in the
AMQP headers of every message, and in the CloudEvents distributed
tracing extension attributes of every event recorded in an outbox (so the relay, which publishes
later in a task of its own, continues the trace of the change that recorded it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Tracer
    from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

#: True once :func:`configure_tracing` installed a tracer provider in this process.
ENABLED = False
_tracer: Tracer | None = None
_service = ""
#: OpenTelemetry's API modules, bound by configure_tracing: the hot paths (every message) then
#: skip an import statement per call.
_otel: Any = None

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: The one traceparent form this platform writes (version 00, nothing after the flags): read by
#: hand on every message; anything else (another version, a tracestate) goes to the propagator.
_VERSION_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
#: The ``traceparent`` of the trace the sampler left out whose message is being handled, set by
#: consuming() next to OpenTelemetry's context (None otherwise, and inside any span of ours). Every
#: hook a message passes (the ledger's, the exemplar's, the publish's) answers from this one lookup
#: what OpenTelemetry's accessors answer in six to ten calls each (context, span, span context,
#: flags): at 1 % sampling that is 99 % of messages, and in a real process, its caches full of
#: other work, those calls cost several times what a micro-benchmark of them says.
#: A message that started its trace here holds its SpanContext, formatted only if something sends
#: it on (most messages of a run of core nodes never do).
_unsampled: ContextVar[str | SpanContext | None] = ContextVar(
    "modyard_unsampled_traceparent", default=None
)
#: The trace id the next root span of this task must take (:func:`consuming`'s root decision).
_preset_trace_id: ContextVar[int | None] = ContextVar("modyard_preset_trace_id", default=None)
#: The samplers OTEL_TRACES_SAMPLER names whose decision depends on the trace id and parent only:
#: asked twice for the same trace id, they answer the same (see _root_decision).
_DETERMINISTIC_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
#: The SDK tracer's sampler and id generator, for the root decision made without a span (None:
#: a sampler we cannot ask twice, so every root goes through start_span).
_root_sampler: Any = None
_ids: Any = None
_root_flags: Any = None
#: The root sampler's decision as a test of the trace id (_root_rule), when it is a built-in one.
_root_keeps: Callable[[int], bool] | None = None
#: Span attributes of our own, next to the semantic conventions' (``messaging.*``, ``http.*``…).
WORKSPACE = "modyard.workspace"
FLOW = "modyard.flow.id"
NODE = "modyard.node.id"
MODULE = "modyard.module"
INSTALLATION = "modyard.installation"
COMPONENT = "modyard.component"
CELL = "modyard.cell"
ACTION = "modyard.action"


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (see the module's docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(service: str) -> bool:
    """Install the tracer provider and the HTTP client and database instrumentations, once per
    process, if the environment asks for traces. Returns whether tracing is on."""
    global ENABLED, _tracer, _service, _otel
    if ENABLED or not requested():
        return ENABLED
    # The stable HTTP and database semantic conventions (url.path, http.request.method,
    # db.system.name…), unless the operator chose otherwise; read when instrumentations load.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    from opentelemetry import trace
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"modyard-{service}"}))
    # No sampler argument: the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
    provider = TracerProvider(resource=resource, id_generator=_id_generator())
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # Global instrumentations: every HTTP client made from now on is traced. The database
    # engine is instrumented by itself (instrument_engine): SQLAlchemy's global instrumentation
    # patches create_engine, which our modules imported before this runs.
    HTTPXClientInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()
    _tracer = trace.get_tracer("modyard")
    _service = service
    _otel = _bind_api()
    _bind_root_decision(provider)
    ENABLED = True
    log.info("tracing_enabled", service_name=resource.attributes.get(SERVICE_NAME))
    return True


def _id_generator() -> Any:
    """The SDK's random ids, except a trace id preset for this task (_preset_trace_id): the root
    span of a trace whose sampling decision was already made with that id."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class PresetTraceIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            preset = _preset_trace_id.get()
            return preset if preset is not None else super().generate_trace_id()

    return PresetTraceIds()


def _bind_root_decision(provider: Any) -> None:
    """Let consuming() decide a new trace's sampling itself, with the provider's own sampler and
    ids, when the sampler answers the same when asked again (the built-in ones): a dropped root
    then costs no span (the SDK's start_span was half of what such a message paid)."""
    global _root_sampler, _ids, _root_flags, _root_keeps
    from opentelemetry.trace import TraceFlags

    name = os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if name not in _DETERMINISTIC_SAMPLERS:
        _root_sampler = _root_keeps = None
        return
    _root_sampler, _ids = provider.sampler, provider.id_generator
    _root_keeps = _root_rule(_root_sampler)
    # As start_span marks a root whose trace id is random (W3C trace context, level 2).
    random_flag = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
    is_random = getattr(_ids, "is_trace_id_random", lambda: False)()
    _root_flags = TraceFlags(TraceFlags.DEFAULT | (random_flag if is_random else 0))


def _root_rule(sampler: Any) -> Callable[[int], bool] | None:
    """What the built-in ``sampler`` decides for a trace without a parent, as a test of the trace
    id alone: a ratio sampler keeps the ids whose low 64 bits are under its bound, a static one
    all or none. Asking the sampler itself builds a result, a parent lookup and its trace state
    for every message (a third of what a dropped root costs). None: a sampler this does not
    know, asked as usual (a test holds each rule to the sampler's own answers)."""
    from opentelemetry.sdk.trace import sampling

    # ParentBased delegates a root to the sampler it was given (its only field for it).
    root = (
        getattr(sampler, "_root", sampler) if isinstance(sampler, sampling.ParentBased) else sampler
    )
    if root is sampling.ALWAYS_ON:
        return lambda _trace_id: True
    if root is sampling.ALWAYS_OFF:
        return lambda _trace_id: False
    if type(root) is sampling.TraceIdRatioBased:
        limit, bound = root.TRACE_ID_LIMIT, root.bound
        return lambda trace_id: trace_id & limit < bound
    return None


def _bind_api() -> Any:
    from types import SimpleNamespace

    from opentelemetry import context, trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # Messages carry W3C trace context only (traceparent/tracestate, all that _text_carrier
    # reads back): the W3C propagator itself, not the global composite of OTEL_PROPAGATORS (HTTP's),
    # whose baggage step costs every message a lookup and an empty header for nothing.
    w3c = TraceContextTextMapPropagator()
    return SimpleNamespace(
        trace=trace,
        context=context,
        extract=w3c.extract,
        inject=w3c.inject,
        empty=context.Context(),
        SpanContext=trace.SpanContext,
        TraceFlags=trace.TraceFlags,
        producer=trace.SpanKind.PRODUCER,
        consumer=trace.SpanKind.CONSUMER,
        client=trace.SpanKind.CLIENT,
        Link=trace.Link,
        NonRecordingSpan=trace.NonRecordingSpan,
    )


def _exporters() -> list[Any]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    exporters: list[Any] = []
    for name in (part.strip() for part in names.split(",")):
        if name == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            )
            if protocol != "http/protobuf":
                log.warning(
                    "tracing_protocol_unsupported",
                    protocol=protocol,
                    detail="modyard exports OTLP over http/protobuf (port 4318); set "
                    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name and name != "none":
            log.warning("tracing_exporter_unknown", exporter=name, known="otlp, console, none")
    return exporters


def instrument_engine(engine: AsyncEngine) -> None:
    """A CLIENT span for every statement ``engine`` runs (db.system.name, db.query.text…)."""
    if not ENABLED:
        return
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    EngineTracer(  # type: ignore[no-untyped-call]
        trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"),
        engine.sync_engine,
        metrics.get_meter(__name__).create_up_down_counter("db.client.connections.usage"),
    )


def instrument_app(app: FastAPI) -> None:
    """Server spans for every request of ``app`` (health, readiness and metrics left out)."""
    if not ENABLED:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # One span per request: not one more for every ASGI send and receive.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="/healthz,/readyz,/metrics", exclude_spans=["send", "receive"]
    )


def shutdown() -> None:
    """Export what is still buffered (the SDK also does it at exit)."""
    if not ENABLED:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush()


# -- messages ------------------------------------------------------------------------------------


def inject(carrier: dict[str, Any]) -> dict[str, Any]:
    """Add the current context's ``traceparent``/``tracestate`` to ``carrier``."""
    if ENABLED:
        unsampled = _unsampled.get()
        if unsampled is not None:
            carrier[TRACEPARENT] = _header(unsampled)
        else:
            _write_traceparent(carrier, _otel.trace.get_current_span().get_span_context())
    return carrier


def _write_traceparent(carrier: dict[str, Any], span_context: SpanContext) -> None:
    """What the W3C propagator's inject writes, without its getter, setter and context lookups
    (every message pays them): ``traceparent``, and ``tracestate`` when there is one."""
    if not span_context.is_valid:
        return
    carrier[TRACEPARENT] = _traceparent(span_context)
    if span_context.trace_state:
        carrier[TRACESTATE] = span_context.trace_state.to_header()


def _header(unsampled: str | SpanContext) -> str:
    return unsampled if isinstance(unsampled, str) else _traceparent(unsampled)


def _traceparent(span_context: SpanContext) -> str:
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{span_context.trace_flags:02x}"
    )


def current_traceparent() -> dict[str, str]:
    """The CloudEvents distributed-tracing extension attributes of the current context."""
    if not ENABLED:
        return {}
    carrier: dict[str, str] = {}
    inject(carrier)
    return {key: carrier[key] for key in (TRACEPARENT, TRACESTATE) if carrier.get(key)}


@contextmanager
def continuing(carrier: Mapping[str, Any] | None) -> Iterator[None]:
    """Make the context in ``carrier`` (``traceparent``/``tracestate``: AMQP headers or a
    CloudEvent's extension attributes) current, if it holds one."""
    context = _remote_context(carrier) if ENABLED else None
    if context is None:
        yield
        return
    token = _otel.context.attach(context)
    # OpenTelemetry's own accessors answer inside (rare paths: the outbox relay, deliveries).
    unsampled = _unsampled.set(None)
    try:
        yield
    finally:
        _unsampled.reset(unsampled)
        _otel.context.detach(token)


def _remote_context(headers: Mapping[str, Any] | None) -> Any:
    """The context of the ``traceparent`` in ``headers`` (None if there is none, or it is
    malformed)."""
    remote = _remote(headers)
    return None if remote is None else remote[0]


def _remote(headers: Mapping[str, Any] | None) -> tuple[Any, bool, str | None] | None:
    """The context of the ``traceparent`` in ``headers``, whether its trace is sampled, and the
    header to send on unchanged when it is not (None when it needs the propagator's writing: a
    tracestate). None if there is none, or it is malformed. The common form is read here, in a
    fraction of the propagator's time: every message of a trace the sampler left out pays this,
    and it is most of what they pay."""
    if not headers:
        return None
    value = headers.get(TRACEPARENT)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not value or not isinstance(value, str):
        return None
    match = None if headers.get(TRACESTATE) else _VERSION_00.fullmatch(value)
    if match is None:
        context = _otel.extract(_text_carrier(headers))
        span_context = _otel.trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return None
        return context, span_context.trace_flags.sampled, None
    trace_id, span_id, flags = match.groups()
    span_context = _otel.SpanContext(
        int(trace_id, 16), int(span_id, 16), True, _otel.TraceFlags(int(flags, 16))
    )
    if not span_context.is_valid:  # all-zero ids: the propagator ignores them too
        return None
    context = _otel.trace.set_span_in_context(_otel.NonRecordingSpan(span_context), _otel.empty)
    # Our own form, lower-case hex: the header as _write_traceparent would write it again.
    return context, span_context.trace_flags.sampled, value


def _text_carrier(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """AMQP header values arrive as bytes from the lean wire and str from aio-pika."""
    carrier: dict[str, str] = {}
    for key in (TRACEPARENT, TRACESTATE):
        value = (headers or {}).get(key)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str) and value:
            carrier[key] = value
    return carrier


def link_to(headers: Mapping[str, Any] | None) -> Link | None:
    """A link to the trace of ``headers``, for work that starts a trace of its own (a replay of a
    dead-lettered message) but should lead back to where it came from."""
    if not ENABLED:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span(_otel.extract(_text_carrier(headers))).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None


# The paths a trace the sampler left out takes return plain context managers (nullcontext,
# _Current): no generator frame per message, since those are most messages at a low ratio.


class _Current(AbstractContextManager[None]):
    """``context`` is current inside the block: the context of a trace the sampler left out, for
    what the handler sends on (``traceparent``: the header that says so, None to let
    OpenTelemetry's accessors answer, as for a tracestate). No span to record or end."""

    __slots__ = ("_context", "_token", "_traceparent", "_unsampled_token")

    def __init__(self, context: Any, traceparent: str | SpanContext | None) -> None:
        self._context = context
        self._traceparent = traceparent

    def __enter__(self) -> None:
        # OpenTelemetry's context for whatever else runs inside (an HTTP client's span, a
        # statement's): it stays in this trace and records nothing, as parent-based sampling asks.
        self._token = _otel.context.attach(self._context)
        self._unsampled_token = _unsampled.set(self._traceparent)

    def __exit__(self, *_exc: object) -> None:
        _unsampled.reset(self._unsampled_token)
        _otel.context.detach(self._token)


def publishing(
    destination: str,
    routing_key: str,
    headers: dict[str, Any] | None,
    *,
    message_id: str | None = None,
    system: str = "rabbitmq",
    attributes: Mapping[str, Any] | None = None,
) -> AbstractContextManager[dict[str, Any] | None]:
    """A PRODUCER span around one publish; yields the headers to send, with the span's
    ``traceparent`` (``headers`` itself, untouched, when tracing is off)."""
    if not ENABLED or _tracer is None:
        return nullcontext(headers)
    unsampled = _unsampled.get()
    if unsampled is not None:
        # The message being handled belongs to a trace the sampler left out: its traceparent
        # travels on unchanged (what W3C asks of a participant that records nothing).
        carried = dict(headers) if headers else {}
        carried[TRACEPARENT] = _header(unsampled)
        return nullcontext(carried)
    current = _otel.trace.get_current_span().get_span_context()
    carried = dict(headers or {})
    if current.is_valid and not current.trace_flags.sampled:
        # A trace the sampler left out: a span would record nothing (parent-based sampling), so
        # only its context travels on, and the message costs one header.
        _write_traceparent(carried, current)
        return nullcontext(carried)
    name = f"publish {destination or routing_key or '(default)'}"
    producer = _tracer.start_span(name, kind=_otel.producer)
    _write_traceparent(carried, producer.get_span_context())
    if not producer.is_recording():
        # A new trace the sampler left out: its context travels on; there is nothing to record,
        # end or make current (use_span's bookkeeping was most of what such a publish cost).
        return nullcontext(carried)
    producer.set_attributes(
        _messaging("publish", destination, routing_key, message_id, system, attributes)
    )
    return _recording(producer, carried)


def consuming(
    source: str,
    headers: Mapping[str, Any] | None,
    *,
    routing_key: str = "",
    message_id: str | None = None,
    redelivered: bool = False,
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind | None = None,
) -> AbstractContextManager[Span | None]:
    """A CONSUMER span (``process <queue>``) continuing the trace of the message's headers; yields
    the span (None when tracing is off, or the sampler left the trace out) to add attributes to."""
    if not ENABLED or _tracer is None:
        return nullcontext(None)
    name = f"process {source}"
    kind = kind or _otel.consumer
    remote = _remote(headers)
    preset = None
    if remote is None:
        context = _otel.empty  # no parent: a new trace, whatever the current context holds
        if _root_sampler is not None:
            # The root decision without a span: most roots are dropped at a low ratio, and
            # start_span was half of what such a message cost (plus the context formatted
            # for sending on, now only when something is sent).
            trace_id = _ids.generate_trace_id()
            if _root_keeps is not None:
                # A root's trace state is empty: there is no parent to take one from.
                keep, trace_state = _root_keeps(trace_id), None
            else:
                decided = _root_sampler.should_sample(context, trace_id, name, kind)
                keep, trace_state = decided.decision.is_sampled(), decided.trace_state
            if not keep:
                started = _otel.SpanContext(
                    trace_id, _ids.generate_span_id(), False, _root_flags, trace_state
                )
                return _Current(
                    _otel.trace.set_span_in_context(_otel.NonRecordingSpan(started), context),
                    None if started.trace_state else started,
                )
            # Kept: the span takes the trace id the sampler said yes to (asked again by
            # start_span, a built-in sampler answers the same for the same id).
            preset = _preset_trace_id.set(trace_id)
    else:
        context, sampled, traceparent = remote
        if not sampled:
            # Left out by the sampler where the trace started: carry its context on, record
            # nothing.
            return _Current(context, traceparent)
    try:
        consumer = _tracer.start_span(name, context=context, kind=kind)
    finally:
        if preset is not None:
            _preset_trace_id.reset(preset)
    if not consumer.is_recording():
        # A new trace the sampler left out (a message without a parent).
        started = consumer.get_span_context()
        return _Current(
            _otel.trace.set_span_in_context(consumer, context),
            None if started.trace_state else started,
        )
    span_attributes = _messaging("process", source, routing_key, message_id, "rabbitmq", attributes)
    if redelivered:
        span_attributes["messaging.rabbitmq.message.redelivered"] = True
    consumer.set_attributes(span_attributes)
    return _recording(consumer, consumer)


@contextmanager
def _recording(recorded: Span, value: Any) -> Iterator[Any]:
    """``recorded`` is the current span inside the block and ends with it; as
    start_as_current_span, an escaping exception is recorded and sets the span's status."""
    unsampled = _unsampled.set(None)
    try:
        with _otel.trace.use_span(recorded, end_on_exit=True):
            yield value
    finally:
        _unsampled.reset(unsampled)


@contextmanager
def span(
    name: str, *, attributes: Mapping[str, Any] | None = None, links: list[Link] | None = None
) -> Iterator[Span | None]:
    """An INTERNAL span (a node's run, a relay pass); yields None when tracing is off."""
    if not ENABLED or _tracer is None:
        yield None
        return
    unsampled = _unsampled.set(None)  # OpenTelemetry's accessors answer inside
    try:
        with _tracer.start_as_current_span(
            name, attributes=_clean(attributes or {}), links=links
        ) as current:
            yield current
    finally:
        _unsampled.reset(unsampled)


def recording() -> bool:
    """Whether the current span records: test it before building attributes for it (a trace the
    sampler left out has nothing to put them on)."""
    if not ENABLED or _unsampled.get() is not None:
        return False
    return bool(_otel.trace.get_current_span().is_recording())


def annotate_current(attributes: Mapping[str, Any]) -> None:
    """Add attributes (workspace, flow, node…) to the current span."""
    if not ENABLED or _unsampled.get() is not None:
        return
    current = _otel.trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_clean(attributes))


def set_attributes(target: Span | None, attributes: Mapping[str, Any]) -> None:
    if target is not None:
        target.set_attributes(_clean(attributes))


def sampled_span_context() -> SpanContext | None:
    """The current span's context if the sampler kept its trace, else None: what a caller hands
    to work done for it later, elsewhere (a batched statement's parent or link)."""
    if not ENABLED or _unsampled.get() is not None:
        return None
    context = _otel.trace.get_current_span().get_span_context()
    return context if context.is_valid and context.trace_flags.sampled else None


@contextmanager
def batched_statement(
    operation: str,
    collection: str,
    query: str,
    callers: Sequence[SpanContext | None],
    *,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """A CLIENT span for one database statement run for several callers at once (group commit):
    a child of the first sampled caller, linked to the other sampled ones. No span when no caller
    was sampled: its trace would hold nothing else (parent-based sampling), and the unsampled
    path stays free of span work."""
    sampled = [caller for caller in callers if caller is not None] if ENABLED else []
    if not sampled or _tracer is None:
        yield
        return
    parent = _otel.trace.set_span_in_context(_otel.NonRecordingSpan(sampled[0]))
    unique = {caller.span_id: caller for caller in sampled[1:] if caller != sampled[0]}
    span_attributes: dict[str, Any] = {
        "db.system.name": "postgresql",
        "db.operation.name": operation,
        "db.collection.name": collection,
        "db.query.text": query,
        **(attributes or {}),
    }
    if len(callers) > 1:
        # The semantic conventions' batch size: set only for a batch of two or more.
        span_attributes["db.operation.batch.size"] = len(callers)
    unsampled = _unsampled.set(None)  # a task that inherited a message's context may run this
    try:
        with _tracer.start_as_current_span(
            f"{operation} {collection}",
            context=parent,
            kind=_otel.client,
            attributes=_clean(span_attributes),
            links=[_otel.Link(caller) for caller in unique.values()],
        ):
            yield
    finally:
        _unsampled.reset(unsampled)


def trace_id_exemplar() -> dict[str, str] | None:
    """``{"trace_id": …}`` of the current sampled span, for a histogram's exemplar."""
    if not ENABLED or _unsampled.get() is not None:
        return None
    context = _otel.trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": format(context.trace_id, "032x")}


def _messaging(
    operation: str,
    destination: str,
    routing_key: str,
    message_id: str | None,
    system: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": system,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination or routing_key,
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    attributes.update(extra or {})
    return _clean(attributes)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Span attribute values must be str, bool, int, float (or lists of them); None is dropped."""
    return {
        key: value if isinstance(value, str | bool | int | float) else str(value)
        for key, value in attributes.items()
        if value is not None
    }
