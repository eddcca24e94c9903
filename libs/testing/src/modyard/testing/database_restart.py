"""The database-restart scenario shared by ``tests/test_database_restart.py`` and the
``resilience`` benchmark: the registry, installer and runtime on a private PostgreSQL cluster,
installs and flow-webhook load, ``pg_ctl restart -m fast`` mid-load, and then the accounting and
the consistency checks (nothing half-applied, flows finished exactly once).

The cluster comes in as a :class:`RestartableDatabase` (``modyard.testing.throwaway`` provides
one), so this library does not need the SDK.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import httpx

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.cluster import running_cluster
from modyard.testing.infra import asyncpg_dsn
from modyard.testing.resilience import (
    Caller,
    Calls,
    Tally,
    error_lines,
    readiness,
    schema_of,
    settle,
    tally_flow,
    unpublished_outbox_rows,
    until,
    webhook_load,
)
from modyard.testing.services import auth_headers

WS = "restart"
SCHEMA_SUFFIX = "restart"
SERVICES = ("registry", "installer", "runtime")
CREATED = "modyard.installer.installation.created"
LIBRARY, APP = "restart-lib", "restart-app"


def connector_archive(name: str, dependency: str | None = None) -> bytes:
    """A native module (``modyard.json``) with one action, depending on ``dependency``."""
    manifest = {
        "name": name,
        "version": "1.0.0",
        "kind": "connector",
        "dependencies": [{"name": dependency, "range": "^1.0.0"}] if dependency else [],
        "components": [{"name": "Act", "role": "action", "executor": {"type": "http"}}],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("modyard.json", json.dumps(manifest))
    return buffer.getvalue()


class RestartableDatabase(Protocol):
    @property
    def url(self) -> str: ...
    async def restart(self) -> None: ...


@dataclass
class InstallConsistency:
    """What the installer's tables hold once the dust settled; every list must be empty."""

    installations: int
    #: Installations without their lock, their dependency edge or their one created event.
    incomplete: list[str]
    #: Created events for installations that do not exist (a transaction applied in half).
    orphan_events: list[str]
    #: Installs answered 201 that are not there.
    missing: list[str]


@dataclass
class RestartReport:
    restarts: int
    flows: Tally
    installs: Tally
    installs_refused_but_applied: int
    consistency: InstallConsistency
    unpublished_outbox: dict[str, int]
    readiness_after: dict[str, int | None]
    statuses_after_restart: dict[str, dict[str, int]]
    recovery_seconds: list[float | None]
    lost_flow_keys: list[int]
    error_logs: dict[str, list[str]]
    flow_calls: Calls = field(repr=False)
    install_calls: Calls = field(repr=False)

    def figures(self) -> dict[str, Any]:
        return {
            "restarts": self.restarts,
            "flows": self.flows.as_dict(),
            "installs": {
                **self.installs.as_dict(),
                "refused_but_applied": self.installs_refused_but_applied,
            },
            "half_applied_installs": len(self.consistency.incomplete)
            + len(self.consistency.orphan_events),
            "unpublished_rows_left": sum(self.unpublished_outbox.values()),
            "first_success_after_restart_s": [
                None if seconds is None else round(seconds, 2) for seconds in self.recovery_seconds
            ],
        }


async def _check_installs(
    database_url: str, accepted: set[str], schema: str
) -> tuple[InstallConsistency, set[str]]:
    connection = await asyncpg.connect(
        asyncpg_dsn(database_url), server_settings={"search_path": schema}
    )
    try:
        rows = await connection.fetch(
            "SELECT i.id::text AS id, i.slug, i.lock, "
            "  (SELECT count(*) FROM installation_dependencies d WHERE d.installation_id = i.id)"
            "    AS edges "
            "FROM installations i JOIN workspaces w ON w.id = i.workspace_id "
            "WHERE w.slug = $1 AND i.slug LIKE 'app-%'",
            WS,
        )
        events = await connection.fetch(
            "SELECT envelope->'data'->>'installation_id' AS id, count(*) AS times FROM outbox "
            "WHERE routing_key = $1 GROUP BY 1",
            CREATED,
        )
        known = {
            str(row["id"])
            for row in await connection.fetch("SELECT id::text AS id FROM installations")
        }
    finally:
        await connection.close()
    created = {str(row["id"]): int(row["times"]) for row in events}
    incomplete = [
        str(row["slug"])
        for row in rows
        if int(row["edges"]) != 1 or created.get(str(row["id"])) != 1 or not row["lock"]
    ]
    present = {str(row["slug"]) for row in rows}
    return (
        InstallConsistency(
            installations=len(rows),
            incomplete=incomplete,
            orphan_events=sorted(set(created) - known),
            missing=sorted(accepted - present),
        ),
        present,
    )


