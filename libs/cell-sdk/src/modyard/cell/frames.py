"""The AMQP frames of every request and reply, encoded and decoded without pamqp's generic code.

A request/reply round trip is a dozen frames between the gateway, the broker and the cell: the
publish's content header, the delivery's method, header and body frames, the confirm, the ack.
pamqp encodes and decodes each through its generic machinery (a dispatch on a type name per
property, a slice of the remaining bytes per field, a frame object validated on creation): about
12 µs to encode a request's content header and 6 to 10 µs to decode each delivery frame, a quarter of
the cell's CPU per request and a tenth of the gateway's (``docs/gateway.md``, "Benchmark"). The
functions here do the same for those frames only, with pamqp's own encoders and decoders for the
rare property types (tables, timestamps); every other frame still goes through pamqp. They produce
and accept exactly pamqp's bytes and values (``tests/test_frames.py`` checks both against pamqp).
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import commands as spec
from pamqp import decode, encode
from pamqp import frame as codec
from pamqp.header import ContentHeader

Properties = spec.Basic.Properties

FRAME_METHOD, FRAME_HEADER, FRAME_BODY = 1, 2, 3
FRAME_END = 0xCE
#: The method ids (class << 16 | method) this module decodes itself.
BASIC_DELIVER = spec.Basic.Deliver.index
BASIC_ACK = spec.Basic.Ack.index

_HEADER_PREFIX = struct.Struct(">BHIHHQ")  # frame type, channel, size; class, weight, body size
_FLAGS = struct.Struct(">H")
_METHOD_INDEX = struct.Struct(">I")
_ACK = struct.Struct(">QB")
_DELIVERY_TAG = struct.Struct(">Q")
_CLASS_BASIC = spec.Basic.frame_id
_FRAME_END = bytes([FRAME_END])

# (attribute, flag, kind), in the order and with the flags of the AMQP 0-9-1 Basic properties.
_SHORTSTR, _OCTET, _TABLE, _TIMESTAMP = 0, 1, 2, 3
_KINDS = {"shortstr": _SHORTSTR, "octet": _OCTET, "table": _TABLE, "timestamp": _TIMESTAMP}
_PROPERTIES = tuple(
    (name, Properties.flags[name], _KINDS[getattr(Properties, "_" + name)])
    for name in Properties.__slots__
)


def content_header(channel: int, body_size: int, properties: Properties) -> bytes:
    """The content header frame of a publish: ``codec.marshal(ContentHeader(0, body_size,
    properties), channel)``, byte for byte."""
    flags = 0
    parts: list[bytes] = []
    for name, flag, kind in _PROPERTIES:
        value = getattr(properties, name)
        if value is None or value == "":
            continue
        flags |= flag
        if kind == _SHORTSTR and isinstance(value, str):
            encoded = value.encode()
            if len(encoded) > 255:  # pamqp's error for it
                return codec.marshal(ContentHeader(0, body_size, properties), channel)
            parts.append(bytes((len(encoded),)) + encoded)
        elif kind == _OCTET:
            parts.append(encode.octet(value))
        elif kind == _TABLE:
            parts.append(_table(value))
        elif kind == _TIMESTAMP:
            parts.append(encode.timestamp(value))
        else:  # a value of an unexpected type: pamqp encodes it or says why not
            return codec.marshal(ContentHeader(0, body_size, properties), channel)
    encoded_properties = b"".join(parts)
    return b"".join(
        (
            _HEADER_PREFIX.pack(
                FRAME_HEADER, channel, 14 + len(encoded_properties), _CLASS_BASIC, 0, body_size
            ),
            _FLAGS.pack(flags),
            encoded_properties,
            _FRAME_END,
        )
    )


def body_size_and_properties(payload: bytes) -> tuple[int, Properties]:
    """A content header frame's payload (between the frame header and its end octet): the body
    size and the properties, as pamqp's ``ContentHeader.unmarshal`` reads them; ValueError if
    they are truncated."""
    try:
        return _body_size_and_properties(payload)
    except (IndexError, struct.error) as exc:
        raise ValueError(f"the content header is truncated ({exc})") from None


def _body_size_and_properties(payload: bytes) -> tuple[int, Properties]:
    body_size = _DELIVERY_TAG.unpack_from(payload, 4)[0]
    flags = _FLAGS.unpack_from(payload, 12)[0]
    if flags & 1:  # a second flags word: no AMQP 0-9-1 property needs one
        header = ContentHeader()
        header.unmarshal(payload)
        return header.body_size, header.properties
    offset = 14
    values: dict[str, Any] = {}
    for name, flag, kind in _PROPERTIES:
        if not flags & flag:
            continue
        if kind == _SHORTSTR:
            end = offset + 1 + payload[offset]
            values[name] = payload[offset + 1 : end].decode()
            offset = end
        elif kind == _OCTET:
            values[name] = payload[offset]
            offset += 1
        elif kind == _TABLE:
            offset, values[name] = _read_table(payload, offset)
        else:
            consumed, values[name] = decode.timestamp(payload[offset:])
            offset += consumed
    if offset > len(payload):
        raise ValueError("the content header's properties are truncated")
    return body_size, Properties(**values)


def deliver(payload: bytes) -> spec.Basic.Deliver:
    """A ``Basic.Deliver`` method frame's payload (after the method id) as pamqp reads it."""
    end = 1 + payload[0]
    consumer_tag = payload[1:end].decode()
    delivery_tag = _DELIVERY_TAG.unpack_from(payload, end)[0]
    redelivered = bool(payload[end + 8] & 1)
    offset = end + 9
    end = offset + 1 + payload[offset]
    exchange = payload[offset + 1 : end].decode()
    routing_key = payload[end + 1 : end + 1 + payload[end]].decode()
    if end + 1 + payload[end] > len(payload):
        raise ValueError("Basic.Deliver is truncated")
    return spec.Basic.Deliver(consumer_tag, delivery_tag, redelivered, exchange, routing_key)


