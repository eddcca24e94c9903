"""With webhook delivery off (``MODYARD_RUNTIME_WEBHOOK_DELIVERY_ENABLED=false``), deliveries
are recorded and never sent: what lets tests/test_api_fuzzing.py subscribe generated URLs.

A module of its own: no other runtime (whose deliverer would send them) may run on this database
meanwhile, and module-scoped runtimes of other test modules are gone by then."""

from __future__ import annotations

import asyncio

import pytest

from modyard.runtime.app import create_app
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.runtime_webhooks import WebhookReceiver
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra


async def test_with_webhook_delivery_off_deliveries_are_recorded_but_never_sent(
    infra: IsolatedInfra,
) -> None:
    # What lets tests/test_api_fuzzing.py subscribe generated URLs: nothing leaves the machine.
    settings = RuntimeSettings(
        database_url=infra.database_url,
        amqp_url=infra.amqp_url,
        webhook_delivery_enabled=False,
        webhook_poll_interval_seconds=0.1,
    )
    headers = auth_headers(settings)
    async with WebhookReceiver() as receiver, in_process(create_app(settings)) as client:
        created = await client.post(
            "/v1/system-webhooks",
            json={"url": receiver.url, "events": ["*"], "secret": "whsec-0123456789abcdef"},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        webhook = created.json()["id"]
        sent = await client.post(f"/v1/system-webhooks/{webhook}/test", headers=headers)
        assert sent.status_code == 202, sent.text
        await asyncio.sleep(1.0)  # ten poll intervals: a running deliverer would have sent it
        deliveries = await client.get(f"/v1/system-webhooks/{webhook}/deliveries", headers=headers)
        assert [item["status"] for item in deliveries.json()["items"]] == ["pending"]
    assert receiver.requests == []
