"""What a component cannot do, each attempt leaving the runner and other modules' calls
unaffected: a bystander module is called before, during and after every attempt."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from jsrunner_env import Harness

BYSTANDER = """
module.exports = { async receive(context) {
    await context.sendJson({ alive: context.messages.in.content }, 'out');
} };
"""

ATTEMPTS = {
    "read_outside": """
const fs = require('fs');
module.exports = { async receive() { return fs.readFileSync('/etc/passwd', 'utf8'); } };
""",
    "read_runner_settings": """
const fs = require('fs');
module.exports = { async receive() { return fs.readFileSync('/work/main/.run/infra.env', 'utf8'); } };
""",
    "write_own_dir": """
const fs = require('fs');
module.exports = { async receive() { fs.writeFileSync(__dirname + '/dropped.js', 'x'); } };
""",
    "spawn": """
const { execSync } = require('child_process');
module.exports = { async receive() { execSync('id'); } };
""",
    "fork": """
const { fork } = require('child_process');
module.exports = { async receive() { fork(__filename); } };
""",
    "worker": """
const { Worker } = require('worker_threads');
module.exports = { async receive() { new Worker('1', { eval: true }); } };
""",
    "addon": """
module.exports = { async receive() { process.dlopen({ exports: {} }, '/usr/lib/x86_64-linux-gnu/libc.so.6'); } };
""",
    "tcp_database": """
const net = require('net');
module.exports = { receive() {
    return new Promise((resolve, reject) => {
        const socket = net.connect(5432, '127.0.0.1');
        socket.on('connect', () => resolve('connected'));
        socket.on('error', reject);
    });
} };
""",
    "fetch_out": """
module.exports = { async receive() { await fetch('http://1.1.1.1/'); } };
""",
}


def _error(reply: dict[str, Any]) -> dict[str, Any]:
    assert "error" in reply, reply
    return dict(reply["error"])


async def _bystander_ok(harness: Harness, bystander: str, n: int) -> None:
    assert await harness.call(bystander, "Ok", n) == {"outputs": {"out": [{"alive": n}]}}


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
async def test_a_forbidden_operation_fails_the_call_and_nothing_else(
    harness: Harness, attempt: str
) -> None:
    bystander = harness.module({"Ok": BYSTANDER})
    module = harness.module({"Try": ATTEMPTS[attempt]})
    await _bystander_ok(harness, bystander, 1)
    reply, _ = await asyncio.gather(
        harness.call(module, "Try", {}), _bystander_ok(harness, bystander, 2)
    )
    error = _error(reply)
    if attempt in ("tcp_database", "fetch_out"):
        # No route out of the namespace: direct network fails closed. 127.0.0.1 is the
        # namespace's own loopback (up for the SDK proxy), where nothing listens but that proxy.
        assert (
            "ENETUNREACH" in error["message"]
            or "fetch failed" in error["message"]
            or "ECONNREFUSED 127.0.0.1:5432" in error["message"]
        )
    elif attempt == "addon":
        assert error["retryable"] is False
        assert "addon" in error["message"].lower() or "dlopen" in error["message"].lower()
    else:
        assert error["retryable"] is False, error
        assert "Access to this API has been restricted" in error["message"], error
    assert not (harness.root / module / "Try" / "dropped.js").exists()
    await _bystander_ok(harness, bystander, 3)


CRASHES = {
    "infinite_loop": "module.exports = { async receive() { for (;;) {} } };",
    "memory_bomb_heap": """
module.exports = { async receive() { const hog = []; for (;;) hog.push(new Array(1e6).fill(1)); } };
""",
    "memory_bomb_buffers": """
module.exports = { async receive() {
    const hog = [];
    for (;;) { hog.push(Buffer.alloc(16 * 1024 * 1024, 1)); await new Promise((r) => setImmediate(r)); }
} };
""",
    "exit_mid_call": """
module.exports = { async receive() { setTimeout(() => process.exit(3), 50); await new Promise(() => {}); } };
""",
    "uncaught_in_timer": """
module.exports = { async receive() { setTimeout(() => { throw new Error('late'); }, 10); await new Promise(() => {}); } };
""",
}


@pytest.mark.parametrize("attempt", sorted(CRASHES))
async def test_a_child_that_dies_fails_only_its_calls_and_the_next_call_gets_a_new_one(
    harness: Harness, attempt: str
) -> None:
    bystander = harness.module({"Ok": BYSTANDER})
    module = harness.module({"Bad": CRASHES[attempt], "Ok": BYSTANDER})
    await _bystander_ok(harness, bystander, 1)
    reply, _ = await asyncio.gather(
        harness.call(module, "Bad", {}), _bystander_ok(harness, bystander, 2)
    )
    error = _error(reply)
    assert error["retryable"] is True  # a crash is retried, by a new child
    assert error["kind"] == "sandbox"
    await _bystander_ok(harness, bystander, 3)
    # The same module version runs again in a fresh child.
    assert await harness.call(module, "Ok", 4) == {"outputs": {"out": [{"alive": 4}]}}


async def test_an_unhandled_rejection_is_logged_and_the_child_keeps_serving(
    harness: Harness,
) -> None:
    module = harness.module(
        {
            "Reject": """
module.exports = { async receive(context) {
    Promise.reject(new Error('nobody listens'));
    await context.sendJson({ done: true }, 'out');
} };
""",
            "Ok": BYSTANDER,
        }
    )
    assert await harness.call(module, "Reject", {}) == {"outputs": {"out": [{"done": True}]}}
    children = {child.spec.module: child.pid for child in harness.runner.pool.children()}
    assert await harness.call(module, "Ok", 1) == {"outputs": {"out": [{"alive": 1}]}}
    after = {child.spec.module: child.pid for child in harness.runner.pool.children()}
    assert after[module] == children[module]


async def test_the_environment_of_the_child_is_empty(harness: Harness) -> None:
    module = harness.module(
        {
            "Env": """
module.exports = { async receive(context) {
    const names = Object.keys(process.env).filter((name) => name !== 'NODE_PATH');
    await context.sendJson({ names }, 'out');
} };
"""
        }
    )
    # Only the proxy of the npm SDKs (egress_proxy.py), set by the bootstrap itself.
    proxy = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"]
    assert await harness.call(module, "Env", {}) == {"outputs": {"out": [{"names": proxy}]}}


async def test_a_child_is_recycled_after_its_calls_and_when_idle(harness: Harness) -> None:
    module = harness.module({"Ok": BYSTANDER})
    pool = harness.runner.pool
    settings = harness.settings
    old_max, old_idle = settings.max_calls_per_child, settings.idle_seconds
    settings.max_calls_per_child = 3
    try:
        for n in range(3):
            await harness.call(module, "Ok", n)
        first = next(c for c in pool.children() if c.spec.module == module)
        await harness.call(module, "Ok", 4)  # goes to a new child
        second = next(c for c in pool.children() if c.spec.module == module)
        assert second.pid != first.pid
        pool.reap()
        await first.wait_closed()
        assert not first.alive
        settings.idle_seconds = 0.001
        await asyncio.sleep(0.01)
        pool.reap()
        await second.wait_closed()
        assert module not in {c.spec.module for c in pool.children()}
    finally:
        settings.max_calls_per_child, settings.idle_seconds = old_max, old_idle