def ack(payload: bytes) -> tuple[int, bool]:
    """A ``Basic.Ack`` method frame's payload (after the method id): delivery tag, multiple."""
    delivery_tag, bits = _ACK.unpack_from(payload)
    return delivery_tag, bool(bits & 1)


def method_index(payload: bytes) -> int:
    index: int = _METHOD_INDEX.unpack_from(payload)[0]
    return index


_LENGTH = struct.Struct(">I")


def _table(value: Any) -> bytes:
    """A field table: the usual headers (a few strings: the reply exchange, the traceparent)
    here, anything else by pamqp."""
    if not isinstance(value, dict) or not value:
        return encode.field_table(value)
    parts: list[bytes] = []
    for key, item in sorted(value.items()):
        encoded_key = key.encode() if isinstance(key, str) else b""
        if type(item) is not str or not encoded_key or len(encoded_key) > 128:
            return encode.field_table(value)
        encoded = item.encode()
        parts += (
            bytes((len(encoded_key),)),
            encoded_key,
            b"S",
            _LENGTH.pack(len(encoded)),
            encoded,
        )
    data = b"".join(parts)
    return _LENGTH.pack(len(data)) + data


def _read_table(payload: bytes, offset: int) -> tuple[int, dict[str, Any]]:
    """A field table at ``offset``: (where it ends, its value); tables with anything but UTF-8
    strings (type ``S``) are read by pamqp."""
    end = offset + 4 + _LENGTH.unpack_from(payload, offset)[0]
    if end > len(payload):
        raise ValueError("Field table length exceeds available data")
    table: dict[str, Any] = {}
    at = offset + 4
    try:
        while at < end:
            key_end = at + 1 + payload[at]
            key = payload[at + 1 : key_end].decode()
            if payload[key_end] != 0x53:  # "S"
                raise LookupError
            value_start = key_end + 5
            value_end = value_start + _LENGTH.unpack_from(payload, key_end + 1)[0]
            if value_end > end:
                raise LookupError
            table[key] = payload[value_start:value_end].decode()
            at = value_end
    except (LookupError, UnicodeDecodeError, struct.error):
        consumed, table = decode.field_table(payload[offset:])
        return offset + consumed, table
    return end, table


_BODY_PREFIX = struct.Struct(">BHI")
_ACK_FRAME = struct.Struct(">BHIIQBB")


def body(channel: int, chunk: bytes) -> bytes:
    """A content body frame: ``codec.marshal(ContentBody(chunk), channel)``."""
    return b"".join((_BODY_PREFIX.pack(FRAME_BODY, channel, len(chunk)), chunk, _FRAME_END))


def ack_frame(channel: int, delivery_tag: int) -> bytes:
    """``codec.marshal(Basic.Ack(delivery_tag), channel)``: the cell's every delivery ends so."""
    return _ACK_FRAME.pack(FRAME_METHOD, channel, 13, BASIC_ACK, delivery_tag, 0, FRAME_END)
