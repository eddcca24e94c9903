"""Issue 17, holes 4 and 5, live: user-written schemas never fetch, and one workspace cannot
exhaust the runtime's CPU or memory (real PostgreSQL and RabbitMQ, two workspaces).

Each test asserts the refusal, that nothing changed, and that the other workspace is unaffected.
Inputs are sized so that the code before the fix was pathological (minutes, or gigabytes), not
merely slow: a regression shows as a hang, never as a flaky timing assertion.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from runtime_env import node_log_entries, running_flow

from modyard.common.auth import Role
from modyard.common.expressions import MAX_COERCED_ITEMS, ExpressionError, evaluate_value
from modyard.runtime.app import create_app
from modyard.runtime.automations.budgets import AutomationBudgets
from modyard.runtime.automations.definitions import compile_automation
from modyard.runtime.automations.interpreter import BudgetExceeded, Interpreter
from modyard.runtime.automations.program import Program
from modyard.runtime.automations.service import AutomationService
from modyard.runtime.context import SLOT
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

A, B = "budget-a", "budget-b"


class Env:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: RuntimeSettings) -> None:
        self.client = client
        self.app = app
        self.headers = auth_headers(settings, Role.operator)

    @property
    def service(self) -> AutomationService:
        service = SLOT.of(self.app).automations
        assert isinstance(service, AutomationService)
        return service

    async def save(self, ws: str, slug: str, definition: dict[str, Any]) -> httpx.Response:
        response = await self.client.put(
            f"/v1/workspaces/{ws}/automations/{slug}", json=definition, headers=self.headers
        )
        self.service.programs.forget(ws)
        return response

    async def exists(self, ws: str, slug: str) -> bool:
        response = await self.client.get(
            f"/v1/workspaces/{ws}/automations/{slug}", headers=self.headers
        )
        return response.status_code == 200

    async def run(self, ws: str, name: str, payload: dict[str, Any] | None = None) -> Any:
        return await self.client.post(
            f"/v1/workspaces/{ws}/automations/{name}/run",
            json={"payload": payload or {}},
            headers=self.headers,
        )


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    settings = RuntimeSettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema="runtime_budgets"
    )
    app = create_app(settings)
    async with in_process(app) as client:
        yield Env(client, app, settings)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections, counts them, and never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> SilentServer:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            await reader.read(65536)  # and never a byte back

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def problem_pointers(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return {error["pointer"]: error["detail"] for error in response.json()["errors"]}


# --- hole 4: no schema is ever fetched ----------------------------------------------------------


async def test_a_remote_or_file_ref_in_arguments_is_refused_at_save_and_never_fetched(
    env: Env,
) -> None:
    async with SilentServer() as slow:
        remote = await env.save(
            A,
            "remote",
            {"arguments": {"x": {"$ref": f"{slow.url}/schema.json"}}, "do": []},
        )
        local_file = await env.save(
            A, "local", {"arguments": {"x": {"$ref": "file:///etc/passwd"}}, "do": []}
        )
        nested = await env.save(
            A,
            "nested",
            {
                "arguments": {
                    "x": {"$defs": {"y": {"$ref": f"{slow.url}/y.json"}}, "$ref": "#/$defs/y"}
                },
                "do": [],
            },
        )
        await asyncio.sleep(0)  # a connection in flight would be counted by now
        assert slow.connections == 0
    assert remote.status_code == 422
    assert "never fetched" in problem_pointers(remote)["/body/arguments/x/$ref"]
    assert local_file.status_code == 422
    assert "/body/arguments/x/$ref" in problem_pointers(local_file)
    assert nested.status_code == 422
    assert "/body/arguments/x/$defs/y/$ref" in problem_pointers(nested)
    for slug in ("remote", "local", "nested"):
        assert not await env.exists(A, slug)
    # References within the document still work, and the other workspace is untouched.
    inside = await env.save(
        B,
        "inside",
        {
            "validateArguments": True,
            # Arguments are the properties of one schema: an $anchor names a part of it.
            "arguments": {
                "x": {"$defs": {"n": {"$anchor": "count", "type": "integer"}}, "$ref": "#count"}
            },
            "output": "{{x}}",
            "do": [],
        },
    )
    assert inside.status_code == 201, inside.text
    assert (await env.run(B, "inside", {"x": 2})).json()["output"] == 2
    refused = await env.run(B, "inside", {"x": "two"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "/arguments/x"


# --- hole 5: patterns, numbers, merges, all, budgets per run -------------------------------------


async def test_a_redos_pattern_in_arguments_is_matched_in_linear_time(env: Env) -> None:
    saved = await env.save(
        A,
        "redos",
        {
            "validateArguments": True,
            "arguments": {"s": {"type": "string", "pattern": "^(a+)+$"}},
            "output": "ok",
            "do": [],
        },
    )
    assert saved.status_code == 201, saved.text
    # Python's re backtracks 2^50000 ways here; RE2 answers at once.
    refused = await env.run(A, "redos", {"s": "a" * 50_000 + "!"})
    assert refused.status_code == 422
    assert "does not match" in problem_pointers(refused)["/arguments/s"]
    assert (await env.run(A, "redos", {"s": "aaa"})).json()["output"] == "ok"
    # A pattern that needs backtracking to mean anything is refused where it is written.
    backreference = await env.save(
        A, "backref", {"arguments": {"s": {"pattern": "^(a)\\1$"}}, "do": []}
    )
    assert backreference.status_code == 422
    assert "RE2" in problem_pointers(backreference)["/body/arguments/s/pattern"]
    assert not await env.exists(A, "backref")


async def test_a_40000_digit_number_through_a_real_webhook_is_compared_at_once(env: Env) -> None:
    nodes = {
        "hook": {"component": "core.webhook"},
        "check": {"component": "core.condition", "properties": {"expression": "payload.n == 1"}},
        "yes": {"component": "core.log", "properties": {"message": "equal"}},
        "no": {"component": "core.log", "properties": {"message": "different"}},
    }
    connections = [
        {"from": "hook", "to": "check"},
        {"from": "check", "from_port": "true", "to": "yes"},
        {"from": "check", "from_port": "false", "to": "no"},
    ]
    definition = {"nodes": nodes, "connections": connections}
    flow_id = await running_flow(env.client, env.headers, A, definition, name="digits")
    # No bearer token: the webhook is reachable by anyone who knows its address. Before the fix,
    # reading this string as a number took ~37 s of the event loop (quadratic backtracking).
    for n in ("1" * 40_000 + "x", "1"):
        hooked = await env.client.post(f"/v1/hooks/{A}/{flow_id}/hook", json={"n": n})
        assert hooked.status_code == 202, hooked.text

    async def logs() -> list[Any]:
        return await node_log_entries(env.app, flow_id)

    async def both_routed() -> bool:
        return sorted(await logs()) == ["different", "equal"]

    await eventually(both_routed)


async def test_merge_doubling_is_stopped_by_the_collection_budget_and_b_runs_on(env: Env) -> None:
    doubling = {
        "do": [
            {"set": {"name": "list", "value": [1]}},
            # 2^60 items before the fix: memory exhaustion long before the loop ends.
            {
                "repeat": {
                    "until": 60,
                    "do": [{"set": {"name": "list", "type": "merge", "value": "{{list}}"}}],
                }
            },
        ],
        "output": "{{list.length}}",
    }
    assert (await env.save(A, "doubling", doubling)).status_code == 201
    assert (await env.save(B, "doubling", doubling)).status_code == 201
    refused = await env.run(A, "doubling")
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/automation-budget-exceeded")
    detail = refused.json()["detail"]
    assert "max_collection_items" in detail
    assert "MODYARD_AUTOMATION_MAX_COLLECTION_ITEMS" in detail
    assert "/do/1/repeat/do/0/set" in problem_pointers(refused)
    # A's exhausted run changed nothing for B: B's own small merges run to the end.
    small = {
        "do": [
            {"set": {"name": "list", "value": [1]}},
            {
                "repeat": {
                    "until": 10,
                    "do": [{"set": {"name": "list", "type": "merge", "value": "{{list}}"}}],
                }
            },
        ],
        "output": "{{list.length}}",
    }
    assert (await env.save(B, "small", small)).status_code == 201
    answer = await env.run(B, "small")
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == 1024


async def test_nested_copies_are_stopped_by_the_value_budget(env: Env) -> None:
    # Each step holds the previous value twice: tiny in memory, 2^40 leaves as JSON.
    tree = {
        "do": [
            {"set": {"name": "t", "value": [1]}},
            {"repeat": {"until": 40, "do": [{"set": {"name": "t", "value": ["{{t}}", "{{t}}"]}}]}},
        ],
        "output": "{{t}}",
    }
    assert (await env.save(A, "tree", tree)).status_code == 201
    refused = await env.run(A, "tree")
    assert refused.status_code == 422
    assert "max_value_bytes" in refused.json()["detail"]
    text = {
        "do": [
            {"set": {"name": "t", "value": [1]}},
            {"repeat": {"until": 40, "do": [{"set": {"name": "t", "value": ["{{t}}", "{{t}}"]}}]}},
        ],
        "output": "as text: {{t}}",
    }
    assert (await env.save(A, "tree-text", text)).status_code == 201
    assert (await env.run(A, "tree-text")).status_code == 422


async def test_all_is_bounded_in_branches_and_by_the_step_budget(env: Env) -> None:
    # One all with 200 branches: each would be a task running at once.
    wide = {
        "do": [{"all": [{"set": {"name": f"v{i}", "value": i}} for i in range(200)]}],
        "output": "done",
    }
    assert (await env.save(A, "wide", wide)).status_code == 201
    refused = await env.run(A, "wide")
    assert refused.status_code == 422
    assert "max_parallel" in refused.json()["detail"]
    # Recursion through all: every level runs two branches that call the automation again
    # (2^16 tasks at once before the fix, bounded only by the call depth).
    recursive = {
        "do": [{"all": [{"recursive": {}}, {"recursive": {}}]}],
    }
    assert (await env.save(A, "recursive", recursive)).status_code == 201
    stopped = await env.run(A, "recursive")
    assert stopped.status_code == 422
    assert "max_parallel" in stopped.json()["detail"]
    narrow = {
        "do": [{"all": [{"set": {"name": "a", "value": 1}}, {"set": {"name": "b", "value": 2}}]}],
        "output": "{{a}}{{b}}",
    }
    assert (await env.save(B, "narrow", narrow)).status_code == 201
    assert (await env.run(B, "narrow")).json()["output"] == "12"


async def test_a_busy_run_of_one_workspace_does_not_stall_the_others(env: Env) -> None:
    # A: 100,000 instructions of nothing much, until the step budget stops it. B's run goes on
    # meanwhile and finishes first: A yields the event loop between its instructions.
    busy = {
        "do": [
            {
                "repeat": {
                    "until": 1000,
                    "do": [
                        {
                            "repeat": {
                                "until": 1000,
                                "do": [{"set": {"name": "x", "value": "{{$index}}"}}],
                            }
                        }
                    ],
                }
            }
        ]
    }
    assert (await env.save(A, "busy", busy)).status_code == 201
    assert (await env.save(B, "quick", {"do": [], "output": "quick"})).status_code == 201
    finished: list[str] = []

    async def run_busy() -> httpx.Response:
        response = await env.run(A, "busy")
        finished.append(A)
        return response

    async def run_quick() -> httpx.Response:
        await asyncio.sleep(0.05)
        response = await env.run(B, "quick")
        finished.append(B)
        return response

    busy_answer, quick_answer = await asyncio.gather(run_busy(), run_quick())
    assert quick_answer.json()["output"] == "quick"
    assert busy_answer.status_code == 422
    assert "max_steps" in busy_answer.json()["detail"]
    assert finished == [B, A]
    # repeat until a trillion is refused without listing a trillion numbers first.
    huge = {"do": [{"repeat": {"until": 10**12, "do": []}}]}
    assert (await env.save(A, "huge", huge)).status_code == 201
    refused = await env.run(A, "huge")
    assert refused.status_code == 422
    assert "max_repeat" in refused.json()["detail"]


# --- the time budgets, with small settings (no infrastructure needed) ---------------------------


class SleepyHost:
    """A host whose waits last their whole timeout (nothing ever answers)."""

    async def emit(
        self, program: Program, event: str, payload: Any, run: Mapping[str, Any]
    ) -> None:
        return None

    async def wait(
        self, program: Program, events: list[str], filters: list[dict[str, Any]], timeout: float
    ) -> dict[str, Any] | None:
        await asyncio.sleep(timeout)
        return None


def program_of(definition: dict[str, Any]) -> Program:
    return Program(workspace="ws", automations={"main": compile_automation("main", definition)})


async def test_the_compute_budget_stops_a_run_that_evaluates_too_long() -> None:
    # Each step copies 2 MB of text: about a second of evaluation, twenty times the budget.
    definition = {
        "do": [
            {
                "repeat": {
                    "until": 1000,
                    "do": [{"set": {"name": "x", "value": "{{body.big}}-{{body.big}}"}}],
                }
            }
        ],
        "output": "done",
    }
    program = program_of(definition)
    interpreter = Interpreter(SleepyHost(), budgets=AutomationBudgets(max_compute_seconds=0.05))
    with pytest.raises(BudgetExceeded) as caught:
        await interpreter.run(program, program.automations["main"], body={"big": "x" * 1_000_000})
    assert caught.value.budget == "max_compute_seconds"
    assert "MODYARD_AUTOMATION_MAX_COMPUTE_SECONDS" in caught.value.message
    # The same run with the default budget goes through.
    small = await Interpreter(SleepyHost()).run(
        program, program.automations["main"], body={"big": "x" * 10}
    )
    assert small.output == "done"


async def test_the_run_time_budget_ends_a_run_sitting_in_waits() -> None:
    # Waits of up to 300 s each, one after the other: hours before the fix.
    definition = {
        "do": [
            {
                "repeat": {
                    "until": 100,
                    "do": [{"wait": {"oneOf": [{"event": "never"}], "timeout": 300}}],
                }
            }
        ]
    }
    program = program_of(definition)
    interpreter = Interpreter(SleepyHost(), budgets=AutomationBudgets(max_run_seconds=0.2))
    with pytest.raises(BudgetExceeded) as caught:
        await interpreter.run(program, program.automations["main"])
    assert caught.value.budget == "max_run_seconds"


def test_an_expression_joining_huge_lists_is_refused_not_run_for_seconds() -> None:
    # ~100 comparisons, each joining a 200,000-item list as JavaScript would: 12 s before.
    expression = " || ".join(["payload.l == 'x'"] * 99)
    with pytest.raises(ExpressionError) as caught:
        evaluate_value(expression, {"payload": {"l": ["ab"] * 200_000}})
    assert str(MAX_COERCED_ITEMS) in caught.value.reason
    assert evaluate_value(expression, {"payload": {"l": ["ab"] * 100}}) is False
