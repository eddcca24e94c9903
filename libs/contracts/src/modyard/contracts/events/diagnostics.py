"""The bus self-test every service takes part in (``modyard ping``): a ping one service sends and
every service records. Its type names the sender: ``modyard.<service>.diagnostic_ping.sent``."""

from __future__ import annotations

from typing import Final

from modyard.contracts.events import EventData

PING_ENTITY: Final = "diagnostic_ping"
PING_VERB: Final = "sent"
#: Every service's ping.
PING_PATTERN: Final = f"modyard.*.{PING_ENTITY}.{PING_VERB}"


class DiagnosticPing(EventData):
    ping_id: str
    #: The service that sent it.
    sent_by: str


def ping_type(service: str) -> str:
    return f"modyard.{service}.{PING_ENTITY}.{PING_VERB}"
