"""The automation language, instruction by instruction (no infrastructure: a fake host, and a
local aiohttp server for fetch)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp import web

from modyard.modules.formats.prismeai import ENDPOINT_NAME, NATIVE_INSTRUCTIONS
from modyard.runtime.automations.definitions import (
    ENDPOINT,
    INSTRUCTIONS,
    DefinitionError,
    compile_automation,
)
from modyard.runtime.automations.interpreter import (
    MAX_REPEAT,
    ArgumentsInvalid,
    AutomationError,
    Interpreter,
)
from modyard.runtime.automations.program import Program


class FakeHost:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.waiting: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def emit(
        self, program: Program, event: str, payload: Any, run: Mapping[str, Any]
    ) -> None:
        self.events.append((event, payload))

    async def wait(
        self, program: Program, events: list[str], filters: list[dict[str, Any]], timeout: float
    ) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await self.waiting.get()
                    if event["type"] in events:
                        return event
        except TimeoutError:
            return None


def program_with(automations: dict[str, Any], **kwargs: Any) -> Program:
    return Program(
        workspace="ws",
        automations={slug: compile_automation(slug, doc) for slug, doc in automations.items()},
        **kwargs,
    )


async def run(
    automations: dict[str, Any], name: str = "main", host: FakeHost | None = None, **kwargs: Any
) -> Any:
    program = program_with(automations, config=kwargs.pop("config", {}))
    interpreter = Interpreter(host or FakeHost())
    return (await interpreter.run(program, program.automations[name], **kwargs)).output


async def test_set_writes_variables_nested_paths_push_and_merge() -> None:
    output = await run(
        {
            "main": {
                "output": "{{result}}",
                "do": [
                    {"set": {"name": "result.user.name", "value": "{{body.name}}"}},
                    {"set": {"name": "result.tags", "value": "a", "type": "push"}},
                    {"set": {"name": "result.tags", "value": "b", "type": "push"}},
                    {"set": {"name": "result.user", "value": {"age": 3}, "type": "merge"}},
                    {"set": {"name": "result.count", "value": "{{body.count}}"}},
                ],
            }
        },
        body={"name": "Ada", "count": 2},
    )
    assert output == {"user": {"name": "Ada", "age": 3}, "tags": ["a", "b"], "count": 2}


async def test_set_refuses_read_only_scopes_when_saved() -> None:
    with pytest.raises(DefinitionError) as caught:
        compile_automation("x", {"do": [{"set": {"name": "config.key", "value": 1}}]})
    assert caught.value.problems[0][0] == "/do/0/set/name"


async def test_delete_removes_a_variable_or_key() -> None:
    output = await run(
        {
            "main": {
                "output": "{{a}}",
                "do": [
                    {"set": {"name": "a", "value": {"keep": 1, "drop": 2}}},
                    {"delete": {"name": "a.drop"}},
                ],
            }
        }
    )
    assert output == {"keep": 1}


async def test_unset_declared_variable_reads_null_and_an_undeclared_name_is_undefined() -> None:
    assert await run({"main": {"output": "{{later}}", "do": [
        {"conditions": {"false": [{"set": {"name": "later", "value": 1}}]}}
    ]}}) is None  # fmt: skip
    # Prisme.ai reads a name nobody sets as undefined ('{{installations}} > 1' takes the
    # default branch): kept as a hint, not refused.
    automation = compile_automation(
        "x",
        {
            "output": {"count": "{{nowhere}}", "branch": "{{branch}}"},
            "do": [
                {
                    "conditions": {
                        "{{installations}} > 1": [{"set": {"name": "branch", "value": "many"}}],
                        "default": [{"set": {"name": "branch", "value": "default"}}],
                    }
                }
            ],
        },
    )
    assert automation.undeclared == {"nowhere", "installations"}
    program = Program(workspace="ws", automations={"x": automation})
    result = await Interpreter(FakeHost()).run(program, automation)
    assert result.output == {"count": None, "branch": "default"}
    # Junk is still refused, with its pointer.
    with pytest.raises(DefinitionError) as caught:
        compile_automation("x", {"output": "{{nowhere +}}", "do": []})
    assert caught.value.problems[0][0] == "/output"


async def test_emit_renders_payload_and_masks_secrets() -> None:
    host = FakeHost()
    program = Program(
        workspace="ws",
        automations={
            "main": compile_automation(
                "main",
                {
                    "do": [
                        {
                            "emit": {
                                "event": "sent.{{body.kind}}",
                                "payload": {
                                    "auth": "Bearer {{config.TOKEN}}",
                                    "url": "{{config.URL}}",
                                },
                            }
                        }
                    ]
                },
            )
        },
        config={"TOKEN": "s3cr3t-token", "URL": "https://x.test"},
        secrets=frozenset({"s3cr3t-token"}),
    )
    await Interpreter(host).run(program, program.automations["main"], body={"kind": "mail"})
    assert host.events == [("sent.mail", {"auth": "Bearer [redacted]", "url": "https://x.test"})]


async def test_errors_mask_secrets_too() -> None:
    program = Program(
        workspace="ws",
        automations={
            "main": compile_automation(
                "main", {"do": [{"fetch": {"url": "ftp://{{config.TOKEN}}"}}]}
            )
        },
        config={"TOKEN": "s3cr3t-token"},
        secrets=frozenset({"s3cr3t-token"}),
    )
    with pytest.raises(AutomationError) as caught:
        await Interpreter(FakeHost()).run(program, program.automations["main"])
    assert "s3cr3t-token" not in str(caught.value)
    assert caught.value.pointer == "/do/0/fetch/url"


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response(
            {
                "method": request.method,
                "query": dict(request.query),
                "auth": request.headers.get("Authorization"),
                "body": body,
            },
            status=201 if request.method == "POST" else 200,
        )

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "nope"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_fetch_sends_rendered_request_and_stores_answer(server: str) -> None:
    interpreter = Interpreter(FakeHost())
    program = program_with(
        {
            "main": {
                "output": {"plain": "{{answer}}", "detailed": "{{detailed.status}}"},
                "do": [
                    {
                        "fetch": {
                            "url": "{{config.API}}/echo",
                            "method": "post",
                            "query": {"q": "{{body.q}}"},
                            "headers": {"Authorization": "Bearer {{config.KEY}}"},
                            "body": {"n": "{{body.n}}"},
                            "output": "answer",
                        }
                    },
                    {
                        "fetch": {
                            "url": "{{config.API}}/missing",
                            "outputMode": "detailed_response",
                            "output": "detailed",
                        }
                    },
                ],
            }
        },
        config={"API": server, "KEY": "k"},
    )
    try:
        result = await interpreter.run(
            program, program.automations["main"], body={"q": "x", "n": 4}
        )
    finally:
        await interpreter.fetcher.aclose()
    assert result.output == {
        "plain": {"method": "POST", "query": {"q": "x"}, "auth": "Bearer k", "body": {"n": 4}},
        "detailed": 404,
    }


async def test_fetch_refuses_non_http_urls() -> None:
    with pytest.raises(AutomationError) as caught:
        await run({"main": {"do": [{"fetch": {"url": "file:///etc/passwd"}}]}})
    assert "http" in caught.value.message


async def test_conditions_take_first_true_branch_else_default() -> None:
    automation = {
        "output": "{{branch}}",
        "do": [
            {
                "conditions": {
                    "{{body.score}} < {{config.threshold}}": [
                        {"set": {"name": "branch", "value": "low"}}
                    ],
                    "body.score >= 10": [{"set": {"name": "branch", "value": "high"}}],
                    "default": [{"set": {"name": "branch", "value": "middle"}}],
                }
            }
        ],
    }
    config = {"threshold": 5}
    assert await run({"main": automation}, body={"score": 1}, config=config) == "low"
    assert await run({"main": automation}, body={"score": 12}, config=config) == "high"
    assert await run({"main": automation}, body={"score": 7}, config=config) == "middle"


async def test_repeat_on_a_list_and_until_a_count_with_break() -> None:
    output = await run(
        {
            "main": {
                "output": "{{seen}}",
                "do": [
                    {
                        "repeat": {
                            "on": "{{body.items}}",
                            "do": [
                                {"conditions": {"item == 'stop'": [{"break": {}}]}},
                                {"set": {"name": "seen", "value": "{{item}}", "type": "push"}},
                            ],
                        }
                    },
                    {
                        "repeat": {
                            "until": 2,
                            "do": [
                                {"set": {"name": "seen", "value": "{{$index}}", "type": "push"}}
                            ],
                        }
                    },
                ],
            }
        },
        body={"items": ["a", "b", "stop", "c"]},
    )
    assert output == ["a", "b", 0, 1]


async def test_repeat_is_capped() -> None:
    with pytest.raises(AutomationError) as caught:
        await run(
            {"main": {"do": [{"repeat": {"until": MAX_REPEAT + 1, "do": []}}]}},
        )
    assert str(MAX_REPEAT) in caught.value.message


async def test_break_outside_a_loop_ends_the_automation() -> None:
    output = await run(
        {
            "main": {
                "output": "{{x}}",
                "do": [
                    {"set": {"name": "x", "value": 1}},
                    {"break": {}},
                    {"set": {"name": "x", "value": 2}},
                ],
            }
        }
    )
    assert output == 1


async def test_wait_returns_the_event_or_null_after_timeout() -> None:
    host = FakeHost()
    automation = {
        "output": "{{got}}",
        "do": [{"wait": {"oneOf": [{"event": "done"}], "timeout": 0.2, "output": "got"}}],
    }
    task = asyncio.create_task(run({"main": automation}, host=host))
    await host.waiting.put({"type": "other", "payload": {}})
    await host.waiting.put({"type": "done", "payload": {"ok": True}})
    assert await asyncio.wait_for(task, 5) == {"type": "done", "payload": {"ok": True}}
    assert await run({"main": automation}, host=host) is None


async def test_calls_pass_arguments_and_return_output() -> None:
    output = await run(
        {
            "main": {
                "output": "{{greeting}}",
                "do": [{"greet": {"name": "{{body.who}}", "output": "greeting"}}],
            },
            "greet": {
                "arguments": {"name": {"type": "string"}},
                "output": "Hello {{name}}",
                "do": [],
            },
        },
        body={"who": "Ada"},
    )
    assert output == "Hello Ada"


async def test_call_arguments_are_validated_against_the_schema() -> None:
    with pytest.raises(ArgumentsInvalid) as caught:
        await run(
            {
                "main": {"do": [{"greet": {"name": 42}}]},
                "greet": {
                    "validateArguments": True,
                    "arguments": {"name": {"type": "string"}},
                    "do": [],
                },
            }
        )
    assert caught.value.problems == [("/name", "42 is not of type 'string'")]
    assert caught.value.pointer == "/do/0/greet"


async def test_run_arguments_are_validated_too() -> None:
    with pytest.raises(ArgumentsInvalid):
        await run(
            {"main": {"validateArguments": True, "arguments": {"n": {"type": "number"}}, "do": []}},
            arguments={"n": "x"},
        )


async def test_arguments_are_only_checked_with_validate_arguments_and_undefined_is_left_out() -> (
    None
):
    # Prisme.ai: "validateArguments — when true, the runtime rejects calls whose inputs do not
    # match"; a call's argument computed to undefined is not sent (JSON drops it).
    automations = {
        "main": {
            "output": {"loose": "{{loose}}", "strict": "{{strict}}"},
            "do": [
                {"loose": {"count": 3, "output": "loose"}},
                {"strict": {"apiVersion": "{{config.apiVersion}}", "output": "strict"}},
            ],
        },
        "loose": {"arguments": {"count": {"type": "string"}}, "output": "{{count}}", "do": []},
        "strict": {
            "validateArguments": True,
            "arguments": {"apiVersion": {"type": "string"}},
            "output": "v={{apiVersion}}",
            "do": [],
        },
    }
    assert await run(automations) == {"loose": 3, "strict": "v="}
    with pytest.raises(ArgumentsInvalid):
        await run(automations, config={"apiVersion": 2})


async def test_unknown_instruction_is_refused_at_run_time() -> None:
    with pytest.raises(AutomationError) as caught:
        await run({"main": {"do": [{"nowhere": {}}]}})
    assert caught.value.status == 404


async def test_recursion_is_bounded() -> None:
    with pytest.raises(AutomationError) as caught:
        await run({"main": {"do": [{"main": {}}]}})
    assert "nest deeper" in caught.value.message


async def test_output_is_rendered_with_types() -> None:
    assert await run(
        {"main": {"output": {"n": "{{body.n}}", "text": "n={{body.n}}"}, "do": []}},
        body={"n": 3},
    ) == {"n": 3, "text": "n=3"}


async def test_run_context_in_a_workspace() -> None:
    output = await run({"main": {"output": "{{run}}", "do": []}})
    assert output["appInstance"] is None
    assert output["workspace"] == "ws"
    assert output["automation"] == "main"


class OverlapHost(FakeHost):
    """Counts how many waits are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most = 0

    async def wait(
        self, program: Program, events: list[str], filters: list[dict[str, Any]], timeout: float
    ) -> dict[str, Any] | None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0)  # let the other branch start
        await asyncio.sleep(0)
        self.in_flight -= 1
        return {"type": events[0], "payload": None}


