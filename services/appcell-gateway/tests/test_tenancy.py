"""Cells belong to the workspace that installed them (issue 17, hole 2).

Two workspaces each install the example cell: ``cells`` (the fixture's, called A here) and
``rivals`` (B). A token of B reaches none of A's cells, by HTTP,
over the AMQP ingress or through the UI controller, and the slots list B none of A's bundles;
each refusal leaves A's cell untouched (its worker handled nothing, and what the refused call
would have registered is not there).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from gateway_env import CONFIG, MODULE, WS, Env
from test_cells import _ingress

from examples.resellerclub_cell.cell import cell as example_cell
from modyard.sdk.cell import Worker

pytestmark = pytest.mark.infra

A = f"{WS}:rc"
RIVALS = "rivals"
B = f"{RIVALS}:rc"


@dataclass
class Rivals:
    installation_id: str
    worker: Worker


@pytest.fixture(scope="module")
async def rivals(env: Env) -> Rivals:
    """Workspace B with its own installation of the same cell, running."""
    created = await env.external(
        "POST", f"{env.installer}/v1/workspaces", json={"slug": RIVALS, "name": "Rivals"}
    )
    assert created.status_code == 201, created.text
    installed = await env.external(
        "POST",
        f"{env.installer}/v1/workspaces/{RIVALS}/installations",
        json={"module": MODULE, "slug": "rc", "config": CONFIG},
    )
    assert installed.status_code == 201, installed.text
    await env.wait_status(B, "ready")
    worker = await env.run_cell(B, example_cell)
    return Rivals(str(installed.json()["id"]), worker)  # stopped with the env's workers


def _b(env: Env, **claims: tuple[str, ...]) -> dict[str, str]:
    return env.token(workspaces=(RIVALS,), subject="rival-user", **claims)


async def _a_holds(env: Env, domain: str) -> bool:
    found = await env.call("fetch", {"domain": domain})
    assert found.status_code in (200, 404), found.text
    return found.status_code == 200


async def test_a_token_of_another_workspace_cannot_call_a_cells_protected_action(
    env: Env, rivals: Rivals
) -> None:
    a_worker = env.workers[A]
    a_id = (await env.credentials(A))["installation_id"]
    handled = a_worker.handled
    for cell in (A, a_id):
        refused = await env.call(
            "create", {"domain": "stolen.com", "years": 1}, cell=cell, headers=_b(env)
        )
        assert refused.status_code == 403, refused.text
        problem = refused.json()
        assert problem["type"].endswith("/workspace-forbidden")
        assert "workspaces" in problem["detail"]
    # A public action is no way in either, whatever products the token names.
    public = await env.call(
        "checkAvailability",
        {"domain": "stolen.com"},
        headers=_b(env, products=("cp-1",)),
        customer_product_id="cp-1",
    )
    assert public.status_code == 403, public.text
    assert a_worker.handled == handled  # the cell received nothing
    assert not await _a_holds(env, "stolen.com")
    # B's own cell, and A's cell for A's own tokens, still answer.
    own = await env.call("create", {"domain": "rival-own.com", "years": 1}, cell=B, headers=_b(env))
    assert own.status_code == 200, own.text
    assert rivals.worker.handled >= 1
    # Operators and services are platform callers: they reach every workspace's cells.
    for roles in (("operator",), ("service",)):
        platform = await env.call(
            "fetch",
            {"domain": "rival-own.com"},
            cell=B,
            headers=env.token(roles=roles, workspaces=()),
        )
        assert platform.status_code == 200, (roles, platform.text)


async def test_the_amqp_ingress_refuses_a_token_of_another_workspace(
    env: Env, rivals: Rivals
) -> None:
    a_worker = env.workers[A]
    handled = a_worker.handled
    body, status = await _ingress(
        env,
        {
            "installation": A,
            "plugin": "NewResellerClub",
            "action": "create",
            "payload": {"domain": "stolen-over-amqp.com", "years": 1},
        },
        {"authorization": _b(env)["Authorization"]},
    )
    assert status == 403, body
    assert body["type"].endswith("/workspace-forbidden")
    assert a_worker.handled == handled
    assert not await _a_holds(env, "stolen-over-amqp.com")


async def test_the_ui_controller_and_slots_show_a_caller_only_its_workspaces_cells(
    env: Env, rivals: Rivals
) -> None:
    a_worker = env.workers[A]
    a_id = (await env.credentials(A))["installation_id"]
    created = await env.call("create", {"domain": "a-dashboard.com", "years": 1})
    assert created.status_code == 200, created.text
    own = await env.call("create", {"domain": "rival-ui.com", "years": 1}, cell=B, headers=_b(env))
    assert own.status_code == 200, own.text
    handled, b_handled = a_worker.handled, rivals.worker.handled
    # Both workspaces serve urlBase 'newresellerclub': B's caller reaches only B's.
    mine = await env.client.post(
        "/v1/ui/newresellerclub/fetch", json={"domain": "rival-ui.com"}, headers=_b(env)
    )
    assert mine.status_code == 200, mine.text
    assert rivals.worker.handled == b_handled + 1
    named = await env.client.post(
        "/v1/ui/newresellerclub/fetch",
        params={"installation": a_id},
        json={"domain": "a-dashboard.com"},
        headers=_b(env),
    )
    assert named.status_code == 403, named.text
    assert named.json()["type"].endswith("/workspace-forbidden")
    assert a_worker.handled == handled  # nothing reached A's cell
    # Slots: B's bundles only, even when B names A's workspace.
    slots = await env.client.get("/v1/ui/slots/product-dashboard", headers=_b(env))
    assert slots.status_code == 200, slots.text
    listed = {b["installation_id"] for b in slots.json()["bundles"] if b["kind"] == "module"}
    assert listed == {rivals.installation_id}
    asked = await env.client.get(
        "/v1/ui/slots/product-dashboard", params={"workspace": WS}, headers=_b(env)
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["bundles"] == []
    # An operator sees both installations, so must choose one.
    ambiguous = await env.client.post(
        "/v1/ui/newresellerclub/fetch", json={"domain": "x.com"}, headers=env.operator
    )
    assert ambiguous.status_code == 409, ambiguous.text
