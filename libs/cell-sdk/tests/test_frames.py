"""modyard.cell.frames writes and reads exactly what pamqp does, for every property and value."""

from __future__ import annotations

import datetime

import pytest
from pamqp import commands as spec
from pamqp import frame as codec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from modyard.cell import frames
from modyard.cell.wire import Properties

REQUEST = Properties(
    content_type="application/json",
    delivery_mode=1,
    message_id="5f0c1e6a9b2d4c7e8f1a2b3c4d5e6f70",
    message_type="appcell.request",
    correlation_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    reply_to="appcell-gateway.replies.abcdef123456",
    headers={"reply-exchange": "appcell.replies", "traceparent": "00-abc-def-01"},
    expiration="10000",
    app_id="modyard-appcell-gateway",
)
EVERY_PROPERTY = Properties(
    content_type="text/plain",
    content_encoding="gzip",
    headers={"n": 1, "nested": {"list": [1, "two", True]}, "ünïcode": "välue"},
    delivery_mode=2,
    priority=9,
    correlation_id="c",
    reply_to="r",
    expiration="60000",
    message_id="m",
    timestamp=datetime.datetime(2026, 12, 6, 20, 0, 0, tzinfo=datetime.UTC),
    message_type="t",
    user_id="cell-user",
    app_id="a",
)
CASES = [
    REQUEST,
    EVERY_PROPERTY,
    Properties(),
    Properties(correlation_id="é" * 100, headers={}),
    Properties(headers={"ü": "välue", "empty": ""}),
]


@pytest.mark.parametrize("properties", CASES)
@pytest.mark.parametrize("body_size", [0, 1, 300, 2**40])
def test_content_header_is_pamqps_byte_for_byte(properties: Properties, body_size: int) -> None:
    expected = codec.marshal(ContentHeader(0, body_size, properties), 1)
    assert frames.content_header(1, body_size, properties) == expected


@pytest.mark.parametrize("properties", CASES)
def test_content_header_reads_as_pamqp_does(properties: Properties) -> None:
    data = codec.marshal(ContentHeader(0, 1234, properties), 1)
    _, _, pamqps = codec.unmarshal(data)
    assert isinstance(pamqps, ContentHeader)
    body_size, read = frames.body_size_and_properties(data[7:-1])
    assert body_size == pamqps.body_size == 1234
    assert read == pamqps.properties
    assert read.headers == pamqps.properties.headers
    assert read.timestamp == pamqps.properties.timestamp


def test_a_string_too_long_fails_as_in_pamqp() -> None:
    properties = Properties(correlation_id="x" * 256)
    with pytest.raises(TypeError) as pamqps:
        codec.marshal(ContentHeader(0, 1, properties), 1)
    with pytest.raises(TypeError) as ours:
        frames.content_header(1, 1, properties)
    assert str(ours.value) == str(pamqps.value)


def test_a_truncated_header_is_refused() -> None:
    data = codec.marshal(ContentHeader(0, 10, REQUEST), 1)
    with pytest.raises(ValueError, match="truncated"):
        frames.body_size_and_properties(data[7:-20])


@pytest.mark.parametrize("redelivered", [False, True])
def test_deliver_reads_as_pamqp_does(redelivered: bool) -> None:
    method = spec.Basic.Deliver(
        consumer_tag="modyard.1",
        delivery_tag=2**40 + 7,
        redelivered=redelivered,
        exchange="appcell.replies",
        routing_key="appcell-gateway.replies.abcdef123456",
    )
    data = codec.marshal(method, 1)
    assert frames.method_index(data[7:11]) == frames.BASIC_DELIVER
    read = frames.deliver(data[11:-1])
    _, _, pamqps = codec.unmarshal(data)
    fields = ("consumer_tag", "delivery_tag", "redelivered", "exchange", "routing_key")
    assert [getattr(read, name) for name in fields] == [getattr(pamqps, name) for name in fields]
    assert [getattr(read, name) for name in fields] == [getattr(method, name) for name in fields]


@pytest.mark.parametrize("multiple", [False, True])
def test_ack_reads_and_writes_as_pamqp_does(multiple: bool) -> None:
    data = codec.marshal(spec.Basic.Ack(delivery_tag=12345, multiple=multiple), 1)
    assert frames.method_index(data[7:11]) == frames.BASIC_ACK
    assert frames.ack(data[11:-1]) == (12345, multiple)
    assert frames.ack_frame(1, 98765) == codec.marshal(spec.Basic.Ack(delivery_tag=98765), 1)


@pytest.mark.parametrize("chunk", [b"", b"x", b"{}" * 1000])
def test_body_is_pamqps_byte_for_byte(chunk: bytes) -> None:
    assert frames.body(1, chunk) == codec.marshal(ContentBody(chunk), 1)
