"""Load with accounting, for fault tests and the ``resilience`` benchmark.

A fault test sends work through the cluster's public doors (flow webhooks, gateway actions, bus
pings) while it breaks a dependency, and then accounts for every item it sent: *completed*,
*refused* (the caller got an error it could see, e.g. a 503 problem), *unprocessed* (stored in the
runtime's dead-letter store) — and nothing *lost* (accepted, then never completed nor stored) or
*duplicated* (completed twice). The callers here record what each request got back and when, so
that the test can also say how fast refusals came while the dependency was down.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from modyard.testing.infra import asyncpg_dsn
from modyard.testing.services import (
    SERVICE_PACKAGES,
    ServiceProcess,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: The longest a caller waits for any answer; longer counts as a hang (a bug), never as a refusal.
HANG_SECONDS = 20.0


@dataclass(frozen=True)
class Answer:
    """What one request got: its HTTP status (None: no answer), when, and after how long."""

    key: int
    status: int | None
    problem: bool
    at: float
    seconds: float
    ok: bool
    error: str = ""


@dataclass
class Calls:
    """Every answer one caller got, in order."""

    answers: list[Answer] = field(default_factory=list)

    def accepted(self) -> set[int]:
        return {answer.key for answer in self.answers if answer.ok}

    def refused(self) -> set[int]:
        """Keys the caller was told failed, with a problem body (4xx/5xx), and not accepted."""
        refused = {a.key for a in self.answers if not a.ok and a.status is not None and a.problem}
        return refused - self.accepted()

    def unexplained(self) -> list[Answer]:
        """Answers that are neither a success nor a refusal with a problem body: hangs, 500s,
        wrong bodies. Each is a bug."""
        return [
            answer
            for answer in self.answers
            if not answer.ok
            and (answer.status is None or not answer.problem or answer.status == 500)
        ]

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
        counts = Counter(str(a.status) for a in self.answers if since <= a.at < until)
        return dict(sorted(counts.items()))

    def slowest_refusal(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max(
            (a.seconds for a in self.answers if not a.ok and since <= a.at < until), default=0.0
        )

    def first_success_after(self, moment: float) -> float | None:
        return min((a.at for a in self.answers if a.ok and a.at >= moment), default=None)

    def successes_after(self, moment: float) -> int:
        return sum(1 for a in self.answers if a.ok and a.at >= moment)


Judge = Callable[[int, httpx.Response], bool]


class Caller:
    """``concurrency`` loops sending one request each at a time, numbered 0, 1, 2 …, until
    :meth:`stop`. ``request(client, key)`` sends one; ``judge(key, response)`` says whether the
    answer is the success expected for that key."""

    def __init__(
        self,
        name: str,
        request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
        judge: Judge,
        *,
        concurrency: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.calls = Calls()
        self._request = request
        self._judge = judge
        self._concurrency = concurrency
        self._headers = dict(headers or {})
        self._keys = itertools.count()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._client = httpx.AsyncClient(
            headers=self._headers,
            timeout=HANG_SECONDS,
            limits=httpx.Limits(max_connections=self._concurrency),
        )
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"{self.name}-{n}")
            for n in range(self._concurrency)
        ]

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        assert self._client is not None
        while not self._stopping.is_set():
            key = next(self._keys)
            started = time.monotonic()
            try:
                response = await self._request(self._client, key)
            except httpx.HTTPError as exc:
                answer = Answer(
                    key, None, False, started, time.monotonic() - started, False, repr(exc)
                )
                # A refused connection is the one transport error a caller sees at once; pause so
                # that a dead service is not hammered in a tight loop.
                await asyncio.sleep(0.05)
            else:
                elapsed = time.monotonic() - started
                problem = response.headers.get("content-type", "").startswith(PROBLEM_CONTENT_TYPE)
                ok = self._judge(key, response)
                error = "" if ok else response.text[:300]
                answer = Answer(key, response.status_code, problem, started, elapsed, ok, error)
                if not ok:
                    # A refused caller waits a little before it retries, as a client should.
                    await asyncio.sleep(0.1)
            self.calls.answers.append(answer)


@dataclass
class Tally:
    """The accounting of one kind of work; ``lost`` and ``duplicated`` must be 0."""

    sent: int
    completed: int
    refused: int
    unprocessed: int
    lost: int
    duplicated: int
    #: Refused to the caller, yet completed once anyway (the broker had it; its confirm did not
    #: come back): the at-least-once side of an ambiguous failure, never a double completion.
    refused_but_completed: int = 0
    unexplained: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def tally_flow(calls: Calls, completions: Counter[int], unprocessed: Iterable[int]) -> Tally:
    """Webhook calls against the ``n`` of every completed run and of every unprocessed message."""
    accepted, refused = calls.accepted(), calls.refused()
    stored = set(unprocessed)
    completed = set(completions)
    return Tally(
        sent=len({answer.key for answer in calls.answers}),
        completed=len(accepted & completed),
        refused=len(refused),
        unprocessed=len(accepted & stored - completed),
        lost=len(accepted - completed - stored),
        duplicated=sum(1 for count in completions.values() if count > 1),
        refused_but_completed=len(refused & completed),
        unexplained=len(calls.unexplained()),
    )


def tally_requests(calls: Calls) -> Tally:
    """Request/reply calls: the reply is the completion, so nothing can be lost silently; a
    reply meant for another caller would be an unexplained answer (the judge checks it)."""
    keys = {answer.key for answer in calls.answers}
    accepted = calls.accepted()
    return Tally(
        sent=len(keys),
        completed=len(accepted),
        refused=len(calls.refused()),
        unprocessed=0,
        lost=len(keys - accepted - calls.refused() - {a.key for a in calls.unexplained()}),
        duplicated=0,
        unexplained=len(calls.unexplained()),
    )


# -- the cluster ---------------------------------------------------------------------------------


def schema_of(service: str, schema_suffix: str) -> str:
    return f"{SERVICE_PACKAGES[service]}_{schema_suffix}"


async def readiness(processes: Mapping[str, ServiceProcess]) -> dict[str, int | None]:
    """Each service's ``/readyz`` status now (None: no answer)."""

    async def one(process: ServiceProcess) -> int | None:
        try:
            async with httpx.AsyncClient(base_url=process.url, timeout=5) as client:
                return (await client.get("/readyz")).status_code
        except httpx.HTTPError:
            return None

    statuses = await asyncio.gather(*(one(process) for process in processes.values()))
    return dict(zip(processes, statuses, strict=True))


