"""Making Docker match the desired state in Postgres.

One worker task per deployment runs :meth:`Reconciler.reconcile` whenever something may have
changed: the API committed a change, Docker reported an event for one of its containers, a timer
fired (a backoff delay, a stability check), or the periodic resync came round. Work on one
deployment is therefore serial, and deployments do not wait for each other (a slow pull delays
only its own deployment).

Containers are found by their labels, never remembered: after a restart the deployer adopts
what runs instead of starting duplicates, and a container removed behind its back is noticed
and recreated. Docker's own restart policy is off; crashes and failed health checks are restarted
here with CrashLoopBackOff delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select

from modyard.common.bus.outbox import record_event
from modyard.common.db.database import Database
from modyard.common.observability.metrics import DEPLOYMENT_RESTARTS
from modyard.common.secrets import SecretBox, SecretUnreadable
from modyard.deployer.backend import (
    BackendError,
    BackendUnavailable,
    ContainerBackend,
    ContainerSpec,
    ContainerState,
    RegistryCredentials,
)
from modyard.deployer.backoff import BackoffPolicy
from modyard.deployer.container_policy import InvalidDeclaration, check_registry, sandbox
from modyard.deployer.deployments.service import declaration_of, set_status
from modyard.deployer.events import image_of, status_changed
from modyard.deployer.models import Deployment, Desired, Status
from modyard.deployer.settings import DeployerSettings

log = structlog.get_logger(__name__)

#: How soon a reconcile that failed on an unreachable Docker is tried again.
BACKEND_RETRY_SECONDS = 5.0
#: Pull progress is written to the database at most this often.
PROGRESS_INTERVAL_SECONDS = 0.5
#: A pull still running after this long is shown as progress.
PULL_NOTICE_SECONDS = 0.25
STABILITY_POLL_SECONDS = 0.2


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """How a freshly started container fared: ``up``, or why not."""

    up: bool
    why: str = ""


def _exit_words(state: ContainerState) -> str:
    if state.oom_killed:
        return "was killed for using more memory than its limit"
    if state.error:
        return f"could not start ({state.error})"
    return f"terminated (exit code {state.exit_code})"


class Reconciler:
    def __init__(
        self,
        database: Database,
        backend: ContainerBackend,
        settings: DeployerSettings,
        secrets: SecretBox,
    ) -> None:
        self._database = database
        self._backend = backend
        self._settings = settings
        self._secrets = secrets
        self._source = settings.source
        self.policy = BackoffPolicy(
            base_seconds=settings.backoff_base_seconds,
            cap_seconds=settings.backoff_cap_seconds,
            reset_after_seconds=settings.backoff_reset_seconds,
        )
        self._wakes: dict[uuid.UUID, asyncio.Event] = {}
        self._due: dict[uuid.UUID, float] = {}
        self._workers: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._running = False

    # -- scheduling ----------------------------------------------------------------------------

    def wake(self, deployment_id: uuid.UUID) -> None:
        """Reconcile this deployment soon (called after commits and on Docker events)."""
        event = self._wakes.get(deployment_id)
        if event is None:
            event = self._wakes[deployment_id] = asyncio.Event()
        event.set()
        if self._running and deployment_id not in self._workers:
            # A context of its own: a worker started from a request must not log as that request.
            self._workers[deployment_id] = asyncio.create_task(
                self._worker(deployment_id),
                name=f"reconcile-{deployment_id}",
                context=contextvars.Context(),
            )

    def _wake_in(self, deployment_id: uuid.UUID, seconds: float) -> None:
        due = time.monotonic() + max(seconds, 0.0)
        current = self._due.get(deployment_id)
        if current is None or due < current:
            self._due[deployment_id] = due

    async def _worker(self, deployment_id: uuid.UUID) -> None:
        event = self._wakes[deployment_id]
        while True:
            due = self._due.get(deployment_id)
            timeout = None if due is None else max(due - time.monotonic(), 0.0)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that
            # arrives as the event is set, and the worker would outlive its shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
            event.clear()
            self._due.pop(deployment_id, None)
            try:
                finished = await self.reconcile(deployment_id)
            except BackendUnavailable as exc:
                log.warning("docker_unavailable", deployment=str(deployment_id), error=str(exc))
                self._wake_in(deployment_id, BACKEND_RETRY_SECONDS)
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile_failed", deployment=str(deployment_id))
                self._wake_in(deployment_id, self._settings.resync_interval_seconds)
                continue
            if finished and not event.is_set():
                # No await between here and the removal: a wake() now starts a new worker.
                self._workers.pop(deployment_id, None)
                self._wakes.pop(deployment_id, None)
                self._due.pop(deployment_id, None)
                return

    async def run(self, migrated: asyncio.Event) -> None:
        """Adopt what runs, then follow Docker's events and resync periodically."""
        await migrated.wait()
        self._running = True
        for deployment_id in list(self._wakes):
            self.wake(deployment_id)
        watcher = asyncio.create_task(self._watch(), name="deployer-docker-events")
        try:
            while True:
                try:
                    await self.resync()
                except Exception:
                    log.exception("resync_failed")
                await asyncio.sleep(self._settings.resync_interval_seconds)
        finally:
            watcher.cancel()
            workers = [watcher, *self._workers.values()]
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._running = False

    async def resync(self) -> None:
        """Wake every deployment in the database and every deployment Docker has a container of."""
        async with self._database.transaction() as session:
            known = set((await session.scalars(select(Deployment.id))).all())
        try:
            seen = {state.deployment_id for state in await self._backend.containers()}
        except BackendUnavailable as exc:
            log.warning("docker_unavailable", error=str(exc))
            seen = set()
        for deployment_id in known | seen:
            self.wake(deployment_id)

    async def _watch(self) -> None:
        while True:
            try:
                async for deployment_id in self._backend.changes():
                    self.wake(deployment_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("docker_events_failed", error=str(exc))
            await asyncio.sleep(1.0)

    # -- database ------------------------------------------------------------------------------

    async def _load(self, deployment_id: uuid.UUID) -> Deployment | None:
        async with self._database.transaction() as session:
            return await session.get(Deployment, deployment_id)

    async def _apply(
        self,
        seen: Deployment,
        *,
        status: Status | None = None,
        reason: str | None = None,
        **values: Any,
    ) -> bool:
        """Write what was observed (``reason`` goes with ``status``), unless the operator changed
        the deployment meanwhile: then the next pass, already woken, acts on the new state."""
        async with self._database.transaction() as session:
            deployment = await session.get(Deployment, seen.id, with_for_update=True)
            if (
                deployment is None
                or deployment.generation != seen.generation
                or deployment.desired != seen.desired
            ):
                return False
            for key, value in values.items():
                setattr(deployment, key, value)
            if status is not None:
                await set_status(session, self._source, deployment, status, reason)
            return True

    async def _record_running(self, seen: Deployment, **values: Any) -> None:
        """Record that the deployment's generation serves now."""
        await self._apply(
            seen,
            status=Status.running,
            reason=None,
            progress=None,
            serving_generation=seen.generation,
            serving_image=image_of(seen),
            next_restart_at=None,
            **values,
        )

    async def _remove_other_generations(
        self, deployment: Deployment, containers: Sequence[ContainerState]
    ) -> None:
        for other in containers:
            if other.generation != deployment.generation:
                await self._backend.remove(other.id)

    async def _progress(self, seen: Deployment, text: str) -> None:
        await self._apply(seen, progress=text[:500])

    # -- reconciling ---------------------------------------------------------------------------

    async def reconcile(self, deployment_id: uuid.UUID) -> bool:
        """One pass; True when the deployment no longer exists (its worker may stop)."""
        deployment, containers = await asyncio.gather(
            self._load(deployment_id), self._backend.containers(deployment_id)
        )
        if deployment is None:
            if containers:
                # Never removed: another deployer (another database) may share the namespace.
                # A deployment's own containers go only with its DELETE.
                log.warning(
                    "containers_without_deployment",
                    deployment=str(deployment_id),
                    containers=[state.name for state in containers],
                    hint="another deployer shares MODYARD_DEPLOYER_NAMESPACE, or rows were lost",
                )
            return True
        desired = Desired(deployment.desired)
        if desired is Desired.deleted:
            await self._remove_all(deployment_id, containers, deployment.name)
            async with self._database.transaction() as session:
                row = await session.get(Deployment, deployment_id, with_for_update=True)
                if row is not None:
                    previous, row.status, row.reason = row.status, "deleted", None
                    await record_event(session, status_changed(self._source, row, previous))
                    await session.delete(row)
            log.info("deployment_deleted", deployment=deployment.name)
            return True
        if desired is Desired.not_deployed:
            return False
        if desired is Desired.suspended:
            for state in containers:
                if state.running:
                    await self._backend.stop(state.id)
            await self._apply(deployment, status=Status.suspended, reason=None, progress=None)
            return False
        await self._keep_running(deployment, containers)
        return False

    async def _remove_all(
        self, deployment_id: uuid.UUID, containers: Sequence[ContainerState], name: str
    ) -> None:
        for state in containers:
            await self._backend.remove(state.id)
        await self._backend.remove_data(deployment_id, name)

    async def _keep_running(
        self, deployment: Deployment, containers: Sequence[ContainerState]
    ) -> None:
        generation = deployment.generation
        current = sorted(
            (state for state in containers if state.generation == generation),
            key=lambda state: not state.running,
        )
        for duplicate in current[1:]:
            await self._backend.remove(duplicate.id)
        if deployment.failed_generation == generation:
            await self._keep_previous_serving(deployment, containers)
            return
        if not current:
            await self._roll_out(deployment, containers)
            return
        state = current[0]
        if state.running and state.health != "unhealthy":
            await self._check_stable(deployment, state, containers)
            return
        if not state.running and state.started_at is None and not state.error:
            # Created but never started: a rollout interrupted between the two (the deployer was
            # killed). Roll it out again, which reuses this container: merely starting it would
            # skip the rollout's hand-over, and the previous generation, still holding the
            # port, would make it crash.
            await self._roll_out(deployment, containers)
            return
        if (
            not state.running
            and deployment.status == Status.deploying.value
            and (state.started_at is None or state.started_at < deployment.status_since)
        ):
            # Not started since the deploy or resume asked for it (a suspended container).
            await self._backend.start(state.id)
            await self._progress(deployment, "waiting for the container to stay up")
            self._wake_in(deployment.id, self._settings.stable_seconds)
            return
        await self._crashed(deployment, state)

    async def _check_stable(
        self, deployment: Deployment, state: ContainerState, containers: Sequence[ContainerState]
    ) -> None:
        settings = self._settings
        started = state.started_at or _now()
        up_for = (_now() - started).total_seconds()
        if up_for < settings.stable_seconds or state.health == "starting":
            self._wake_in(deployment.id, max(settings.stable_seconds - up_for, 0.2))
            return
        if (
            deployment.status != Status.running.value
            or deployment.serving_generation != deployment.generation
            or deployment.next_restart_at is not None
        ):
            await self._record_running(deployment)
            log.info("deployment_running", deployment=deployment.name, generation=state.generation)
        await self._remove_other_generations(deployment, containers)

    async def _crashed(self, deployment: Deployment, state: ContainerState) -> None:
        """CrashLoopBackOff: count the crash once, wait, restart, and show ``warn`` meanwhile."""
        now = _now()
        if state.running:  # unhealthy: Docker does not restart it, so the deployer does
            await self._backend.stop(state.id)
            what, exited_at = "failed its health check and was stopped", now
        else:
            what, exited_at = _exit_words(state), state.finished_at or now
        if deployment.next_restart_at is None:
            step = self.policy.next_step(deployment.backoff_step, state.started_at, exited_at)
            delay = self.policy.delay(step)
            restart_at = now + delay
            reason = (
                f"The process {what}; restarting in {delay.total_seconds():g} s "
                f"(restart {deployment.restart_count + 1}). The process must keep running while "
                f"the module is active: read the logs (modyard deploy logs {deployment.name}), "
                "fix the image or its env, and update."
            )
            await self._apply(
                deployment,
                status=Status.warn,
                reason=reason,
                progress=None,
                backoff_step=step,
                next_restart_at=restart_at,
            )
            log.warning(
                "deployment_crashed",
                deployment=deployment.name,
                exit_code=state.exit_code,
                restart_in_seconds=delay.total_seconds(),
            )
            self._wake_in(deployment.id, delay.total_seconds())
            return
        wait = (deployment.next_restart_at - now).total_seconds()
        if wait > 0:
            self._wake_in(deployment.id, wait)
            return
        await self._backend.start(state.id)
        DEPLOYMENT_RESTARTS.labels(self._settings.service_name).inc()
        await self._apply(
            deployment,
            restart_count=deployment.restart_count + 1,
            next_restart_at=None,
        )
        log.info(
            "deployment_restarted",
            deployment=deployment.name,
            restarts=deployment.restart_count + 1,
        )
        self._wake_in(deployment.id, self._settings.stable_seconds)

    async def _keep_previous_serving(
        self, deployment: Deployment, containers: Sequence[ContainerState]
    ) -> None:
        """After a failed update the previous generation serves; it crash-loops with backoff
        like any other (the failed generation is not retried until the operator acts)."""
        for state in containers:
            if state.generation != deployment.serving_generation:
                continue
            if not state.running or state.health == "unhealthy":
                await self._crashed(deployment, state)
            elif deployment.next_restart_at is not None:
                await self._apply(deployment, next_restart_at=None)
            return

    # -- rollout -------------------------------------------------------------------------------

    async def _roll_out(self, deployment: Deployment, containers: Sequence[ContainerState]) -> None:
        """Pull, create and start generation ``deployment.generation``; keep the old one serving
        until the new one is up (host networking: with a port, the old one is stopped just before
        the new one starts, and started again if the new one fails)."""
        image = image_of(deployment)
        recreating = deployment.serving_generation == deployment.generation
        clock = time.perf_counter()
        timings: dict[str, float] = {
            "since_request_ms": round((_now() - deployment.status_since).total_seconds() * 1000, 1)
        }

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[f"{step}_ms"] = round((now - clock) * 1000, 1)
            clock = now

        for abandoned in containers:
            # Attempts superseded before they came up: they would hold the port, and never serve.
            if abandoned.generation not in (deployment.generation, deployment.serving_generation):
                await self._backend.remove(abandoned.id)
        previous = [
            state
            for state in containers
            if state.generation == deployment.serving_generation
            and state.generation != deployment.generation
        ]
        try:
            spec = ContainerSpec(
                deployment_id=deployment.id,
                deployment_name=deployment.name,
                generation=deployment.generation,
                image=image,
                env=self._secrets.decrypt_json(deployment.env_encrypted),
                # Checked again: the operator may have narrowed the settings since it was stored.
                sandbox=sandbox(declaration_of(deployment), self._settings),
                port=deployment.port,
            )
            check_registry(deployment.registry_host, self._settings, "")
            state = await self._pull_and_create(deployment, spec, recreating)
        except BackendUnavailable:
            raise
        except InvalidDeclaration as exc:
            where = f" ({exc.pointer.lstrip('/')})" if exc.pointer else ""
            await self._failed(
                deployment,
                f"The deployment is no longer allowed{where}: {exc.detail} Then deploy again.",
                previous,
            )
            return
        except BackendError as exc:
            await self._failed(deployment, str(exc), previous)
            return
        except SecretUnreadable:
            await self._failed(
                deployment,
                "The stored token or env cannot be decrypted with the configured keys (was a key "
                "removed from MODYARD_DEPLOYER_SECRET_KEYS?): send token and env again (update).",
                previous,
            )
            return
        lap("pull_and_create")
        if deployment.port is not None:
            # One port on the host network: the old process must let go of it first.
            for old in previous:
                if old.running:
                    await self._backend.stop(old.id)
        try:
            await self._backend.start(state.id)
        except BackendError as exc:
            await self._failed(deployment, str(exc), previous, new=state)
            return
        lap("start")
        outcome = await self._wait_until_up(state.id, deployment)
        lap("up")
        if outcome.up:
            await self._record_running(deployment, failed_generation=None)
            lap("record")
            await self._remove_other_generations(deployment, containers)
            log.info("deployment_rolled_out", deployment=deployment.name, image=image, **timings)
            return
        if previous:
            await self._failed(deployment, f"The new container {outcome.why}.", previous, new=state)
            return
        # Nothing older to fall back on: this is a crash, handled with backoff.
        fresh = await self._load(deployment.id)
        current = await self._backend.inspect(state.id)
        if fresh is not None and current is not None:
            await self._crashed(fresh, current)

    async def _pull_and_create(
        self, deployment: Deployment, spec: ContainerSpec, recreating: bool
    ) -> ContainerState:
        """The container of ``spec``, its image pulled with the deployment's token first.

        With the image already on the host, the registry check (the token, a moved tag) runs
        while the container is created: nothing is started before the check has passed, and a
        container made from an image the pull replaced is made again.
        """
        image_id = await self._backend.image_id(spec.image)
        if image_id is None:
            await self._pull(deployment, spec.image)
            return await self._backend.create(spec)
        if recreating:
            # The token was checked when this generation was deployed.
            await self._apply(
                deployment,
                status=Status.deploying,
                reason="The container was removed outside modyard; it is being recreated.",
                progress="recreating the container",
            )
            return await self._backend.create(spec)
        pulled, created = await asyncio.gather(
            self._pull(deployment, spec.image),
            self._backend.create(spec),
            return_exceptions=True,
        )
        if isinstance(pulled, BaseException):
            if isinstance(created, ContainerState):
                await self._backend.remove(created.id)
            raise pulled
        if isinstance(created, BaseException):
            raise created
        if pulled and await self._backend.image_id(spec.image) != created.image_id:
            await self._backend.remove(created.id)
            return await self._backend.create(spec)
        return created

    async def _pull(self, deployment: Deployment, image: str) -> bool:
        credentials = RegistryCredentials(
            host=deployment.registry_host,
            username=deployment.token_id,
            password=str(self._secrets.decrypt_json(deployment.token_encrypted)),
        )
        last = 0.0

        async def report(text: str) -> None:
            nonlocal last
            if time.monotonic() - last >= PROGRESS_INTERVAL_SECONDS:
                last = time.monotonic()
                await self._progress(deployment, f"pulling {image}: {text}")

        pulling = asyncio.create_task(self._backend.pull(image, credentials, report))
        # Say "pulling" only when it takes a while: a cached image's check takes milliseconds,
        # and every progress write is a commit the deploy would wait for.
        done, _ = await asyncio.wait({pulling}, timeout=PULL_NOTICE_SECONDS)
        if not done:
            await self._progress(deployment, f"pulling {image}")
        return await pulling

    async def _wait_until_up(self, container_id: str, deployment: Deployment) -> Outcome:
        settings = self._settings
        deadline = time.monotonic() + settings.stable_seconds + settings.health_timeout_seconds
        told = False
        while True:
            state = await self._backend.inspect(container_id)
            if state is None:
                return Outcome(False, "was removed while starting")
            if not state.running:
                return Outcome(False, _exit_words(state))
            if state.health == "unhealthy":
                return Outcome(False, "failed its health check")
            started = state.started_at or _now()
            if (_now() - started).total_seconds() >= settings.stable_seconds and state.health in (
                None,
                "healthy",
            ):
                return Outcome(True)
            if not told:
                # Only once it is clear that this takes a while (each write is a commit).
                await self._progress(deployment, "waiting for the container to stay up")
                told = True
            if time.monotonic() > deadline:
                return Outcome(
                    False, f"did not report healthy within {settings.health_timeout_seconds:g} s"
                )
            await asyncio.sleep(STABILITY_POLL_SECONDS)

    async def _failed(
        self,
        deployment: Deployment,
        why: str,
        previous: Sequence[ContainerState],
        new: ContainerState | None = None,
    ) -> None:
        """A rollout failed: ``warn`` with the reason; the previous generation keeps serving."""
        if new is not None:
            # Kept, stopped, so that its logs tell what went wrong.
            await self._backend.stop(new.id)
        for old in previous:
            await self._backend.start(old.id)
        reason = why
        if previous:
            reason += " The previous version keeps serving; fix it, then update or deploy again."
        await self._apply(
            deployment,
            status=Status.warn,
            reason=reason,
            progress=None,
            failed_generation=deployment.generation,
        )
        log.warning("deployment_failed", deployment=deployment.name, reason=why)
