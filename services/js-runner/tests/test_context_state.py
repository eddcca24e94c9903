"""``context.state*`` and the ``flow.*`` / ``service.*`` scopes, on PostgreSQL, per workspace."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from persistence_env import PersistentHarness

from modyard.jsrunner.tables import state as state_table

pytestmark = pytest.mark.infra

#: Each member once; answers what it read back.
COUNTER = """
module.exports = {
    async receive(context) {
        const { op, key, value, by } = context.messages.in.content;
        const scope = context.messages.in.content.scope;
        const api = scope === 'flow' ? context.flow : scope === 'service' ? context.service : context;
        let result;
        if (op === 'set') result = await api.stateSet(key, value);
        if (op === 'get') result = await api.stateGet(key);
        if (op === 'inc') result = await api.stateInc(key, by);
        if (op === 'unset') result = await api.stateUnset(key);
        if (op === 'clear') result = await api.stateClear();
        if (op === 'add') result = await api.stateAddToSet(key, value);
        if (op === 'drop') result = await api.stateRemoveFromSet(key, value);
        return context.sendJson({ result: result === undefined ? '(undefined)' : result }, 'out');
    }
};
"""

#: Appmixer's older form: context.state loaded before the call, saveState() after changing it.
SEEN = """
module.exports = {
    async receive(context) {
        const seen = (context.state.seen || []).concat([context.messages.in.content.id]);
        context.state.seen = seen;
        await context.saveState();
        const loaded = await context.loadState();
        return context.sendJson({ seen, loaded }, 'out');
    }
};
"""


def result(reply: dict[str, object]) -> object:
    assert "outputs" in reply, reply
    [out] = reply["outputs"]["out"]  # type: ignore[index]
    return out["result"]  # type: ignore[index]


async def test_node_state_members_and_context_state(persistent: PersistentHarness) -> None:
    module = persistent.module({"Counter": COUNTER, "Seen": SEEN})
    run = persistent.run
    assert result(await run(module, "Counter", {"op": "get", "key": "k"})) == "(undefined)"
    assert result(await run(module, "Counter", {"op": "set", "key": "k", "value": {"a": 1}})) == {
        "a": 1
    }
    assert result(await run(module, "Counter", {"op": "get", "key": "k"})) == {"a": 1}
    assert result(await run(module, "Counter", {"op": "inc", "key": "n"})) == 1
    assert result(await run(module, "Counter", {"op": "inc", "key": "n", "by": 4})) == 5
    await run(module, "Counter", {"op": "unset", "key": "k"})
    assert result(await run(module, "Counter", {"op": "get", "key": "k"})) == "(undefined)"
    await run(module, "Counter", {"op": "clear"})
    assert result(await run(module, "Counter", {"op": "get", "key": "n"})) == "(undefined)"
    # Another node of the same flow has its own state.
    await run(module, "Counter", {"op": "set", "key": "k", "value": 1}, node_id="node-2")
    assert result(await run(module, "Counter", {"op": "get", "key": "k"})) == "(undefined)"

    first = await run(module, "Seen", {"id": 1}, node_id="seen")
    second = await run(module, "Seen", {"id": 2}, node_id="seen")
    assert first["outputs"]["out"] == [{"seen": [1], "loaded": {"seen": [1]}}]
    assert second["outputs"]["out"] == [{"seen": [1, 2], "loaded": {"seen": [1, 2]}}]


async def test_flow_and_service_scopes_are_shared_as_appmixer_shares_them(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Counter": COUNTER, "Other": COUNTER})
    run = persistent.run
    # flow.*: every node of the flow sees it; another flow does not.
    await run(module, "Counter", {"op": "set", "scope": "flow", "key": "f", "value": "x"})
    assert (
        result(await run(module, "Other", {"op": "get", "scope": "flow", "key": "f"}, node_id="n9"))
        == "x"
    )
    assert (
        result(
            await run(
                module, "Counter", {"op": "get", "scope": "flow", "key": "f"}, flow_id="flow-2"
            )
        )
        == "(undefined)"
    )
    # service.*: every component of the module in the workspace, in any flow.
    await run(module, "Counter", {"op": "set", "scope": "service", "key": "s", "value": 7})
    assert (
        result(
            await run(
                module, "Other", {"op": "get", "scope": "service", "key": "s"}, flow_id="flow-3"
            )
        )
        == 7
    )
    other_module = persistent.module({"Counter": COUNTER})
    assert (
        result(await run(other_module, "Counter", {"op": "get", "scope": "service", "key": "s"}))
        == "(undefined)"
    )


async def test_no_scope_is_readable_or_writable_across_workspaces(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Counter": COUNTER})
    run = persistent.run
    for scope in ("node", "flow", "service"):
        await run(module, "Counter", {"op": "set", "scope": scope, "key": "secret", "value": "a"})
        await run(module, "Counter", {"op": "add", "scope": scope, "key": "set", "value": "a"})
    before = await _rows(persistent, "wsa")
    for scope in ("node", "flow", "service"):
        # Same module, flow id, node id and key: another workspace reads nothing…
        read = await run(
            module, "Counter", {"op": "get", "scope": scope, "key": "secret"}, workspace="wsb"
        )
        assert result(read) == "(undefined)"
        # …and its writes, increments and clears leave the first workspace's rows as they were.
        await run(
            module,
            "Counter",
            {"op": "set", "scope": scope, "key": "secret", "value": "b"},
            workspace="wsb",
        )
        await run(
            module,
            "Counter",
            {"op": "drop", "scope": scope, "key": "set", "value": "a"},
            workspace="wsb",
        )
        await run(module, "Counter", {"op": "clear", "scope": scope}, workspace="wsb")
    assert await _rows(persistent, "wsa") == before
    for scope in ("node", "flow", "service"):
        read = await run(module, "Counter", {"op": "get", "scope": scope, "key": "secret"})
        assert result(read) == "a"


async def test_sizes_are_capped_with_an_error_naming_the_setting_and_nothing_written(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Counter": COUNTER})
    run = persistent.run
    await run(module, "Counter", {"op": "set", "key": "big", "value": "small"})
    refused = await run(module, "Counter", {"op": "set", "key": "big", "value": "x" * 5000})
    assert refused["error"]["retryable"] is False
    assert "MODYARD_JS_RUNNER_STATE_MAX_VALUE_BYTES" in refused["error"]["message"]
    assert result(await run(module, "Counter", {"op": "get", "key": "big"})) == "small"
    # Per node: 16 KiB in all (the fixture's setting); the fifth 4000-byte value passes it.
    for index in range(4):
        ok = await run(module, "Counter", {"op": "set", "key": f"k{index}", "value": "y" * 3900})
        assert "outputs" in ok, ok
    over = await run(module, "Counter", {"op": "set", "key": "k4", "value": "y" * 3900})
    assert "MODYARD_JS_RUNNER_STATE_MAX_BYTES" in over["error"]["message"]
    assert result(await run(module, "Counter", {"op": "get", "key": "k4"})) == "(undefined)"
    not_a_number = await run(module, "Counter", {"op": "inc", "key": "big"})
    assert "not a number" in not_a_number["error"]["message"]
    assert result(await run(module, "Counter", {"op": "get", "key": "big"})) == "small"


async def test_add_to_set_and_remove_from_set_keep_a_set_under_concurrency(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Counter": COUNTER})
    run = persistent.run
    hook = {"flowId": "f1", "componentId": "n1"}
    for _ in range(2):  # the same registration twice is kept once
        added = await run(
            module, "Counter", {"op": "add", "scope": "service", "key": "hooks", "value": hook}
        )
    assert result(added) == [hook]
    # An element that only contains the value is not equal to it.
    partial = {"flowId": "f1"}
    assert result(
        await run(
            module, "Counter", {"op": "add", "scope": "service", "key": "hooks", "value": partial}
        )
    ) == [hook, partial]
    assert result(
        await run(
            module, "Counter", {"op": "drop", "scope": "service", "key": "hooks", "value": hook}
        )
    ) == [partial]
    replies = await asyncio.gather(
        *(
            run(module, "Counter", {"op": "add", "scope": "flow", "key": "seen", "value": index})
            for index in range(30)
        )
    )
    assert all("outputs" in reply for reply in replies)
    seen = result(await run(module, "Counter", {"op": "get", "scope": "flow", "key": "seen"}))
    assert sorted(seen) == list(range(30))  # type: ignore[arg-type]


async def test_concurrent_increments_lose_nothing(persistent: PersistentHarness) -> None:
    module = persistent.module({"Counter": COUNTER})
    replies = await asyncio.gather(
        *(persistent.run(module, "Counter", {"op": "inc", "key": "hits"}) for _ in range(50))
    )
    assert sorted(result(reply) for reply in replies) == list(range(1, 51))  # type: ignore[type-var]


async def test_a_stopped_node_forgets_its_state_unless_the_component_is_persistent(
    persistent: PersistentHarness,
) -> None:
    plain = persistent.module({"Counter": COUNTER})
    kept = persistent.module({"Counter": COUNTER})
    persistent.declare_persistent_state(kept, "Counter")
    run = persistent.run
    flow = {"flow_id": "stopping"}
    await run(plain, "Counter", {"op": "set", "key": "k", "value": 1}, node_id="a", **flow)
    await run(kept, "Counter", {"op": "set", "key": "k", "value": 2}, node_id="b", **flow)
    await run(plain, "Counter", {"op": "set", "scope": "flow", "key": "f", "value": 3}, **flow)
    await run(plain, "Counter", {"op": "set", "key": "k", "value": 4}, node_id="a", flow_id="other")
    # The flow stops: the runtime calls stop on each node (Counter exports none: nothing to run).
    for module, node in ((plain, "a"), (kept, "b")):
        stopped = await run(module, "Counter", None, port="stop", node_id=node, **flow)
        assert stopped == {"outputs": {}}
    get = {"op": "get", "key": "k"}
    assert result(await run(plain, "Counter", get, node_id="a", **flow)) == "(undefined)"
    assert result(await run(kept, "Counter", get, node_id="b", **flow)) == 2
    flow_get = {"op": "get", "scope": "flow", "key": "f"}
    assert result(await run(plain, "Counter", flow_get, **flow)) == 3
    assert result(await run(plain, "Counter", get, node_id="a", flow_id="other")) == 4


async def _rows(persistent: PersistentHarness, workspace: str) -> list[tuple[object, ...]]:
    async with persistent.api.database.transaction() as session:
        rows = await session.execute(
            sa.select(
                state_table.c.scope, state_table.c.owner, state_table.c.key, state_table.c.value
            )
            .where(state_table.c.workspace == workspace)
            .order_by(state_table.c.scope, state_table.c.owner, state_table.c.key)
        )
        return [tuple(row) for row in rows]


#: A look-alike of utils.controls.Each's bookkeeping: its progress is kept under context.id.
EACH = """
module.exports = { async receive(context) {
    const seen = await context.stateGet(context.id);
    await context.stateSet(context.id, { index: 1 });
    const kept = await context.stateGet(context.id);
    await context.stateUnset(context.id);
    return context.sendJson({ id: context.id, seen: seen || null, kept }, 'out');
} };
"""


async def test_each_keeps_its_progress_under_context_id_the_messages_id(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Each": EACH})
    reply = await persistent.call(
        module, "Each", {"list": [1]}, workspace="wsa", flow_id="f", node_id="n", message_id="m-7"
    )
    assert reply == {"outputs": {"out": [{"id": "m-7", "seen": None, "kept": {"index": 1}}]}}


#: Connectors keep their polling logic in a shared lib.js: the component's file never names
#: the node's state, the helper reads context.state and saves it.
POLL_LIB = """
module.exports = {
    async poll(context) {
        const known = Array.isArray(context.state.known) ? context.state.known : [];
        const item = context.messages.in.content.id;
        await context.saveState({ known: known.concat(known.includes(item) ? [] : [item]) });
        return context.sendJson({ item, isNew: !known.includes(item) }, 'out');
    }
};
"""
POLL = """
const lib = require('../lib');
module.exports = { receive: (context) => lib.poll(context) };
"""


async def test_state_is_loaded_when_only_a_shared_helper_of_the_module_reads_it(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Poll": POLL}, files={"lib.js": POLL_LIB})
    answers = [
        (await persistent.run(module, "Poll", {"id": item}, node_id="poller"))["outputs"]["out"][0]
        for item in (1, 2, 1)
    ]
    assert [answer["isNew"] for answer in answers] == [True, True, False]