async def test_all_runs_its_instructions_concurrently() -> None:
    host = OverlapHost()
    output = await run(
        {
            "main": {
                "output": ["{{a.type}}", "{{b.type}}"],
                "do": [
                    {
                        "all": [
                            {"wait": {"oneOf": [{"event": "a"}], "output": "a"}},
                            {"wait": {"oneOf": [{"event": "b"}], "output": "b"}},
                        ]
                    }
                ],
            }
        },
        host=host,
    )
    assert output == ["a", "b"]
    assert host.most == 2


async def test_a_failure_inside_all_is_reported_with_its_pointer() -> None:
    with pytest.raises(AutomationError) as caught:
        await run({"main": {"do": [{"all": [{"comment": {}}, {"fetch": {"url": "ftp://x"}}]}]}})
    assert caught.value.pointer == "/do/0/all/1/fetch/url"


async def test_set_name_with_brackets_appends() -> None:
    # Prisme.ai's Set > Array: ``name: users[]`` adds the value to the list.
    output = await run(
        {
            "main": {
                "output": {"users": "{{users}}", "tags": "{{doc.tags}}"},
                "do": [
                    {"set": {"name": "users[]", "value": {"id": 1}}},
                    {"set": {"name": "users[]", "value": {"id": 2}}},
                    {"set": {"name": "doc.tags[]", "value": "a"}},
                ],
            }
        }
    )
    assert output == {"users": [{"id": 1}, {"id": 2}], "tags": ["a"]}


