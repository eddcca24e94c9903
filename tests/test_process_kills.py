"""``kill -9`` of a service in the middle of its work, then a restart, with the five services as
processes on the session's isolated database and vhost. Each test accounts for everything it
sent: completed once, or reported to its caller as failed; nothing lost, nothing done twice, and
no caller ever given an answer meant for another.

- runtime: flow messages in flight are redelivered to the restarted process and each node's
  execution is recorded exactly once (the ledger, ``node_executions``) with its log line once;
- gateway: HTTP callers of the killed process get their own answer or an error; AMQP ingress
  requests are answered on their reply queue with their own correlation id, by the restarted
  process for those the killed one had not answered;
- deployer: killed while deployments roll out; restarted, it adopts the containers it had made
  (same ids, no duplicates) and brings every deployment to ``running``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiodocker
import asyncpg
import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_cluster import Cluster, cell_process, fault_cluster, install_example_cell, remove_cell

from modyard.common.settings import CommonSettings
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.engine.topology import WORK_EXCHANGE, WORK_ROUTING_KEY
from modyard.testing.deployer import (
    RegistryLogin,
    delete_from_registry,
    httpd_command,
    publish_test_image,
    remove_namespace,
)
from modyard.testing.infra import IsolatedInfra, asyncpg_dsn
from modyard.testing.polling import eventually
from modyard.testing.services import free_port

pytestmark = pytest.mark.infra

NAMESPACE = f"k{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def cluster(infra: IsolatedInfra) -> AsyncIterator[Cluster]:
    env = {
        "deployer": {
            "MODYARD_DEPLOYER_NAMESPACE": NAMESPACE,
            # Long enough that a kill finds rollouts waiting for their containers to stay up.
            "MODYARD_DEPLOYER_STABLE_SECONDS": "2",
        },
    }
    async with fault_cluster(infra, env) as started:
        yield started


# -- runtime ------------------------------------------------------------------------------------

FLOW_MESSAGES = 1000


async def test_a_killed_runtime_finishes_every_flow_message_once(
    cluster: Cluster, infra: IsolatedInfra
) -> None:
    workspace = "crash"
    definition = {
        "nodes": {
            "shape": {
                "component": "core.transform",
                "properties": {"mapping": {"n": "{{ payload.n }}"}},
            },
            "sink": {"component": "core.log"},
        },
        "connections": [{"from": "shape", "to": "sink"}],
    }
    created = await cluster.api(
        "POST",
        "runtime",
        f"/v1/workspaces/{workspace}/flows",
        json={"name": "crash", "definition": definition},
    )
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    started = await cluster.api(
        "POST", "runtime", f"/v1/workspaces/{workspace}/flows/{flow_id}/start"
    )
    assert started.status_code == 200, started.text
    database = await asyncpg.connect(
        asyncpg_dsn(infra.database_url),
        server_settings={"search_path": cluster.env["runtime"]["MODYARD_RUNTIME_DB_SCHEMA"]},
    )
    try:

        async def logged() -> tuple[int, int]:
            row = await database.fetchrow(
                "SELECT count(*), count(DISTINCT entry->>'n') FROM node_logs WHERE flow_id = $1",
                uuid.UUID(flow_id),
            )
            assert row is not None
            return int(row[0]), int(row[1])

        connection = await aio_pika.connect(infra.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(WORK_EXCHANGE)
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            WorkMessage(
                                workspace=workspace,
                                flow_id=flow_id,
                                node_id="shape",
                                payload={"n": n},
                            )
                            .model_dump_json()
                            .encode(),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=WORK_ROUTING_KEY,
                    )
                    for n in range(FLOW_MESSAGES)
                )
            )

        async def under_way() -> bool:
            return (await logged())[0] >= 100

        await eventually(under_way, timeout=60, interval=0.02)
        await cluster.kill("runtime")
        done_before_crash = (await logged())[0]
        assert done_before_crash < FLOW_MESSAGES, "the kill came too late to prove anything"

        await cluster.restart("runtime")

        async def all_logged() -> bool:
            return (await logged())[1] == FLOW_MESSAGES

        await eventually(all_logged, timeout=120)
        # The restarted process took work only once it could publish outputs: nothing was
        # handed back to the queue (each time spends one of the message's deliveries).
        assert "work_message_requeued" not in cluster.processes["runtime"].logs()
        await asyncio.sleep(1)  # an observation window for a late duplicate, not a speed check
        total, distinct = await logged()
        assert (total, distinct) == (FLOW_MESSAGES, FLOW_MESSAGES)  # none lost, none twice
        # The ledger: each node ran each message once (a redelivery answered from it).
        executions = await database.fetch(
            "SELECT node_id, count(*) FROM node_executions WHERE flow_id = $1 GROUP BY node_id",
            uuid.UUID(flow_id),
        )
        assert dict(executions) == {"shape": FLOW_MESSAGES, "sink": FLOW_MESSAGES}
        unprocessed = await database.fetchval(
            "SELECT count(*) FROM unprocessed_messages WHERE flow_id = $1", uuid.UUID(flow_id)
        )
        assert unprocessed == 0
    finally:
        await database.close()


# -- gateway ------------------------------------------------------------------------------------

HTTP_CALLERS = 16


async def test_callers_of_a_killed_gateway_get_their_own_answer_or_an_error(
    cluster: Cluster, infra: IsolatedInfra, tmp_path: Path
) -> None:
    workspace, slug = "killgw", "rc"
    cell = await install_example_cell(cluster, workspace, slug)
    credentials_file = tmp_path / "credentials.json"
    credentials_file.write_text(json.dumps(cell.credentials))
    action = f"/v1/cells/{cell.key}/plugins/NewResellerClub/actions/fetch"
    try:
        async with (
            cell_process(credentials_file, "echo"),
            httpx.AsyncClient(timeout=30, headers=cluster.operator) as client,
            await aio_pika.connect(infra.amqp_url) as billing,
        ):
            # HTTP callers: each request asks for a domain of its own and checks the answer.
            own: list[str] = []
            failed: list[str] = []
            wrong: list[tuple[str, Any]] = []
            stop = asyncio.Event()

            async def caller(number: int) -> None:
                sequence = 0
                while not stop.is_set():
                    domain = f"c{number}-{sequence}.com"
                    sequence += 1
                    try:
                        answer = await client.post(
                            cluster.url("appcell-gateway") + action,
                            json={"payload": {"domain": domain}},
                        )
                    except httpx.TransportError:
                        failed.append(domain)
                        continue
                    if answer.status_code in (502, 503, 504):  # reported: the cell is away
                        failed.append(domain)
                        continue
                    if answer.status_code != 200:
                        wrong.append((domain, answer.text))
                        continue
                    got = answer.json()["result"]
                    if got == {"domain": domain, "status": "active"}:
                        own.append(domain)
                    else:
                        wrong.append((domain, got))

            # AMQP ingress: a billing system publishing all along, answers kept by correlation id.
            channel = await billing.channel()
            replies = await channel.declare_queue(exclusive=True)
            answers: dict[str, list[dict[str, Any]]] = defaultdict(list)

            async def on_answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                answers[message.correlation_id or ""].append(json.loads(message.body))

            await replies.consume(on_answer, no_ack=True)
            asked: dict[str, str] = {}
            ingress = await channel.get_exchange("appcell.requests")
            token = cluster.operator["Authorization"]

            billing_stop = asyncio.Event()

            async def billing_system() -> None:
                """Publishes while the gateway runs, dies and comes back (meanwhile they queue)."""
                while not billing_stop.is_set():
                    correlation_id, domain = uuid.uuid4().hex, f"amqp-{len(asked)}.com"
                    asked[correlation_id] = domain
                    await ingress.publish(
                        aio_pika.Message(
                            json.dumps(
                                {
                                    "installation": cell.key,
                                    "plugin": "NewResellerClub",
                                    "action": "fetch",
                                    "payload": {"domain": domain},
                                }
                            ).encode(),
                            correlation_id=correlation_id,
                            reply_to=replies.name,
                            headers={"authorization": token},
                            content_type="application/json",
                        ),
                        routing_key="billia",
                    )
                    await asyncio.sleep(0.02)

            callers = [asyncio.create_task(caller(number)) for number in range(HTTP_CALLERS)]
            publishing = asyncio.create_task(billing_system())

            async def under_load() -> bool:
                return len(own) >= 100 and len(answers) >= 20

            await eventually(under_load, timeout=60, interval=0.01)
            await cluster.kill("appcell-gateway")
            stop.set()
            await asyncio.gather(*callers)
            answered_before_kill = len(answers)
            assert answered_before_kill < len(asked), "the kill came too late"
            assert not wrong, wrong[:5]
            sent = len(own) + len(failed)
            assert failed, "no request was in flight when the gateway was killed"

            await cluster.restart("appcell-gateway")
            billing_stop.set()
            await publishing
            domains = [f"after-restart-{n}.com" for n in range(20)]
            after = await asyncio.gather(
                *(
                    client.post(
                        cluster.url("appcell-gateway") + action, json={"payload": {"domain": d}}
                    )
                    for d in domains
                )
            )
            for domain, answer in zip(domains, after, strict=True):
                assert answer.status_code == 200, answer.text
                assert answer.json()["result"] == {"domain": domain, "status": "active"}

            # Ingress requests the killed process had not answered stayed queued (or were
            # redelivered): the restarted one answers every one, each on its own correlation id.
            async def all_answered() -> bool:
                return set(answers) >= set(asked)

            await eventually(all_answered, timeout=60)
            assert set(answers) == set(asked)  # nothing meant for anybody else
            for correlation_id, bodies in answers.items():
                for body in bodies:
                    assert body.get("result") == {
                        "domain": asked[correlation_id],
                        "status": "active",
                    }, body
            # An answer sent just before the kill, whose ack the kill prevented, is sent again
            # by the restarted gateway: same correlation id, same answer (at-least-once).
            repeated = sum(len(bodies) - 1 for bodies in answers.values())
            print(  # the figures of this run, for the report (pytest -s)
                f"http sent={sent} own={len(own)} failed={len(failed)} wrong={len(wrong)}; "
                f"amqp sent={len(asked)} answered={len(answers)} "
                f"before_kill={answered_before_kill} repeated={repeated}"
            )
    finally:
        await remove_cell(cluster, workspace, slug)


# -- deployer -----------------------------------------------------------------------------------

DEPLOYMENTS = 4


async def test_a_killed_deployer_adopts_its_containers(cluster: Cluster) -> None:
    settings = CommonSettings()
    login = RegistryLogin.from_settings(settings)
    path = f"modyard-test-{NAMESPACE}/kill"
    image = await publish_test_image(
        settings.docker_host, login, path, "1.0.0", httpd_command("$PORT", body="$GREETING")
    )
    names = [f"kill-{n}" for n in range(DEPLOYMENTS)]
    ports = {name: free_port() for name in names}
    label = json.dumps({"label": [f"modyard.namespace={NAMESPACE}"]})

    async def containers() -> dict[str, list[dict[str, Any]]]:
        """The namespace's containers by deployment name, inspected."""
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        async with aiodocker.Docker(url=settings.docker_host) as docker:
            for summary in await docker.containers.list(all=True, filters=label):
                try:
                    inspected = (await docker.containers.get(summary.id))._container
                except aiodocker.DockerError:  # removed since listed
                    continue
                name = inspected["Config"]["Labels"].get("modyard.deployment.name")
                if name is None:  # the short-lived helper that hands a data volume to its user
                    continue
                found[name].append(inspected)
        return found

    async def statuses() -> dict[str, str]:
        return {
            name: (await cluster.api("GET", "deployer", f"/v1/deployments/{name}")).json()["status"]
            for name in names
        }

    try:
        for name in names:
            created = await cluster.api(
                "POST",
                "deployer",
                "/v1/deployments",
                json={
                    "name": name,
                    "image": image,
                    "registry_host": login.host,
                    "token_id": login.username,
                    "token": login.password,
                    "env": {"GREETING": f"hello from {name}"},
                    "port": ports[name],
                },
            )
            assert created.status_code == 201, created.text

        async def deploy(name: str) -> None:
            deployed = await cluster.api("POST", "deployer", f"/v1/deployments/{name}/deploy")
            assert deployed.status_code == 202, deployed.text

        # The first one runs and is then updated (a new generation, the old one serving until
        # the new one is up) while the others roll out for the first time.
        updated, first_time = names[0], names[1:]
        await deploy(updated)

        async def running(name: str) -> bool:
            found = await cluster.api("GET", "deployer", f"/v1/deployments/{name}")
            return bool(found.json()["status"] == "running")

        await eventually(lambda: running(updated), timeout=60)
        patched = await cluster.api(
            "PATCH",
            "deployer",
            f"/v1/deployments/{updated}",
            json={"env": {"GREETING": f"hello again from {updated}"}},
        )
        assert patched.status_code == 202, patched.text
        for name in first_time:
            await deploy(name)

        async def containers_made() -> bool:
            return sum(len(found) for found in (await containers()).values()) >= 3

        await eventually(containers_made, timeout=60, interval=0.05)
        await cluster.kill("deployer")
        at_kill = await containers()
        at_kill_statuses = await _statuses_from_db(cluster, names)
        assert set(at_kill_statuses) != {"running"}, "the kill came too late"

        await cluster.restart("deployer")

        async def all_running() -> bool:
            return set((await statuses()).values()) == {"running"}

        await eventually(all_running, timeout=120)
        await asyncio.sleep(2)  # an observation window for a duplicate, not a speed check
        now = await containers()
        for name in names:
            assert len(now[name]) == 1, (name, [c["Name"] for c in now[name]])
            (container,) = now[name]
            assert container["State"]["Running"]
            generation = container["Config"]["Labels"]["modyard.deployment.generation"]
            assert generation == ("2" if name == updated else "1")
            made_before = [
                made["Id"]
                for made in at_kill.get(name, [])
                if made["Config"]["Labels"]["modyard.deployment.generation"] == generation
            ]
            if made_before:  # adopted, not made again
                assert made_before == [container["Id"]]
            async with httpx.AsyncClient(timeout=10) as client:
                served = await client.get(f"http://127.0.0.1:{ports[name]}/")
            greeting = "hello again from" if name == updated else "hello from"
            assert served.text.strip() == f"{greeting} {name}"
        deployments = {
            name: (await cluster.api("GET", "deployer", f"/v1/deployments/{name}")).json()
            for name in names
        }
        # No crash on the way: the interrupted update was rolled out again, not just started
        # next to the old container that still held its port.
        assert {name: d["restarts"] for name, d in deployments.items()} == dict.fromkeys(names, 0)
        print(  # the figures of this run, for the report (pytest -s)
            f"deployments={len(names)} containers at the kill="
            f"{ {name: len(made) for name, made in at_kill.items()} } "
            f"statuses at the kill={at_kill_statuses}; after: all running, one container each"
        )
    finally:
        for name in names:
            await cluster.api("DELETE", "deployer", f"/v1/deployments/{name}")

        async def deleted() -> bool:
            for name in names:
                found = await cluster.api("GET", "deployer", f"/v1/deployments/{name}")
                if found.status_code != 404:
                    return False
            return True

        with contextlib.suppress(AssertionError):  # what is left, remove_namespace removes
            await eventually(deleted, timeout=30)
        await remove_namespace(settings.docker_host, NAMESPACE)
        await delete_from_registry(settings.image_registry_url, login, path, "1.0.0")
        async with aiodocker.Docker(url=settings.docker_host) as docker:
            with contextlib.suppress(aiodocker.DockerError):  # the deployments pulled it
                await docker.images.delete(image, force=True)


async def _statuses_from_db(cluster: Cluster, names: list[str]) -> list[str]:
    """The statuses the killed deployer left (its API is down: read its table)."""
    connection = await asyncpg.connect(
        asyncpg_dsn(cluster.env["deployer"]["MODYARD_DATABASE_URL"]),
        server_settings={"search_path": cluster.env["deployer"]["MODYARD_DEPLOYER_DB_SCHEMA"]},
    )
    try:
        rows = await connection.fetch(
            "SELECT status FROM deployments WHERE name = ANY($1::text[])", names
        )
        return [row["status"] for row in rows]
    finally:
        await connection.close()
