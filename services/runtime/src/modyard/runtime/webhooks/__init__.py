"""System webhooks: operators subscribe URLs to runtime events (component errors, unprocessed
messages, stopped flows, failing and recovered triggers), delivered signed, retried and recorded.

The engine calls :func:`notify` inside its own transaction; :class:`WebhookDeliverer` sends in the
background; ``endpoints.py`` is the ``/v1/system-webhooks`` API. See ``docs/system-webhooks.md``.
"""

from __future__ import annotations

from modyard.runtime.webhooks.delivery import WebhookDeliverer
from modyard.runtime.webhooks.payloads import (
    COMPONENT_ERROR,
    EVENTS,
    FLOW_STOPPED,
    MESSAGE_UNPROCESSED,
    TRIGGER_FAILING,
    TRIGGER_RECOVERED,
)
from modyard.runtime.webhooks.service import notify
from modyard.runtime.webhooks.signing import compute_signature, verify_signature

__all__ = [
    "COMPONENT_ERROR",
    "EVENTS",
    "FLOW_STOPPED",
    "MESSAGE_UNPROCESSED",
    "TRIGGER_FAILING",
    "TRIGGER_RECOVERED",
    "WebhookDeliverer",
    "compute_signature",
    "notify",
    "verify_signature",
]