async def run_database_restart(
    database: RestartableDatabase,
    amqp_url: str,
    *,
    restarts: int = 2,
    extra_env: Mapping[str, str] | None = None,
) -> RestartReport:
    operator = auth_headers(CommonSettings(), Role.operator, workspaces=(WS,))
    env = {
        "MODYARD_DATABASE_URL": database.url,
        "MODYARD_AMQP_URL": amqp_url,
        "MODYARD_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    async with AsyncExitStack() as stack:
        cluster = (
            await stack.enter_async_context(
                running_cluster(env, services=SERVICES, schema_suffix=SCHEMA_SUFFIX)
            )
        ).processes
        registry, installer, runtime = (cluster[name].url for name in SERVICES)
        client = await stack.enter_async_context(httpx.AsyncClient(headers=operator, timeout=30))
        (
            await client.post(f"{installer}/v1/workspaces", json={"slug": WS, "name": WS})
        ).raise_for_status()
        for archive in (connector_archive(LIBRARY), connector_archive(APP, LIBRARY)):
            (
                await client.post(
                    f"{registry}/v1/modules",
                    content=archive,
                    headers={"content-type": "application/zip"},
                )
            ).raise_for_status()
        # Installed first, so that every app install finds it (and only adds its own row).
        (
            await client.post(
                f"{installer}/v1/workspaces/{WS}/installations",
                json={"module": LIBRARY, "slug": "lib"},
            )
        ).raise_for_status()
        ledger, flows = await webhook_load(
            stack,
            client,
            runtime=runtime,
            workspace=WS,
            database_url=database.url,
            schema_suffix=SCHEMA_SUFFIX,
            concurrency=4,
        )

        async def install(http: httpx.AsyncClient, key: int) -> httpx.Response:
            return await http.post(
                f"{installer}/v1/workspaces/{WS}/installations",
                json={"module": APP, "slug": f"app-{key}"},
            )

        installs = Caller(
            "installs", install, lambda _, r: r.status_code == 201, concurrency=2, headers=operator
        )
        flows.start()
        installs.start()
        restarted_at: list[float] = []
        try:
            await until(lambda: len(flows.calls.accepted()) >= 30, 60)
            await until(lambda: len(installs.calls.accepted()) >= 5, 60)
            for _ in range(restarts):
                await database.restart()
                restarted_at.append(time.monotonic())
                moment = restarted_at[-1]
                # Work goes through again before the next restart (and after the last one).
                await until(lambda: installs.calls.successes_after(moment) >= 3, 60)  # noqa: B023
            last = restarted_at[-1]
            await until(lambda: flows.calls.successes_after(last) >= 30, 60)
        finally:
            await flows.stop()
            await installs.stop()

        accepted = flows.calls.accepted()

        schemas = [schema_of(service, SCHEMA_SUFFIX) for service in SERVICES]
        await settle(ledger, accepted, database.url, schemas)
        accepted_slugs = {f"app-{key}" for key in installs.calls.accepted()}
        consistency, present = await _check_installs(
            database.url, accepted_slugs, schema_of("installer", SCHEMA_SUFFIX)
        )
        refused_slugs = {f"app-{key}" for key in installs.calls.refused()}
        completions = await ledger.completions()
        unprocessed = await ledger.unprocessed()
        install_keys = {answer.key for answer in installs.calls.answers}
        unexplained = installs.calls.unexplained()
        return RestartReport(
            restarts=restarts,
            flows=tally_flow(flows.calls, completions, unprocessed),
            installs=Tally(
                sent=len(install_keys),
                completed=len(accepted_slugs & present),
                refused=len(refused_slugs),
                unprocessed=0,
                lost=len(consistency.missing),
                duplicated=0,  # (workspace, slug) is unique: a second row cannot exist
                unexplained=len(unexplained),
            ),
            installs_refused_but_applied=len(refused_slugs & present),
            consistency=consistency,
            unpublished_outbox=await unpublished_outbox_rows(database.url, schemas),
            readiness_after=await readiness(cluster),
            statuses_after_restart={
                "hooks": flows.calls.statuses(restarted_at[0]),
                "installs": installs.calls.statuses(restarted_at[0]),
            },
            recovery_seconds=[_first_after(installs.calls, moment) for moment in restarted_at],
            lost_flow_keys=sorted(accepted - set(completions) - set(unprocessed)),
            error_logs=error_lines(cluster.values()),
            flow_calls=flows.calls,
            install_calls=installs.calls,
        )


def _first_after(calls: Calls, moment: float) -> float | None:
    first = calls.first_success_after(moment)
    return None if first is None else first - moment
