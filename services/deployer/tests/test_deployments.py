"""Deployments on the real dockerd, pulled from the local registry with a token."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiodocker
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, free_port, service_process

from .conftest import Deployer, Images

pytestmark = pytest.mark.infra

TOKEN = "modyard"  # the registry's htpasswd password plays the token


def body(images: Images, name: str, tag: str = "v1", **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": name,
        "image": images.ref(tag),
        "registry_host": images.login.host,
        "token_id": images.login.username,
        "token": TOKEN,
        "env": {"GREETING": "hello"},
    }
    document.update(extra)
    return document


async def create(deployer: Deployer, document: dict[str, Any]) -> dict[str, Any]:
    response = await deployer.call("POST", "/v1/deployments", json=document)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deploy(deployer: Deployer, name: str) -> None:
    response = await deployer.call("POST", f"/v1/deployments/{name}/deploy")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "deploying"


async def fetch(url: str) -> str | None:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(url + "/index.html")
            return response.text.strip() if response.status_code == 200 else None
    except httpx.TransportError:
        return None


async def serves(url: str, expected: str, timeout: float = 20) -> None:
    async def check() -> bool:
        return await fetch(url) == expected

    await eventually(check, timeout)


async def outbox_statuses(infra: IsolatedInfra, name: str) -> list[str]:
    engine = create_async_engine(infra.database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT envelope FROM deployer.outbox WHERE envelope->>'type' = "
                    "'modyard.deployer.deployment.status_changed' AND envelope->>'subject' = :n "
                    "ORDER BY seq"
                ),
                {"n": name},
            )
            return [row[0]["data"]["status"] for row in rows]
    finally:
        await engine.dispose()


async def test_invalid_requests_are_4xx_problems_and_change_nothing(
    deployer: Deployer, images: Images
) -> None:
    cases = [
        ({"image": "module:1.0"}, "/body/image", "registry host"),
        ({"image": f"{images.login.host}/Team/Module:1"}, "/body/image", "path component"),
        ({"image": f"{images.login.host}/team/module:bad tag"}, "/body/image", "white space"),
        ({"image": f"{images.login.host}/team/module"}, "/body/image", "no version"),
        ({"registry_host": "registry.example.com"}, "/body/registry_host", "must repeat"),
        ({"tag": "v9"}, "/body/tag", "differs"),
        ({"env": {"1BAD": "x"}}, "/body/env/1BAD", "environment variable name"),
        ({"name": "Not_A_Name"}, "/body/name", ""),
        ({"port": 70000}, "/body/port", ""),
    ]
    for change, pointer, words in cases:
        response = await deployer.call(
            "POST", "/v1/deployments", json={**body(images, "invalid"), **change}
        )
        assert response.status_code == 422, (change, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert [error["pointer"] for error in problem["errors"]] == [pointer], problem
        assert words in problem["errors"][0]["detail"] or words in problem["detail"], problem
    listed = await deployer.call("GET", "/v1/deployments", params={"name": "invalid"})
    assert listed.json() == {"items": [], "next_cursor": None}

    missing = await deployer.call("POST", "/v1/deployments/no-such/deploy")
    assert missing.status_code == 404
    unauthenticated = await deployer.call("GET", "/v1/deployments", headers={})
    assert unauthenticated.status_code == 401
    # Services (the runtime's http executor) read deployments; only operators change them.
    service = auth_headers(CommonSettings(), Role.service)
    assert (await deployer.call("GET", "/v1/deployments", headers=service)).status_code == 200
    refused = await deployer.call(
        "POST", "/v1/deployments", json=body(images, "by-service"), headers=service
    )
    assert refused.status_code == 403


async def test_deploy_suspend_resume_delete(
    deployer: Deployer, images: Images, infra: IsolatedInfra
) -> None:
    port = free_port()
    created = await create(deployer, body(images, "lifecycle", port=port, env={"GREETING": "hi"}))
    assert created["status"] == "not_deployed"
    assert created["endpoint"] is None
    assert created["env_names"] == ["GREETING"]
    assert "token" not in created
    assert "env" not in created
    duplicate = await deployer.call("POST", "/v1/deployments", json=body(images, "lifecycle"))
    assert duplicate.status_code == 409

    await deploy(deployer, "lifecycle")
    running = await deployer.wait_status("lifecycle", "running")
    assert running["endpoint"] == f"http://127.0.0.1:{port}"
    assert running["restarts"] == 0
    await serves(running["endpoint"], "hi v1")
    (container,) = await deployer.containers("lifecycle")
    labels = container["Config"]["Labels"]
    assert labels["modyard.deployment.id"] == created["id"]
    assert container["HostConfig"]["NetworkMode"] == f"{deployer.namespace}-modules"
    assert container["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert "GREETING=hi" in container["Config"]["Env"]
    assert await deployer.volumes("lifecycle")

    # Read by name (the runtime's http executor does this), with the table's columns.
    listed = (await deployer.call("GET", "/v1/deployments", params={"name": "lifecycle"})).json()
    (row,) = listed["items"]
    assert {row[key] is not None for key in ("name", "image", "tag", "status", "since")} == {True}

    response = await deployer.call("POST", "/v1/deployments/lifecycle/suspend")
    assert response.status_code == 202
    suspended = await deployer.wait_status("lifecycle", "suspended")
    assert suspended["endpoint"] is None
    assert await fetch(f"http://127.0.0.1:{port}") is None
    (stopped,) = await deployer.containers("lifecycle")
    assert stopped["Id"] == container["Id"]
    assert not stopped["State"]["Running"]
    assert await deployer.volumes("lifecycle"), "suspending keeps the data"

    response = await deployer.call("POST", "/v1/deployments/lifecycle/resume")
    assert response.status_code == 202
    await deployer.wait_status("lifecycle", "running")
    await serves(f"http://127.0.0.1:{port}", "hi v1")
    (resumed,) = await deployer.containers("lifecycle")
    assert resumed["Id"] == container["Id"]

    response = await deployer.call("DELETE", "/v1/deployments/lifecycle")
    assert response.status_code == 202
    assert response.json()["status"] == "deleting"

    async def gone() -> bool:
        answer = await deployer.call("GET", "/v1/deployments/lifecycle")
        return answer.status_code == 404

    await eventually(gone, 30)
    assert await deployer.containers("lifecycle") == []
    assert await deployer.volumes("lifecycle") == []
    statuses = await outbox_statuses(infra, "lifecycle")
    assert statuses == [
        "not_deployed",
        "deploying",
        "running",
        "suspended",
        "deploying",
        "running",
        "deleting",
        "deleted",
    ]


async def test_secrets_are_encrypted_at_rest(
    deployer: Deployer, images: Images, infra: IsolatedInfra
) -> None:
    await create(deployer, body(images, "secretive", env={"API_KEY": "sk-very-secret-42"}))
    engine = create_async_engine(infra.database_url)
    try:
        async with engine.connect() as connection:
            row = (
                (
                    await connection.execute(
                        text("SELECT * FROM deployer.deployments WHERE name = 'secretive'")
                    )
                )
                .mappings()
                .one()
            )
    finally:
        await engine.dispose()
    stored = " ".join(str(value) for value in row.values())
    assert "sk-very-secret-42" not in stored
    assert row["token_encrypted"].startswith("gAAAA")  # a Fernet token
    shown = await deployer.get("secretive")
    assert "sk-very-secret-42" not in str(shown)
    assert shown["env_names"] == ["API_KEY"]
    assert (await deployer.call("DELETE", "/v1/deployments/secretive")).status_code == 202


async def test_update_tag_and_env_then_a_failing_update_keeps_the_old_one_serving(
    deployer: Deployer, images: Images
) -> None:
    port = free_port()
    await create(deployer, body(images, "updated", port=port, env={"GREETING": "one"}))
    await deploy(deployer, "updated")
    await deployer.wait_status("updated", "running")
    await serves(f"http://127.0.0.1:{port}", "one v1")
    (first,) = await deployer.containers("updated")

    response = await deployer.call(
        "PATCH", "/v1/deployments/updated", json={"tag": "v2", "env": {"GREETING": "two"}}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "deploying"
    updated = await deployer.wait_for(
        "updated", lambda d: d["status"] == "running" and d["serving_generation"] == 2
    )
    assert updated["image"] == images.ref("v2")
    assert updated["tag"] == "v2"
    await serves(f"http://127.0.0.1:{port}", "two v2")

    async def only_the_new_one() -> bool:
        found = await deployer.containers("updated")
        return len(found) == 1 and found[0]["Id"] != first["Id"]

    await eventually(only_the_new_one, 20)  # the old container goes once the new one is up

    response = await deployer.call("PATCH", "/v1/deployments/updated", json={"tag": "crash"})
    assert response.status_code == 202
    failed = await deployer.wait_status("updated", "warn")
    assert "exit code 3" in failed["reason"]
    assert "previous version keeps serving" in failed["reason"]
    assert failed["endpoint"] == f"http://127.0.0.1:{port}"
    assert failed["image"] == images.ref("crash")
    assert failed["serving_image"] == images.ref("v2")
    await serves(f"http://127.0.0.1:{port}", "two v2")
    # The failed container is kept, stopped, so that its logs say why.
    logs = await deployer.call("GET", "/v1/deployments/updated/logs")
    assert "cannot start: no config" in logs.text
    assert (await deployer.get("updated"))["restarts"] == 0, "a failed update is not crash-looped"

    # The version that keeps serving is itself kept running: killed, it is restarted.
    serving = [c for c in await deployer.containers("updated") if c["State"]["Running"]]
    assert len(serving) == 1
    async with aiodocker.Docker(url=deployer.docker_host) as docker:
        await docker.containers.container(serving[0]["Id"]).kill()
    await deployer.wait_for("updated", lambda d: d["restarts"] >= 1)
    await serves(f"http://127.0.0.1:{port}", "two v2")
    assert (await deployer.call("DELETE", "/v1/deployments/updated")).status_code == 202


async def test_update_without_a_port_overlaps_old_and_new(
    deployer: Deployer, images: Images
) -> None:
    await create(deployer, {**body(images, "worker", tag="ticker")})
    await deploy(deployer, "worker")
    await deployer.wait_status("worker", "running")
    response = await deployer.call("PATCH", "/v1/deployments/worker", json={"env": {"A": "b"}})
    assert response.status_code == 202
    await deployer.wait_for(
        "worker", lambda d: d["status"] == "running" and d["serving_generation"] == 2
    )

    async def only_the_new_one() -> bool:
        found = await deployer.containers("worker")
        return len(found) == 1 and "A=b" in found[0]["Config"]["Env"]

    await eventually(only_the_new_one, 20)
    assert (await deployer.call("DELETE", "/v1/deployments/worker")).status_code == 202


async def test_wrong_token_is_a_warning_about_the_token(deployer: Deployer, images: Images) -> None:
    await create(deployer, body(images, "badtoken", token="not-the-token", port=free_port()))
    await deploy(deployer, "badtoken")
    warned = await deployer.wait_status("badtoken", "warn")
    assert "refused the token" in warned["reason"]
    assert await deployer.containers("badtoken") == []
    # Fixing the token and deploying again works.
    fixed = await deployer.call("PATCH", "/v1/deployments/badtoken", json={"token": TOKEN})
    assert fixed.status_code == 202
    await deploy(deployer, "badtoken")
    await deployer.wait_status("badtoken", "running")
    assert (await deployer.call("DELETE", "/v1/deployments/badtoken")).status_code == 202


async def test_unknown_image_is_a_warning_about_the_image(
    deployer: Deployer, images: Images
) -> None:
    await create(deployer, body(images, "noimage", tag="does-not-exist"))
    await deploy(deployer, "noimage")
    warned = await deployer.wait_status("noimage", "warn")
    assert "does not exist in the registry" in warned["reason"]
    assert await deployer.containers("noimage") == []

    async def warn_counted() -> bool:
        # Operators alert on this gauge: a deployment in warn needs them.
        metrics = (await deployer.call("GET", "/metrics")).text
        found = re.search(r'modyard_deployer_deployments\{[^}]*status="warn"[^}]*\} (\S+)', metrics)
        return found is not None and float(found.group(1)) >= 1

    await eventually(warn_counted, timeout=10)
    assert (await deployer.call("DELETE", "/v1/deployments/noimage")).status_code == 202


async def test_a_process_that_exits_is_restarted_with_growing_delays(
    deployer: Deployer, images: Images
) -> None:
    await create(deployer, body(images, "crasher", tag="crash"))
    await deploy(deployer, "crasher")
    warned = await deployer.wait_status("crasher", "warn")
    assert "exit code 3" in warned["reason"]
    assert "restarting in" in warned["reason"]
    assert warned["next_restart_at"] is not None
    looping = await deployer.wait_for("crasher", lambda d: d["restarts"] >= 3, timeout=60)
    assert looping["status"] == "warn"
    # 1 s, 2 s, 4 s (capped at 4 s by the test settings): the announced delay grows.
    assert (
        "restarting in 4 s"
        in (
            await deployer.wait_for("crasher", lambda d: "restarting in 4 s" in (d["reason"] or ""))
        )["reason"]
    )
    (container,) = await deployer.containers("crasher")  # restarted, never duplicated
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert (await deployer.call("DELETE", "/v1/deployments/crasher")).status_code == 202


async def test_an_unhealthy_container_is_restarted_by_the_deployer(
    deployer: Deployer, images: Images
) -> None:
    await create(deployer, body(images, "sickly", tag="unhealthy"))
    await deploy(deployer, "sickly")
    warned = await deployer.wait_status("sickly", "warn", timeout=60)
    assert "health check" in warned["reason"]
    await deployer.wait_for("sickly", lambda d: d["restarts"] >= 1, timeout=60)
    assert (await deployer.call("DELETE", "/v1/deployments/sickly")).status_code == 202


async def test_a_restarted_deployer_adopts_its_containers(
    deployer: Deployer, images: Images
) -> None:
    port = free_port()
    await create(deployer, body(images, "adopted", port=port))
    await deploy(deployer, "adopted")
    await deployer.wait_status("adopted", "running")
    (before,) = await deployer.containers("adopted")

    await deployer.restart()

    await serves(f"http://127.0.0.1:{port}", "hello v1")
    running = await deployer.wait_status("adopted", "running")
    assert running["restarts"] == 0
    # An observation window (not a speed check): the new process's start-up reconciliation
    # has run by now; it must have adopted the container, not started a second one.
    await asyncio.sleep(2)
    (after,) = await deployer.containers("adopted")
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert (await deployer.call("DELETE", "/v1/deployments/adopted")).status_code == 202


async def test_a_container_removed_behind_its_back_is_recreated(
    deployer: Deployer, images: Images, docker_host: str
) -> None:
    port = free_port()
    await create(deployer, body(images, "recreated", port=port))
    await deploy(deployer, "recreated")
    await deployer.wait_status("recreated", "running")
    (before,) = await deployer.containers("recreated")
    async with aiodocker.Docker(url=docker_host) as docker:
        await docker.containers.container(before["Id"]).delete(force=True)

    async def replaced() -> bool:
        found = await deployer.containers("recreated")
        return len(found) == 1 and found[0]["Id"] != before["Id"] and found[0]["State"]["Running"]

    await eventually(replaced, 30)
    await deployer.wait_status("recreated", "running")
    await serves(f"http://127.0.0.1:{port}", "hello v1")
    assert (await deployer.call("DELETE", "/v1/deployments/recreated")).status_code == 202


async def test_logs_tail_since_and_follow(deployer: Deployer, images: Images) -> None:
    await create(deployer, body(images, "chatty", tag="ticker"))
    early = await deployer.call("GET", "/v1/deployments/chatty/logs")
    assert early.status_code == 409
    assert early.json()["type"].endswith("/no-container")
    await deploy(deployer, "chatty")
    await deployer.wait_status("chatty", "running")

    async def ticks() -> bool:
        response = await deployer.call("GET", "/v1/deployments/chatty/logs")
        return response.text.count("tick") >= 5

    await eventually(ticks, 20)
    tail = await deployer.call("GET", "/v1/deployments/chatty/logs", params={"tail": 2})
    assert tail.status_code == 200
    assert tail.headers["content-type"].startswith("text/plain")
    assert len(tail.text.strip().splitlines()) == 2
    future = await deployer.call(
        "GET", "/v1/deployments/chatty/logs", params={"since": "2999-01-01T00:00:00Z"}
    )
    assert future.text == ""

    seen = ""
    async with httpx.AsyncClient(base_url=deployer.url, headers=deployer.headers) as client:
        async with client.stream(
            "GET", "/v1/deployments/chatty/logs", params={"follow": "true", "tail": 0}
        ) as stream:
            async for chunk in stream.aiter_text():
                seen += chunk
                if seen.count("tick") >= 3:
                    break
    assert seen.count("tick") >= 3, "follow streams new output as it comes"
    assert (await deployer.call("DELETE", "/v1/deployments/chatty")).status_code == 202


async def test_pagination_and_filters(deployer: Deployer, images: Images) -> None:
    for name in ("page-a", "page-b", "page-c"):
        await create(deployer, body(images, name))
    first = (
        await deployer.call("GET", "/v1/deployments", params={"limit": 2, "status": "not_deployed"})
    ).json()
    assert [item["name"] for item in first["items"]][:2] == sorted(
        item["name"] for item in first["items"]
    )
    names = [item["name"] for item in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (
            await deployer.call(
                "GET",
                "/v1/deployments",
                params={"limit": 2, "status": "not_deployed", "cursor": cursor},
            )
        ).json()
        names += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert {"page-a", "page-b", "page-c"} <= set(names)
    assert names == sorted(names)
    bad = await deployer.call("GET", "/v1/deployments", params={"cursor": "!!"})
    assert bad.status_code == 400
    for name in ("page-a", "page-b", "page-c"):
        assert (await deployer.call("DELETE", f"/v1/deployments/{name}")).status_code == 202


async def test_an_update_while_suspended_runs_on_resume(deployer: Deployer, images: Images) -> None:
    port = free_port()
    await create(deployer, body(images, "dormant", port=port, env={"GREETING": "old"}))
    await deploy(deployer, "dormant")
    await deployer.wait_status("dormant", "running")
    assert (await deployer.call("POST", "/v1/deployments/dormant/suspend")).status_code == 202
    await deployer.wait_status("dormant", "suspended")
    response = await deployer.call(
        "PATCH", "/v1/deployments/dormant", json={"env": {"GREETING": "new"}, "tag": "v2"}
    )
    assert response.status_code == 202
    stays = await deployer.get("dormant")
    assert stays["status"] == "suspended"
    assert await fetch(f"http://127.0.0.1:{port}") is None, "a suspended module stays stopped"
    assert (await deployer.call("POST", "/v1/deployments/dormant/resume")).status_code == 202
    await deployer.wait_for(
        "dormant", lambda d: d["status"] == "running" and d["serving_generation"] == 2
    )
    await serves(f"http://127.0.0.1:{port}", "new v2")
    assert (await deployer.call("DELETE", "/v1/deployments/dormant")).status_code == 202


async def test_a_second_deployer_sharing_the_namespace_destroys_nothing(
    deployer: Deployer, images: Images
) -> None:
    port = free_port()
    await create(deployer, body(images, "shared", port=port))
    await deploy(deployer, "shared")
    await deployer.wait_status("shared", "running")
    (before,) = await deployer.containers("shared")
    # Same Docker host and namespace, another database (schema): it has no such deployment.
    other_env = {**deployer.env, "MODYARD_DEPLOYER_DB_SCHEMA": "deployer_other"}
    async with service_process("deployer", other_env) as other:

        async def noticed() -> bool:
            return "containers_without_deployment" in other.logs()

        await eventually(noticed, 30)
    (after,) = await deployer.containers("shared")
    assert after["Id"] == before["Id"]
    assert after["State"]["Running"]
    await serves(f"http://127.0.0.1:{port}", "hello v1")
    assert (await deployer.call("DELETE", "/v1/deployments/shared")).status_code == 202

    # The deletion runs after the 202: waited for, or the namespace's teardown raced it for the
    # data volume ("volume is in use", 409).
    async def gone() -> bool:
        return (await deployer.call("GET", "/v1/deployments/shared")).status_code == 404

    await eventually(gone, 30)
    assert await deployer.containers("shared") == []