async def test_without_output_an_automation_returns_an_empty_object() -> None:
    # Prisme.ai's runtime: ``automation.output ? interpolate(output) : {}``.
    assert await run({"main": {"do": []}}) == {}
    assert await run({"main": {"output": "{{missing}}", "do": []}}) is None


async def test_localized_name_and_argument_titles_are_read_in_english() -> None:
    automation = compile_automation(
        "updateProfile",
        {
            "name": {"fr": "Mettre à jour le profil", "en": "users/profile/Update profile"},
            "description": {"fr": "Met à jour"},
            "arguments": {
                "lang": {"type": "string", "title": {"fr": "Langue", "en": "Language"}},
                "tags": {"type": "array", "items": {"type": "string", "title": {"fr": "Tag"}}},
            },
            "do": [],
        },
    )
    assert automation.name == "users/profile/Update profile"
    assert automation.description == "Met à jour"
    # Saved as written: the translations stay.
    assert automation.source()["name"]["fr"] == "Mettre à jour le profil"
    assert automation.arguments["lang"]["title"] == {"fr": "Langue", "en": "Language"}


async def test_a_disabled_automation_is_never_called() -> None:
    with pytest.raises(AutomationError) as caught:
        await run({"main": {"do": [{"off": {}}]}, "off": {"disabled": True, "do": []}})
    assert caught.value.status == 404
    assert "disabled" in caught.value.message
    program = program_with({"off": {"disabled": True, "when": {"events": ["e"]}, "do": []}})
    assert list(program.listeners("e")) == []