def error_lines(processes: Iterable[ServiceProcess], limit: int = 20) -> dict[str, list[str]]:
    """The last ``limit`` error (and worse) log lines of each process."""
    found: dict[str, list[str]] = {}
    for process in processes:
        lines = [
            line
            for line in process.logs().splitlines()
            if '"level": "error"' in line or '"level": "critical"' in line
        ]
        if lines:
            found[process.service] = lines[-limit:]
    return found


async def unpublished_outbox_rows(database_url: str, schemas: Iterable[str]) -> dict[str, int]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return {
            schema: int(
                await connection.fetchval(
                    f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'  # noqa: S608
                )
            )
            for schema in schemas
        }
    finally:
        await connection.close()


class FlowLedger:
    """Reads what a flow's ``core.log`` sink logged (``entry.n``) and what went unprocessed."""

    def __init__(self, database_url: str, schema: str, flow_id: str) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._schema = schema
        self._flow_id = uuid.UUID(flow_id)
        self._connection: asyncpg.Connection | None = None
        # One connection, and callers that poll it concurrently.
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> FlowLedger:
        self._connection = await asyncpg.connect(
            self._dsn, server_settings={"search_path": self._schema}
        )
        return self

    async def __aexit__(self, *_: Any) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _fetch(self, query: str) -> list[Any]:
        # The database may itself be the fault: reconnect once if the connection died with it.
        async with self._lock:
            for attempt in range(2):
                try:
                    assert self._connection is not None
                    return list(await self._connection.fetch(query, self._flow_id))
                except (asyncpg.PostgresConnectionError, OSError, asyncpg.InterfaceError):
                    if attempt:
                        raise
                    await self.__aexit__()
                    await self.__aenter__()
            raise AssertionError("unreachable")

    async def completions(self) -> Counter[int]:
        rows = await self._fetch(
            "SELECT (entry->>'n')::int AS n, count(*) AS times FROM node_logs "
            "WHERE flow_id = $1 GROUP BY 1"
        )
        return Counter({int(row["n"]): int(row["times"]) for row in rows})

    async def unprocessed(self) -> list[int]:
        rows = await self._fetch(
            "SELECT payload->>'n' AS n FROM unprocessed_messages WHERE flow_id = $1"
        )
        return [int(row["n"]) for row in rows if row["n"] is not None]


async def settle(
    ledger: FlowLedger, accepted: set[int], database_url: str, schemas: Iterable[str]
) -> None:
    """Wait (a bounded while) until every accepted flow message completed or was stored as
    unprocessed and every outbox is relayed; what is still missing then is what the test counts
    as lost."""

    async def flows_settled() -> bool:
        done = set(await ledger.completions()) | set(await ledger.unprocessed())
        return accepted <= done

    async def outbox_empty() -> bool:
        return sum((await unpublished_outbox_rows(database_url, schemas)).values()) == 0

    await wait_for(flows_settled, 60)
    await wait_for(outbox_empty, 30)


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.1
) -> float | None:
    """Seconds until ``check()`` held, or None if it never did within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(interval)
    return None


async def until(check: Callable[[], bool], timeout: float) -> None:
    """Wait for the load to get somewhere; fail saying so if it does not."""

    async def holds() -> bool:
        return check()

    if await wait_for(holds, timeout) is None:
        raise AssertionError(f"the load made no progress in {timeout:g} s")


async def webhook_load(
    stack: AsyncExitStack,
    client: httpx.AsyncClient,
    *,
    runtime: str,
    workspace: str,
    database_url: str,
    schema_suffix: str,
    concurrency: int,
) -> tuple[FlowLedger, Caller]:
    """A running flow webhook → transform → log whose log entries carry the body's ``n``, the
    ledger that reads them (open until ``stack`` closes) and a caller posting ``{"n": key}`` to
    its webhook (202 is success), not yet started."""
    definition = {
        "nodes": {
            "hook": {"component": "core.webhook"},
            "shape": {
                "component": "core.transform",
                "properties": {"mapping": {"n": "{{ payload.n }}"}},
            },
            "sink": {"component": "core.log"},
        },
        "connections": [{"from": "hook", "to": "shape"}, {"from": "shape", "to": "sink"}],
    }
    created = await client.post(
        f"{runtime}/v1/workspaces/{workspace}/flows",
        json={"name": "load", "definition": definition},
    )
    created.raise_for_status()
    flow_id = str(created.json()["id"])
    started = await client.post(f"{runtime}/v1/workspaces/{workspace}/flows/{flow_id}/start")
    started.raise_for_status()
    ledger = await stack.enter_async_context(
        FlowLedger(database_url, schema_of("runtime", schema_suffix), flow_id)
    )

    async def hook(http: httpx.AsyncClient, key: int) -> httpx.Response:
        return await http.post(f"{runtime}/v1/hooks/{workspace}/{flow_id}/hook", json={"n": key})

    caller = Caller("hooks", hook, lambda _, r: r.status_code == 202, concurrency=concurrency)
    return ledger, caller
