"""Issue 17, hole 11: tokens are revocable, short-lived and only as good as the membership behind
them, in every service (installer, runtime, gateway as real processes), across two workspaces."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from modyard.common.auth import Role, decode_token, mint_token
from modyard.common.settings import CommonSettings
from modyard.testing.cluster import Cluster, running_cluster
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import run_modyard as modyard

pytestmark = pytest.mark.infra

SERVICES = ("installer", "runtime", "appcell-gateway")
#: A poll interval short enough that the test waits little for the other services to follow.
POLL = {"MODYARD_TOKEN_DENIALS_POLL_SECONDS": "0.2"}
SETTINGS = CommonSettings()


@pytest.fixture(scope="module")
async def cluster(infra: IsolatedInfra) -> AsyncIterator[Cluster]:
    async with running_cluster(
        {**infra.env(), **POLL}, services=SERVICES, schema_suffix="tokens"
    ) as started:
        for slug in ("alpha", "beta"):
            response = await started.api(
                "POST",
                "installer",
                "/v1/workspaces",
                json={"slug": slug, "name": slug, "members": ["ursula", "mallory"]},
            )
            assert response.status_code == 201, response.text
        yield started


def user_token(subject: str, **kwargs: int) -> str:
    return mint_token(
        SETTINGS, subject=subject, roles=[Role.user], workspaces=["alpha", "beta"], **kwargs
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status_of(cluster: Cluster, service: str, path: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=cluster.url(service), timeout=30) as client:
        return (await client.get(path, headers=bearer(token))).status_code


#: One workspace-scoped read per service (the gateway lists the caller's cells).
def reads(workspace: str) -> list[tuple[str, str]]:
    return [
        ("installer", f"/v1/workspaces/{workspace}"),
        ("runtime", f"/v1/workspaces/{workspace}/automations"),
        ("appcell-gateway", f"/v1/cells?workspace={workspace}"),
    ]


async def answers(cluster: Cluster, token: str, workspace: str = "alpha") -> list[int]:
    return [await status_of(cluster, s, p, token) for s, p in reads(workspace)]


async def test_a_revoked_token_is_refused_by_every_service_while_another_of_the_same_user_works(
    cluster: Cluster,
) -> None:
    revoked, kept = user_token("ursula"), user_token("ursula")
    assert await answers(cluster, revoked) == [200, 200, 200]

    # The token's own subject revokes it, presenting it.
    async with httpx.AsyncClient(base_url=cluster.url("installer"), timeout=30) as client:
        response = await client.post(
            "/v1/tokens/revocations", json={"token": revoked}, headers=bearer(revoked)
        )
    assert response.status_code == 201, response.text
    jti = decode_token(SETTINGS, revoked).token_id
    assert response.json()["jti"] == jti

    # The installer at once, the others within a poll interval.
    assert await status_of(cluster, "installer", "/v1/workspaces/alpha", revoked) == 401

    async def refused_everywhere() -> bool:
        return await answers(cluster, revoked) == [401, 401, 401]

    await eventually(refused_everywhere)
    async with httpx.AsyncClient(base_url=cluster.url("runtime"), timeout=30) as client:
        problem = (
            await client.get("/v1/workspaces/alpha/automations", headers=bearer(revoked))
        ).json()
    assert problem["type"].endswith("/unauthorized")
    assert "revoked" in problem["detail"]
    # The same user's other token is untouched, in both workspaces.
    assert await answers(cluster, kept) == [200, 200, 200]
    assert await answers(cluster, kept, "beta") == [200, 200, 200]

    # Another user may not revoke ursula's token; nothing changes.
    async with httpx.AsyncClient(base_url=cluster.url("installer"), timeout=30) as client:
        refused = await client.post(
            "/v1/tokens/revocations", json={"token": kept}, headers=bearer(user_token("mallory"))
        )
        bare = await client.post(
            "/v1/tokens/revocations",
            json={"jti": decode_token(SETTINGS, kept).token_id},
            headers=bearer(user_token("mallory")),
        )
    assert refused.status_code == 403, refused.text
    assert bare.status_code == 403, bare.text
    listed = (await cluster.api("GET", "installer", "/v1/tokens/revocations")).json()["items"]
    assert [item["jti"] for item in listed] == [jti]
    assert await answers(cluster, kept) == [200, 200, 200]


async def test_a_token_over_the_max_ttl_is_refused_by_every_service(cluster: Cluster) -> None:
    now = int(time.time())
    claims = {
        "iss": "modyard",
        "aud": "modyard",
        "sub": "ursula",
        "iat": now,
        "nbf": now,
        "exp": now + 25 * 3600,  # the default limit for user tokens is 24 h
        "jti": "long-lived",
        "roles": ["user"],
        "workspaces": ["alpha", "beta"],
    }
    long_lived = jwt.encode(claims, SETTINGS.jwt_secret.get_secret_value(), algorithm="HS256")
    assert await answers(cluster, long_lived) == [401, 401, 401]
    async with httpx.AsyncClient(base_url=cluster.url("runtime"), timeout=30) as client:
        problem = (
            await client.get("/v1/workspaces/alpha/automations", headers=bearer(long_lived))
        ).json()
    assert "MODYARD_TOKEN_MAX_TTL_SECONDS" in problem["detail"]
    with pytest.raises(ValueError, match="MODYARD_TOKEN_MAX_TTL_SECONDS"):
        user_token("ursula", ttl_seconds=25 * 3600)
    # Within the limit, the same claims are fine.
    assert await answers(cluster, user_token("ursula", ttl_seconds=24 * 3600)) == [200, 200, 200]


async def test_a_user_removed_from_a_workspace_is_refused_there_and_still_allowed_in_the_other(
    cluster: Cluster,
) -> None:
    token = user_token("mallory")  # names alpha and beta, unexpired
    assert await answers(cluster, token, "alpha") == [200, 200, 200]

    removed = await cluster.api("DELETE", "installer", "/v1/workspaces/alpha/members/mallory")
    assert removed.status_code == 200, removed.text

    # The installer checks its table at once; the runtime follows within a poll interval.
    assert await status_of(cluster, "installer", "/v1/workspaces/alpha", token) == 403

    async def runtime_refuses() -> bool:
        path = "/v1/workspaces/alpha/automations"
        return await status_of(cluster, "runtime", path, token) == 403

    await eventually(runtime_refuses)
    async with httpx.AsyncClient(base_url=cluster.url("appcell-gateway"), timeout=30) as client:
        cells = await client.get("/v1/cells?workspace=alpha", headers=bearer(token))
    assert cells.status_code == 200
    assert cells.json() == []
    # Still a member of beta: allowed there everywhere.
    assert await answers(cluster, token, "beta") == [200, 200, 200]
    async with httpx.AsyncClient(base_url=cluster.url("installer"), timeout=30) as client:
        listed = (await client.get("/v1/workspaces", headers=bearer(token))).json()["items"]
    assert [item["slug"] for item in listed] == ["beta"]
    # Nothing else changed: alpha keeps its other member, who still gets in.
    alpha = (await cluster.api("GET", "installer", "/v1/workspaces/alpha")).json()
    assert [member["subject"] for member in alpha["members"]] == ["ursula"]
    assert await answers(cluster, user_token("ursula"), "alpha") == [200, 200, 200]

    # Made a member again, the same token reaches alpha again.
    readded = await cluster.api(
        "PUT", "installer", "/v1/workspaces/alpha/members/mallory", json={"role": "member"}
    )
    assert readded.status_code == 200, readded.text

    async def runtime_admits() -> bool:
        path = "/v1/workspaces/alpha/automations"
        return await status_of(cluster, "runtime", path, token) == 200

    await eventually(runtime_admits)
    assert await status_of(cluster, "installer", "/v1/workspaces/alpha", token) == 200


async def test_the_command_line_mints_within_the_limit_and_revokes_a_token(
    cluster: Cluster,
) -> None:
    env = {"MODYARD_INSTALLER_URL": cluster.url("installer")}
    _, refused = await modyard(env, "token", "--role", "user", "--ttl", "90000", expect=2)
    assert "MODYARD_TOKEN_MAX_TTL_SECONDS" in refused
    minted, _ = await modyard(
        env, "token", "-s", "ursula", "-r", "user", "-w", "alpha", "--ttl", "600", "--json"
    )
    token = minted["token"]
    assert await answers(cluster, token) == [200, 200, 200]
    kept, _ = await modyard(env, "token", "-s", "ursula", "-r", "user", "-w", "alpha", "--json")

    # The user revokes their own token, sending it as their credential too.
    revoked, _ = await modyard({**env, "MODYARD_TOKEN": token}, "token", "revoke", token, "--json")
    assert revoked["jti"] == minted["jti"]

    async def refused_everywhere() -> bool:
        return await answers(cluster, token) == [401, 401, 401]

    await eventually(refused_everywhere)
    assert await answers(cluster, kept["token"]) == [200, 200, 200]
    # An operator revokes by id alone.
    by_id, _ = await modyard(env, "token", "revoke", "--jti", kept["jti"], "-s", "ursula", "--json")
    assert by_id["subject"] == "ursula"

    async def kept_refused() -> bool:
        return await answers(cluster, kept["token"]) == [401, 401, 401]

    await eventually(kept_refused)