async def test_prismeai_run_fields_and_scopes() -> None:
    program = program_with({"main": {"output": {
        "run": {
            "automationSlug": "{{run.automationSlug}}",
            "appSlug": "{{run.appSlug}}",
            "appInstanceSlug": "{{run.appInstanceSlug}}",
        },
        "global": "{{global}}",
        "source": "{{source}}",
        "query": "{{query}}",
    }, "do": []}})  # fmt: skip
    program.path, program.app_slug = ("helpdesk", "Counters"), "Collection"
    result = await Interpreter(FakeHost(), api_url="https://yard.example/").run(
        program,
        program.automations["main"],
        inputs={"source": {"automationSlug": "other"}, "query": {"page": "2"}},
    )
    assert result.output["run"] == {
        "automationSlug": "main",
        "appSlug": "Collection",
        "appInstanceSlug": "Counters",
    }
    assert result.output["global"] == {
        "workspaceId": "ws",
        "workspaceSlug": "ws",
        "apiUrl": "https://yard.example/v1",
        "endpointsUrl": "https://yard.example/v1/workspaces/ws/endpoints",
        "endpoints": {},
    }
    assert result.output["source"] == {"automationSlug": "other"}
    assert result.output["query"] == {"page": "2"}
    with pytest.raises(DefinitionError) as caught:
        compile_automation("x", {"do": [{"set": {"name": "global.apiUrl", "value": 1}}]})
    assert "read-only" in caught.value.problems[0][1]


