"""``modyard workspaces …`` against a real installer process: a new user's first steps without
curl, each refusal told in words, and a member of one workspace unable to touch another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modyard.common.settings import CommonSettings
from modyard.common.tokens import Role, mint_token
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import run_modyard as modyard
from modyard.testing.services import service_process

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def services(infra: IsolatedInfra) -> AsyncIterator[dict[str, str]]:
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_cli_workspaces"}
    async with service_process("registry", registry_env) as registry:
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": "installer_cli_workspaces",
            "MODYARD_REGISTRY_URL": registry.url,
        }
        async with service_process("installer", installer_env) as installer:
            yield {"MODYARD_REGISTRY_URL": registry.url, "MODYARD_INSTALLER_URL": installer.url}


def as_user(services: dict[str, str], subject: str, *workspaces: str) -> dict[str, str]:
    token = mint_token(
        CommonSettings(), subject=subject, roles=[Role.user], workspaces=list(workspaces)
    )
    return {**services, "MODYARD_TOKEN": token}


async def test_create_list_show_members_and_delete_from_the_command_line(
    services: dict[str, str],
) -> None:
    created, _ = await modyard(
        services, "workspaces", "create", "acme", "--name", "Acme", "-m", "ann@acme.test", "--json"
    )
    assert (created["slug"], created["name"]) == ("acme", "Acme")
    assert [(m["subject"], m["role"]) for m in created["members"]] == [("ann@acme.test", "member")]

    listed, _ = await modyard(services, "workspaces", "list", "--json")
    assert "acme" in [item["slug"] for item in listed]
    text, _ = await modyard(services, "workspaces", "list")
    assert "acme" in text
    assert "ann@acme.test" in text

    add = ("workspaces", "members", "add", "acme", "bob@acme.test", "--role", "publisher")
    added, _ = await modyard(services, *add, "--json")
    assert {m["subject"]: m["role"] for m in added["members"]} == {
        "ann@acme.test": "member",
        "bob@acme.test": "publisher",
    }
    removed, _ = await modyard(
        services, "workspaces", "members", "remove", "acme", "ann@acme.test", "--json"
    )
    assert [m["subject"] for m in removed["members"]] == ["bob@acme.test"]
    shown, _ = await modyard(services, "workspaces", "show", "acme", "--json")
    assert [m["subject"] for m in shown["members"]] == ["bob@acme.test"]
    said, _ = await modyard(services, "workspaces", "show", "acme")
    assert "bob@acme.test (publisher)" in said

    deleted, _ = await modyard(services, "workspaces", "delete", "acme", "--json")
    assert deleted == {"slug": "acme", "deleted": True}
    _, stderr = await modyard(services, "workspaces", "show", "acme", expect=1)
    assert "404 not-found: There is no workspace 'acme'" in " ".join(stderr.split())


async def test_refusals_are_told_in_words_and_change_nothing(
    services: dict[str, str], tmp_path: Path
) -> None:
    await modyard(services, "workspaces", "create", "busy", "--json")
    _, stderr = await modyard(services, "workspaces", "create", "busy", expect=1)
    assert "409" in stderr
    assert "busy" in stderr

    _, stderr = await modyard(services, "workspaces", "create", "Not A Slug", expect=1)
    words = " ".join(stderr.split())
    assert "/body/slug" in words
    assert "422" in words
    _, stderr = await modyard(
        services, "workspaces", "members", "add", "busy", "x@acme.test", "--role", "boss", expect=1
    )
    assert "/body/role" in stderr

    # A workspace with an installation is not deleted; the message says why.
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "modyard.yaml").write_text("name: tiny\nversion: 1.0.0\nkind: package\n")
    await modyard(services, "publish", str(folder), "--json")
    await modyard(services, "install", "tiny", "-w", "busy", "--json")
    _, stderr = await modyard(services, "workspaces", "delete", "busy", expect=1)
    assert "409 workspace-not-empty" in " ".join(stderr.split())
    listed, _ = await modyard(services, "workspaces", "list", "--json")
    assert [item["slug"] for item in listed].count("busy") == 1
    shown, _ = await modyard(services, "workspaces", "show", "busy", "--json")
    assert shown["members"] == []


async def test_a_member_of_one_workspace_cannot_see_or_change_another(
    services: dict[str, str],
) -> None:
    for slug, member in (("north", "nina@north.test"), ("south", "sam@south.test")):
        await modyard(services, "workspaces", "create", slug, "-m", member, "--json")
    nina = as_user(services, "nina@north.test", "north")

    mine, _ = await modyard(nina, "workspaces", "list", "--json")
    assert [item["slug"] for item in mine] == ["north"]
    _, stderr = await modyard(nina, "workspaces", "show", "south", expect=1)
    assert "403" in stderr
    join = ("workspaces", "members", "add", "south", "nina@north.test")
    _, stderr = await modyard(nina, *join, expect=1)
    assert "403" in stderr
    _, stderr = await modyard(nina, "workspaces", "delete", "south", expect=1)
    assert "403" in stderr
    _, stderr = await modyard(nina, "workspaces", "create", "nina-own", expect=1)
    assert "403" in stderr

    south, _ = await modyard(services, "workspaces", "show", "south", "--json")
    assert [m["subject"] for m in south["members"]] == ["sam@south.test"]
    everything, _ = await modyard(services, "workspaces", "list", "--json")
    assert "nina-own" not in [item["slug"] for item in everything]


async def test_an_unreachable_installer_is_named_with_the_setting_to_fix(
    services: dict[str, str],
) -> None:
    gone = {**services, "MODYARD_INSTALLER_URL": "http://127.0.0.1:9"}
    _, stderr = await modyard(gone, "workspaces", "list", expect=1)
    words = " ".join(stderr.split())
    assert "cannot reach http://127.0.0.1:9/" in words
    assert "MODYARD_INSTALLER_URL" in words


async def test_components_gives_the_ref_a_flow_node_takes_for_a_dotted_default_slug(
    services: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "weather"
    folder.mkdir()
    (folder / "modyard.yaml").write_text(
        "name: acme.weather\nversion: 1.0.0\nkind: connector\ncomponents:\n"
        "  - {name: acme.weather.forecast.GetForecast, role: action, executor: {type: amqp}}\n"
        "  - {name: Echo, role: action, executor: {type: amqp}}\n"
    )
    await modyard(services, "workspaces", "create", "weather-ws", "--json")
    await modyard(services, "publish", str(folder), "--json")
    installed, _ = await modyard(services, "install", "acme.weather", "-w", "weather-ws", "--json")
    assert installed["slug"] == "acme.weather"
    listed, _ = await modyard(services, "workspaces", "components", "weather-ws", "--json")
    assert sorted(item["ref"] for item in listed) == [
        "acme.weather.Echo",
        "acme.weather.forecast.GetForecast",
    ]
    table, _ = await modyard(services, "workspaces", "components", "weather-ws")
    assert "acme.weather.forecast.GetForecast" in table
    # Nobody was granted the module: a user sees none of it.
    nobody, _ = await modyard(
        services, "workspaces", "components", "weather-ws", "--as", "x@acme.test", "--json"
    )
    assert nobody == []
