"""The action lane's JSON bodies (orjson, with the standard library for what orjson refuses)."""

from __future__ import annotations

import json

from modyard.appcell_gateway import json_body


def test_a_body_reads_back_as_the_same_json_value() -> None:
    value = {
        "status": "success",
        "result": {"domain": "bücher.example", "years": 2, "price": 9.5, "tags": ["a", None]},
        "postpayload": {"type": "overwrite", "data": {"nested": {"ok": True}}},
    }
    assert json.loads(json_body.dumps(value)) == value


def test_an_integer_beyond_64_bits_is_still_written() -> None:
    value = {"payload": {"id": 2**70, "small": -1}}
    assert json.loads(json_body.dumps(value)) == value
