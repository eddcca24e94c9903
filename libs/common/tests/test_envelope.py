from __future__ import annotations

import pytest
from pydantic import ValidationError

from modyard.common.bus.envelope import CloudEvent, new_event, routing_key_matches
from modyard.common.request_context import bound_context


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("modyard.*.module.published", "modyard.registry.module.published", True),
        ("modyard.*.module.published", "modyard.registry.module.removed", False),
        ("modyard.#", "modyard.registry.module.published", True),
        ("modyard.registry.#", "modyard.registry", True),
        ("#", "anything.at.all", True),
        ("modyard.*", "modyard.a.b", False),
        ("*.b.#.d", "a.b.c.c.d", True),
    ],
)
def test_topic_patterns_match_like_rabbitmq(pattern: str, key: str, expected: bool) -> None:
    assert routing_key_matches(pattern, key) is expected


def test_new_event_carries_the_current_correlation_id() -> None:
    with bound_context(correlation_id="corr-42"):
        event = new_event(
            source="/modyard/registry", type="modyard.registry.module.published", data={"a": 1}
        )
    assert event.correlationid == "corr-42"
    assert event.specversion == "1.0"
    assert event.time.tzinfo is not None


def test_event_round_trips_through_json() -> None:
    event = new_event(
        source="/s", type="modyard.registry.module.published", data={"n": [1, 2]}, subject="m1"
    )
    assert CloudEvent.from_json_bytes(event.to_json_bytes()) == event


def test_badly_named_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match=r"modyard\.<service>"):
        new_event(source="/s", type="ModuleCreated", data=None)


def test_envelope_without_required_attributes_is_invalid() -> None:
    with pytest.raises(ValidationError):
        CloudEvent.from_json_bytes(b'{"specversion": "1.0", "type": "x"}')
    with pytest.raises(ValidationError):
        CloudEvent.from_json_bytes(b"not json")


def test_naive_time_is_invalid() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        CloudEvent.model_validate(
            {"id": "1", "source": "/s", "type": "t", "time": "2026-01-01T00:00:00"}
        )