async def test_try_runs_catch_with_the_error() -> None:
    output = await run(
        {
            "main": {
                "output": {"caught": "{{caught}}", "after": "{{after}}"},
                "do": [
                    {
                        "try": {
                            "do": [{"nowhere": {}}, {"set": {"name": "after", "value": "no"}}],
                            "catch": [{"set": {"name": "caught", "value": "{{$error.message}}"}}],
                        }
                    },
                    {"set": {"name": "after", "value": "yes"}},
                ],
            }
        }
    )
    assert "'nowhere' is neither an instruction" in output["caught"]
    assert output["after"] == "yes"
    with pytest.raises(DefinitionError) as caught:
        compile_automation("x", {"do": [{"try": {"catch": []}}]})
    assert caught.value.problems[0][0] == "/do/0/try/do"


def test_the_prismeai_format_and_the_runtime_agree_on_instructions() -> None:
    # An instruction the format takes as native but the runtime would run as a call (or the
    # reverse) is a module that packs and then fails: the two lists are one.
    assert NATIVE_INSTRUCTIONS == INSTRUCTIONS
    assert ENDPOINT_NAME.pattern == ENDPOINT.pattern


def test_endpoints_with_path_parameters_match_their_paths() -> None:
    program = program_with(
        {
            "user": {"when": {"endpoint": "v1/users/:id"}, "do": []},
            "me": {"when": {"endpoint": "v1/users/me"}, "do": []},
            "model": {"when": {"endpoint": "models/*model_id"}, "do": []},
        }
    )

    def found(path: str) -> tuple[str, dict[str, str]] | None:
        match = program.endpoint(path)
        return None if match is None else (match[1].slug, match[2])

    assert found("v1/users/42") == ("user", {"id": "42"})
    assert found("v1/users/me") == ("me", {})  # an exact name first
    assert found("models/org/llama") == ("model", {"model_id": "org/llama"})
    assert found("v1/users/42/more") is None
    assert found("v1/users") is None
    with pytest.raises(DefinitionError):
        compile_automation("x", {"when": {"endpoint": "v1/users/{id}"}, "do": []})


async def test_wait_with_a_timeout_alone_pauses() -> None:
    started = asyncio.get_running_loop().time()
    assert await run({"main": {"output": "done", "do": [{"wait": {"timeout": 0.2}}]}}) == "done"
    assert asyncio.get_running_loop().time() - started >= 0.2
