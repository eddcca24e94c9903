"""``context.store.*``, ``context.staticCache``, ``context.callAppmixer`` and
``context.componentStaticCall``: the subset public connectors use, per workspace; the rest
rejects naming the member."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from persistence_env import PersistentHarness

from modyard.jsrunner.tables import store_items

pytestmark = pytest.mark.infra

#: Creates its store as connectors do (callAppmixer POST /stores), then works on its items.
STORE = """
module.exports = {
    async receive(context) {
        const input = context.messages.in.content;
        const storeId = input.storeId;
        const out = {};
        if (input.op === 'create') {
            out.created = await context.callAppmixer({ endPoint: '/stores', method: 'POST', body: { name: 'orders' } });
        }
        if (input.op === 'fill') {
            await context.store.set(storeId, 'o1', { status: 'open', total: 10 });
            await context.store.set(storeId, 'o2', { status: 'paid', total: 20 });
            await context.store.set(storeId, 'o3', { status: 'open', total: 30 });
        }
        if (input.op === 'read') {
            out.one = (await context.store.get(storeId, 'o1')) || null;
            out.open = (await context.store.find(storeId, { query: { 'value.status': 'open' }, sort: { key: 1 } }))
                .map((item) => item.key);
            out.some = (await context.store.find(storeId, { query: { key: { $in: ['o2', 'o3'] } }, sort: { key: -1 }, limit: 1 }))
                .map((item) => item.key);
            out.count = await context.store.count(storeId);
        }
        if (input.op === 'remove') await context.store.remove(storeId, 'o1');
        if (input.op === 'drop') await context.callAppmixer({ endPoint: '/stores/' + storeId, method: 'DELETE' });
        if (input.op === 'big') await context.store.set(storeId, 'big', 'x'.repeat(5000));
        if (input.op === 'webhook') await context.store.registerWebhook(storeId, 'https://example.invalid');
        if (input.op === 'plugin') await context.callAppmixer({ endPoint: '/plugins/appmixer/slack/tasks', method: 'POST' });
        if (input.op === 'static') await context.componentStaticCall('appmixer.slack.list.SendMessage', 'channels', {});
        return context.sendJson(out, 'out');
    }
};
"""

CACHE = """
module.exports = {
    async receive(context) {
        const { op, ttl } = context.messages.in.content;
        if (op === 'set') await context.staticCache.set('picker', { items: [1, 2] }, ttl);
        if (op === 'remove') await context.staticCache.remove('picker');
        if (op === 'expire') {
            // Past the entry's ttl by the clock, without a timer.
            const until = Date.now() + 3;
            while (Date.now() < until);
        }
        const value = await context.staticCache.get('picker');
        return context.sendJson({ value: value === undefined ? null : value }, 'out');
    }
};
"""


def out(reply: dict[str, Any]) -> Any:
    assert "outputs" in reply, reply
    return reply["outputs"]["out"][0]


async def test_a_store_is_created_filled_queried_and_dropped(persistent: PersistentHarness) -> None:
    module = persistent.module({"Store": STORE})
    run = persistent.run
    store_id = out(await run(module, "Store", {"op": "create"}))["created"]["storeId"]
    assert store_id.startswith("orders-")
    await run(module, "Store", {"op": "fill", "storeId": store_id})
    assert out(await run(module, "Store", {"op": "read", "storeId": store_id})) == {
        "one": {"status": "open", "total": 10},
        "open": ["o1", "o3"],
        "some": ["o3"],
        "count": 3,
    }
    await run(module, "Store", {"op": "remove", "storeId": store_id})
    read = out(await run(module, "Store", {"op": "read", "storeId": store_id}))
    assert read["one"] is None
    assert read["count"] == 2
    await run(module, "Store", {"op": "drop", "storeId": store_id})
    assert out(await run(module, "Store", {"op": "read", "storeId": store_id}))["count"] == 0


async def test_a_store_id_names_a_store_of_the_calling_workspace_only(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Store": STORE})
    run = persistent.run
    await run(module, "Store", {"op": "fill", "storeId": "shared-id"})
    before = await _items(persistent, "wsa")
    other = out(await run(module, "Store", {"op": "read", "storeId": "shared-id"}, workspace="wsb"))
    assert other == {"one": None, "open": [], "some": [], "count": 0}
    await run(module, "Store", {"op": "remove", "storeId": "shared-id"}, workspace="wsb")
    await run(module, "Store", {"op": "drop", "storeId": "shared-id"}, workspace="wsb")
    assert await _items(persistent, "wsa") == before
    assert out(await run(module, "Store", {"op": "read", "storeId": "shared-id"}))["count"] == 3


async def test_what_is_not_built_rejects_naming_the_member_and_is_not_retried(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Store": STORE})
    cases = {
        "webhook": "context.store.registerWebhook is not supported",
        "plugin": "callAppmixer POST /plugins/appmixer/slack/tasks has no counterpart",
        "static": 'context.componentStaticCall("appmixer.slack.list.SendMessage") is not supported',
        "big": "MODYARD_JS_RUNNER_STORE_MAX_VALUE_BYTES",
    }
    for op, words in cases.items():
        reply = await persistent.run(module, "Store", {"op": op, "storeId": "s"})
        assert words in reply["error"]["message"], reply
        assert reply["error"]["retryable"] is False
    assert await _items(persistent, "wsa", "s") == []  # the oversized value was not stored


async def test_the_static_cache_is_kept_per_workspace_with_a_ttl(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Cache": CACHE})
    run = persistent.run
    assert out(await run(module, "Cache", {"op": "set"}))["value"] == {"items": [1, 2]}
    assert out(await run(module, "Cache", {"op": "get"}, flow_id="other-flow"))["value"] == {
        "items": [1, 2]
    }
    assert out(await run(module, "Cache", {"op": "get"}, workspace="wsb"))["value"] is None
    assert out(await run(module, "Cache", {"op": "remove"}))["value"] is None
    await run(module, "Cache", {"op": "set", "ttl": 1})
    assert out(await run(module, "Cache", {"op": "expire"}))["value"] is None


async def _items(
    persistent: PersistentHarness, workspace: str, store_id: str | None = None
) -> list[tuple[object, ...]]:
    query = sa.select(store_items.c.store_id, store_items.c.key, store_items.c.value).where(
        store_items.c.workspace == workspace
    )
    if store_id is not None:
        query = query.where(store_items.c.store_id == store_id)
    async with persistent.api.database.transaction() as session:
        rows = await session.execute(query.order_by(store_items.c.store_id, store_items.c.key))
        return [tuple(row) for row in rows]
