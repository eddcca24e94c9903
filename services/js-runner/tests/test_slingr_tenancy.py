"""A Slingr package's script-level state stays with its installation (live: the real sandboxed
child and its worker threads).

A child serves one package version to every workspace. Packages build things from their
configuration once and keep them in script-level variables (look-alike ``fixtures/slingr/keeper``:
an auth header), which is safe on Slingr, where each app has its own package runtime. With one
context per worker, workspace B's header served workspace A's next call (the tenancy probe of
2026-12-07); each installation now has a context of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsrunner_env import Harness, runner_settings, running_harness
from slingr_env import add_package, step


@pytest.fixture(scope="module")
async def slingr(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    # One worker thread: every call meets the same worker, as the probe's calls did.
    settings = runner_settings(slingr_workers=1)
    async with running_harness(settings, tmp_path_factory.mktemp("slingr-tenancy")) as harness:
        yield harness


async def _whoami(slingr: Harness, module: str, workspace: str, token: str) -> dict[str, Any]:
    answer = await step(
        slingr,
        module,
        "whoami",
        {},
        workspace=workspace,
        installation="keeper",
        flow_id=f"flow-{workspace}",
        node_id="who",
        config={"token": token},
    )
    assert "outputs" in answer, answer
    result: dict[str, Any] = answer["outputs"]["out"][0]
    return result


async def test_script_state_one_workspace_built_never_serves_another(slingr: Harness) -> None:
    module = add_package(slingr, "keeper")

    b = await _whoami(slingr, module, "ws-b", "B-SECRET-TOKEN")
    a = await _whoami(slingr, module, "ws-a", "A-token")
    b_again = await _whoami(slingr, module, "ws-b", "B-SECRET-TOKEN")

    assert b == {"authorization": "Bearer B-SECRET-TOKEN", "configured": "B-SECRET-TOKEN"}
    assert a == {"authorization": "Bearer A-token", "configured": "A-token"}
    # B's own context is still B's (kept, not rebuilt per call).
    assert b_again == b
