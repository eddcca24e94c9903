"""App-instance isolation, one test per rule of seed 002 (the program tree and interpreter; the
same rules over the real broker, registry and installer are in test_apps_e2e.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from modyard.common.secrets import SecretBox
from modyard.runtime.automations.definitions import compile_automation
from modyard.runtime.automations.interpreter import AutomationError, Interpreter
from modyard.runtime.automations.models import AppInstance, AutomationWorkspace
from modyard.runtime.automations.program import Program, instance_config
from modyard.runtime.automations.programs import build_program


def program(
    path: tuple[str, ...] = (),
    automations: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    instances: dict[str, Program] | None = None,
    app: str | None = None,
) -> Program:
    return Program(
        workspace="ws",
        automations={k: compile_automation(k, v) for k, v in (automations or {}).items()},
        config=config or {},
        instances=instances or {},
        path=path,
        app=app,
        app_version="1.0.0" if app else None,
    )


class Bus:
    """Emitted events delivered in memory to the listeners of the whole tree, like the broker."""

    def __init__(self, root: Program) -> None:
        self.root = root
        self.events: list[str] = []
        self.heard: list[tuple[str, str, Any]] = []

    async def emit(
        self, program: Program, event: str, payload: Any, run: Mapping[str, Any]
    ) -> None:
        self.events.append(event)
        for listener, automation in list(self.root.listeners(event)):
            self.heard.append((".".join(listener.path), automation.slug, payload))
            await Interpreter(self).run(listener, automation, payload=payload)

    async def wait(self, *args: Any) -> None:
        return None


def toolbox_tree() -> Program:
    toolbox = program(
        ("toolbox",),
        {
            "execute": {
                "when": {"endpoint": True},
                "output": "{{config}}",
                "do": [{"emit": {"event": "executed", "payload": {"ok": True}}}],
            },
            "helper": {"private": True, "output": "helped", "do": []},
            "usesHelper": {"output": "{{h}}", "do": [{"helper": {"output": "h"}}]},
            "callsParent": {"do": [{"parentOnly": {}}]},
            "callsSibling": {"do": [{"other.execute": {}}]},
            "onPing": {
                "when": {"events": ["ping"]},
                "do": [{"emit": {"event": "pong", "payload": "{{payload}}"}}],
            },
            "context": {"output": "{{run}}", "do": []},
        },
        config={"API_URL": "https://instance.test"},
        app="toolbox",
    )
    other = program(("other",), {"execute": {"output": "other", "do": []}}, app="toolbox")
    return program(
        (),
        {
            "parentOnly": {"output": "parent", "do": []},
            "onExecuted": {"when": {"events": ["toolbox.executed"]}, "do": []},
            "onPing": {"when": {"events": ["ping"]}, "do": []},
        },
        config={"PARENT_SECRET": "p"},
        instances={"toolbox": toolbox, "other": other},
    )


async def run(
    root: Program, name: str, bus: Bus | None = None, caller: Program | None = None
) -> Any:
    origin = caller or root
    target, automation = origin.find(name)
    return (await Interpreter(bus or Bus(root)).run(target, automation)).output


async def test_instance_config_is_its_own_and_never_the_parents() -> None:
    root = toolbox_tree()
    config = await run(root, "toolbox.execute")
    assert config == {"API_URL": "https://instance.test"}
    assert "PARENT_SECRET" not in config


def test_instance_config_falls_back_to_app_config_env_and_instance_taking_precedence() -> None:
    config = instance_config(
        "openai",
        {"API_URL": "https://app.default", "MODEL": "small", "TIMEOUT": 5},
        {"MODEL": "large"},
        {"APP_CONFIG_openai_API_KEY": "from-env", "APP_CONFIG_openai_MODEL": "env-model",
         "APP_CONFIG_other_X": "not ours", "APP_CONFIG_openai_TIMEOUT": "9"},
    )  # fmt: skip
    assert config == {
        "API_URL": "https://app.default",  # left undefined: the app's own config
        "API_KEY": "from-env",  # the environment, for the app's slug
        "MODEL": "large",  # the instance's own config wins over the environment
        "TIMEOUT": 9,  # JSON in variables is read as JSON
    }


async def test_instance_cannot_call_parent_automations() -> None:
    root = toolbox_tree()
    with pytest.raises(AutomationError) as caught:
        await run(root, "toolbox.callsParent")
    assert caught.value.status == 404


async def test_instance_cannot_call_sibling_instances() -> None:
    root = toolbox_tree()
    assert await run(root, "other.execute") == "other"  # the parent can
    with pytest.raises(AutomationError) as caught:
        await run(root, "toolbox.callsSibling")
    assert caught.value.status == 404


async def test_private_automations_answer_only_their_own_app() -> None:
    root = toolbox_tree()
    assert await run(root, "toolbox.usesHelper") == "helped"
    with pytest.raises(PermissionError):
        root.find("toolbox.helper")
    parent_call = program((), {"main": {"do": [{"toolbox.helper": {}}]}})
    parent_call.instances = root.instances
    with pytest.raises(AutomationError) as caught:
        await run(parent_call, "main")
    assert caught.value.status == 403


async def test_emit_in_an_instance_is_prefixed_and_the_parent_hears_the_full_name() -> None:
    root = toolbox_tree()
    bus = Bus(root)
    await run(root, "toolbox.execute", bus)
    assert bus.events == ["toolbox.executed"]
    assert [(who, slug) for who, slug, _ in bus.heard] == [("", "onExecuted")]


async def test_parent_triggers_an_instance_by_emitting_its_full_name() -> None:
    root = toolbox_tree()
    bus = Bus(root)
    sender = program((), {"send": {"do": [{"emit": {"event": "toolbox.ping", "payload": 1}}]}})
    sender.instances = root.instances
    await run(sender, "send", bus)
    assert bus.events == ["toolbox.ping", "toolbox.pong"]
    assert ("toolbox", "onPing", 1) in bus.heard


async def test_instance_never_hears_the_parents_events() -> None:
    root = toolbox_tree()
    bus = Bus(root)
    sender = program((), {"send": {"do": [{"emit": {"event": "ping", "payload": 1}}]}})
    sender.instances = root.instances
    await run(sender, "send", bus)
    assert bus.events == ["ping"]
    assert [(who, slug) for who, slug, _ in bus.heard] == [("", "onPing")]


def test_endpoints_are_namespaced_by_the_instance() -> None:
    root = toolbox_tree()
    found = root.endpoint("toolbox.execute")
    assert found is not None
    assert found[1].slug == "execute"
    assert root.endpoint("execute") is None


async def test_run_context_says_whether_and_in_which_instance() -> None:
    root = toolbox_tree()
    context = await run(root, "toolbox.context")
    assert context["appInstance"] == {
        "slug": "toolbox",
        "fullSlug": "toolbox",
        "app": "toolbox",
        "appVersion": "1.0.0",
        "parents": [],
    }


def nested_tree() -> Program:
    french = program(
        ("nlu", "french"),
        {
            "embed": {"output": [1, 2], "do": [{"emit": {"event": "processed"}}]},
            "reachUp": {"do": [{"parse": {}}]},
        },
        app="french",
    )
    nlu = program(
        ("nlu",),
        {
            "parse": {"output": "{{e}}", "do": [{"french.embed": {"output": "e"}}]},
            "onFrench": {"when": {"events": ["french.processed"]}, "do": []},
        },
        instances={"french": french},
        app="nlu",
    )
    return program(
        (),
        {"onNested": {"when": {"events": ["nlu.french.processed"]}, "do": []}},
        instances={"nlu": nlu},
    )


async def test_nested_apps_chatbot_nlu_french() -> None:
    root = nested_tree()
    bus = Bus(root)
    assert await run(root, "nlu.parse", bus) == [1, 2]  # Chatbot calls nlu …
    assert await run(root, "nlu.french.embed", bus) == [1, 2]  # … and french
    assert bus.events == ["nlu.french.processed", "nlu.french.processed"]
    heard = {(who, slug) for who, slug, _ in bus.heard}
    assert heard == {("", "onNested"), ("nlu", "onFrench")}
    with pytest.raises(AutomationError):  # french reaches nothing above it
        await run(root, "nlu.french.reachUp", bus)
    french = root.instance(("nlu", "french"))
    assert french.run_context()["appInstance"]["fullSlug"] == "nlu.french"


def test_instances_are_built_from_the_installers_rows_with_config_layers() -> None:
    """The runtime's tree from stored rows: nested by slug, the import's templated config read
    from the parent's config, the app's own config under the instance's, secrets known."""
    box = SecretBox([SecretBox.generate_key()])
    settings = AutomationWorkspace(
        workspace="chatbot",
        config_schema={"API_KEY": {"type": "string", "secret": True}},
        config_value={"API_KEY": {"$sealed": box.encrypt_json("parent-key-1234")}},
    )

    def manifest(slug: str, value: dict[str, Any], secret: list[str]) -> dict[str, Any]:
        return {
            "name": slug,
            "automations": [{"slug": "run", "do": [], "output": "{{config}}"}],
            "config": {"fields": [{"name": name, "secret": True} for name in secret]},
            "extra": {"prismeai": {"slug": slug, "config_value": value}},
        }

    nlu = AppInstance(
        workspace="chatbot",
        slug="nlu",
        module="nlu",
        version="1.2.0",
        pinned=False,
        manifest=manifest("nlu", {"API_KEY": "", "language": "fr"}, ["API_KEY"]),
        config={"language": "en"},
        secrets=box.encrypt_json({"API_KEY": "nlu-key-5678"}),
    )
    french = AppInstance(
        workspace="chatbot",
        slug="nlu.french",
        module="french",
        version="3.0.0",
        pinned=True,
        manifest=manifest("french", {"dimensions": 512, "model": "base"}, []),
        config={"dimensions": 768, "API_KEY": "{{config.API_KEY}}"},
        secrets=None,
    )
    orphan = AppInstance(
        workspace="chatbot",
        slug="gone.child",
        module="x",
        version="1.0.0",
        pinned=False,
        manifest=manifest("x", {}, []),
        config={},
        secrets=None,
    )
    root = build_program("chatbot", settings, [], [french, orphan, nlu], box)
    assert root.config == {"API_KEY": "parent-key-1234"}
    assert set(root.instances) == {"nlu"}  # the orphan has no parent to sit in
    nlu_program = root.instances["nlu"]
    assert nlu_program.config == {"API_KEY": "nlu-key-5678", "language": "en"}
    assert "nlu-key-5678" in nlu_program.secrets
    french_program = nlu_program.instances["french"]
    assert french_program.path == ("nlu", "french")
    assert french_program.pinned
    # Its own values, the app's defaults for the rest, the import's template read over nlu's.
    assert french_program.config == {"dimensions": 768, "model": "base", "API_KEY": "nlu-key-5678"}
