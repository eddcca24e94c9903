"""Names and arguments of the exchanges and queues every service shares.

modyard.events (topic)            domain events, routing key = event type
  └─ alternate-exchange → modyard.events.unrouted (fanout) → queue modyard.events.unrouted
       events that no service subscribes to yet are kept there instead of being dropped
<service>.events (quorum queue)   one per consuming service, bound to the types it handles
  └─ dead-letter → modyard.dead (direct) → <service>.events.dead
       messages that are malformed or failed ``delivery-limit`` times
"""

from __future__ import annotations

from typing import Any

EVENTS_EXCHANGE = "modyard.events"
UNROUTED_EXCHANGE = "modyard.events.unrouted"
UNROUTED_QUEUE = "modyard.events.unrouted"
DEAD_LETTER_EXCHANGE = "modyard.dead"


def events_queue(service: str) -> str:
    return f"{service}.events"


def dead_letter_queue(service: str) -> str:
    return f"{service}.events.dead"


def events_queue_arguments(service: str, delivery_limit: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dead_letter_queue(service),
    }
