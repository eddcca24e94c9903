"""Deployments as the API changes them: the desired spec and state, validated, with the token
and env encrypted. Docker is never touched here; the reconciler makes it match after the commit."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.outbox import record_event
from modyard.common.db.commit_hooks import after_commit
from modyard.common.errors import BadRequest, Conflict, InvalidParam, NotFound, ValidationFailed
from modyard.common.observability.metrics import DEPLOYMENTS
from modyard.common.secrets import SecretBox
from modyard.deployer import container_policy
from modyard.deployer.container_policy import Declaration, InvalidDeclaration
from modyard.deployer.events import image_of, status_changed
from modyard.deployer.image_ref import (
    TAG_RE,
    InvalidImageReference,
    normalize_registry_host,
    parse_image_reference,
)
from modyard.deployer.models import Deployment, Desired, Status
from modyard.deployer.schemas import (
    ENV_NAME_PATTERN,
    MAX_ENV_VALUE,
    MAX_ENV_VARIABLES,
    DeploymentCreate,
    DeploymentOut,
    DeploymentPage,
    DeploymentPatch,
)
from modyard.deployer.settings import DeployerSettings

_ENV_NAME = re.compile(ENV_NAME_PATTERN)


def _invalid(pointer: str, detail: str) -> ValidationFailed:
    return ValidationFailed(
        f"Fix {pointer} and retry: {detail}", errors=[InvalidParam(pointer=pointer, detail=detail)]
    )


def _check_env(env: dict[str, str], pointer: str) -> None:
    if len(env) > MAX_ENV_VARIABLES:
        raise _invalid(pointer, f"At most {MAX_ENV_VARIABLES} variables are allowed.")
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise _invalid(
                f"{pointer}/{name}",
                "An environment variable name is letters, digits and '_', not starting with a digit.",
            )
        if len(value) > MAX_ENV_VALUE or "\x00" in value:
            raise _invalid(
                f"{pointer}/{name}",
                f"The value must be at most {MAX_ENV_VALUE} characters, no NUL.",
            )


def _check_tag(tag: str, pointer: str) -> None:
    if not TAG_RE.match(tag):
        raise _invalid(
            pointer,
            "A tag is letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-').",
        )


def _confinement(declaration: Declaration, settings: DeployerSettings) -> Declaration:
    try:
        return container_policy.check(declaration, settings)
    except InvalidDeclaration as exc:
        raise _invalid(exc.pointer, exc.detail) from None


def declaration_of(deployment: Deployment) -> Declaration:
    return Declaration(
        capabilities=list(deployment.capabilities or []),
        user=deployment.run_as_user,
        writable_paths=deployment.writable_paths,
        memory_limit_mb=deployment.memory_limit_mb,
        cpu_limit=deployment.cpu_limit,
        pids_limit=deployment.pids_limit,
    )


def _store_confinement(deployment: Deployment, declaration: Declaration) -> None:
    deployment.capabilities = list(declaration.capabilities)
    deployment.run_as_user = declaration.user
    deployment.writable_paths = (
        None if declaration.writable_paths is None else list(declaration.writable_paths)
    )
    deployment.memory_limit_mb = declaration.memory_limit_mb
    deployment.cpu_limit = declaration.cpu_limit
    deployment.pids_limit = declaration.pids_limit


def now() -> datetime:
    return datetime.now(UTC)


def wake_after_commit(
    session: AsyncSession, wake: Callable[[uuid.UUID], None], id: uuid.UUID
) -> None:
    """Tell the reconciler once the change is committed (before, it would read the old state)."""
    after_commit(session, lambda: wake(id))


async def set_status(
    session: AsyncSession,
    source: str,
    deployment: Deployment,
    status: Status,
    reason: str | None = None,
) -> None:
    """Change the observed status; a change is an event, in the same transaction."""
    previous = deployment.status
    deployment.reason = reason
    if previous == status.value:
        return
    deployment.status = status.value
    deployment.status_since = now()
    await record_event(session, status_changed(source, deployment, previous))


async def create(
    session: AsyncSession, secrets: SecretBox, settings: DeployerSettings, body: DeploymentCreate
) -> Deployment:
    try:
        reference = parse_image_reference(body.image)
        container_policy.check_registry(reference.host, settings)
    except InvalidImageReference as exc:
        raise _invalid("/body/image", str(exc)) from None
    except InvalidDeclaration as exc:
        raise _invalid(exc.pointer, exc.detail) from None
    registry_host = normalize_registry_host(body.registry_host)
    if registry_host.lower() != reference.host.lower():
        raise _invalid(
            "/body/registry_host",
            f"The registry host {registry_host!r} must repeat the image's host "
            f"{reference.host!r}: the token is only sent to the registry the image comes from.",
        )
    tag = reference.tag
    if body.tag is not None:
        _check_tag(body.tag, "/body/tag")
        if reference.tag is not None and reference.tag != body.tag:
            raise _invalid(
                "/body/tag",
                f"The tag {body.tag!r} differs from the image's tag {reference.tag!r}: "
                "send one of them, or the same in both.",
            )
        if reference.digest is not None:
            raise _invalid("/body/tag", "The image is pinned by digest; leave tag out.")
        tag = body.tag
    if tag is None and reference.digest is None:
        raise _invalid(
            "/body/image",
            "The image has no version: end it with :version (or send tag), e.g. host/user/repo:1.0.0.",
        )
    _check_env(body.env, "/body/env")
    declaration = _confinement(
        Declaration(
            capabilities=body.capabilities,
            user=body.user,
            writable_paths=body.writable_paths,
            memory_limit_mb=body.memory_limit_mb,
            cpu_limit=body.cpu_limit,
            pids_limit=body.pids_limit,
        ),
        settings,
    )
    if await session.scalar(select(Deployment.id).where(Deployment.name == body.name)):
        raise Conflict(
            f"A deployment named {body.name!r} exists already; choose another name, "
            f"or change it with PATCH /v1/deployments/{body.name}.",
            slug="deployment-exists",
        )
    deployment = Deployment(
        id=uuid.uuid4(),
        name=body.name,
        repository=reference.repository,
        tag=tag,
        digest=reference.digest,
        registry_host=registry_host,
        token_id=body.token_id,
        token_encrypted=secrets.encrypt_json(body.token.get_secret_value()),
        env_encrypted=secrets.encrypt_json(body.env),
        env_names=sorted(body.env),
        port=body.port,
        desired=Desired.not_deployed.value,
        generation=0,
        status=Status.not_deployed.value,
        status_since=now(),
        restart_count=0,
        backoff_step=0,
    )
    _store_confinement(deployment, declaration)
    session.add(deployment)
    await session.flush()
    await record_event(session, status_changed(settings.source, deployment, None))
    return deployment


async def get(session: AsyncSession, ref: str, *, for_update: bool = False) -> Deployment:
    """By id or by name."""
    query = select(Deployment)
    try:
        query = query.where(Deployment.id == uuid.UUID(ref))
    except ValueError:
        query = query.where(Deployment.name == ref)
    if for_update:
        query = query.with_for_update()
    deployment = await session.scalar(query)
    if deployment is None:
        raise NotFound(f"No deployment is named {ref!r}; list them with GET /v1/deployments.")
    return deployment


def _encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.b64decode(
            cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True
        ).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(
            "The cursor is not one this API gave out; start again without ?cursor=.",
            slug="invalid-cursor",
        ) from None


async def list_page(
    session: AsyncSession,
    *,
    name: str | None,
    status: Status | None,
    cursor: str | None,
    limit: int,
) -> DeploymentPage:
    query: Select[tuple[Deployment]] = select(Deployment).order_by(Deployment.name).limit(limit + 1)
    if name is not None:
        query = query.where(Deployment.name == name)
    if status is not None:
        query = query.where(Deployment.status == status.value)
    if cursor:
        query = query.where(Deployment.name > _decode_cursor(cursor))
    found = list((await session.scalars(query)).all())
    page, more = found[:limit], len(found) > limit
    return DeploymentPage(
        items=[describe(item) for item in page],
        next_cursor=_encode_cursor(page[-1].name) if more and page else None,
    )


def is_serving(deployment: Deployment) -> bool:
    """A container answers: the deployment runs, or a failed update left the old one serving."""
    if deployment.status == Status.running.value:
        return True
    return (
        deployment.status == Status.warn.value
        and deployment.desired == Desired.running.value
        and deployment.failed_generation == deployment.generation
        and deployment.serving_generation is not None
        and deployment.serving_generation != deployment.generation
    )


def describe(deployment: Deployment) -> DeploymentOut:
    serving = is_serving(deployment) and deployment.port is not None
    return DeploymentOut(
        id=deployment.id,
        name=deployment.name,
        image=image_of(deployment),
        tag=deployment.tag,
        digest=deployment.digest,
        registry_host=deployment.registry_host,
        token_id=deployment.token_id,
        env_names=list(deployment.env_names),
        port=deployment.port,
        endpoint=f"http://127.0.0.1:{deployment.port}" if serving else None,
        capabilities=list(deployment.capabilities or []),
        user=deployment.run_as_user,
        writable_paths=deployment.writable_paths,
        memory_limit_mb=deployment.memory_limit_mb,
        cpu_limit=deployment.cpu_limit,
        pids_limit=deployment.pids_limit,
        desired=Desired(deployment.desired),
        status=Status(deployment.status),
        reason=deployment.reason,
        since=deployment.status_since,
        progress=deployment.progress,
        restarts=deployment.restart_count,
        next_restart_at=deployment.next_restart_at,
        generation=deployment.generation,
        serving_generation=deployment.serving_generation,
        serving_image=deployment.serving_image,
        created_at=deployment.created_at,
        updated_at=deployment.updated_at,
    )


def _refuse_while_deleting(deployment: Deployment) -> None:
    if deployment.desired == Desired.deleted.value:
        raise Conflict(
            f"The deployment {deployment.name!r} is being deleted; create a new one instead.",
            slug="deployment-deleting",
        )


async def _roll_out(session: AsyncSession, source: str, deployment: Deployment) -> None:
    """A new generation to run: the reconciler pulls, starts and waits for it."""
    deployment.generation += 1
    deployment.desired = Desired.running.value
    deployment.failed_generation = None
    deployment.restart_count = 0
    deployment.backoff_step = 0
    deployment.next_restart_at = None
    deployment.progress = "waiting for the deployer"
    await set_status(session, source, deployment, Status.deploying)


async def deploy(session: AsyncSession, source: str, deployment: Deployment) -> None:
    _refuse_while_deleting(deployment)
    await _roll_out(session, source, deployment)


async def suspend(session: AsyncSession, deployment: Deployment) -> None:
    _refuse_while_deleting(deployment)
    if deployment.desired == Desired.not_deployed.value:
        raise Conflict(
            f"The deployment {deployment.name!r} was never deployed; deploy it first.",
            slug="not-deployed",
        )
    deployment.desired = Desired.suspended.value
    deployment.next_restart_at = None
    deployment.progress = "stopping"


async def resume(session: AsyncSession, source: str, deployment: Deployment) -> None:
    _refuse_while_deleting(deployment)
    if deployment.desired == Desired.not_deployed.value:
        raise Conflict(
            f"The deployment {deployment.name!r} was never deployed; deploy it first.",
            slug="not-deployed",
        )
    if deployment.desired == Desired.running.value:
        return  # resuming what runs changes nothing
    deployment.desired = Desired.running.value
    deployment.backoff_step = 0
    deployment.next_restart_at = None
    deployment.progress = "starting"
    await set_status(session, source, deployment, Status.deploying)


CONFINEMENT_FIELDS = (
    "capabilities",
    "user",
    "writable_paths",
    "memory_limit_mb",
    "cpu_limit",
    "pids_limit",
)


async def update(
    session: AsyncSession,
    secrets: SecretBox,
    settings: DeployerSettings,
    deployment: Deployment,
    patch: DeploymentPatch,
) -> None:
    _refuse_while_deleting(deployment)
    source = settings.source
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise _invalid(
            "/body",
            "Send tag and/or env (or token_id, token, port, or a confinement field) to change.",
        )
    # Checked before anything is changed: a refused PATCH leaves the deployment as it was.
    declared = {
        **vars(declaration_of(deployment)),
        **{name: changes[name] for name in CONFINEMENT_FIELDS if name in changes},
    }
    if declared.get("capabilities") is None:
        declared["capabilities"] = []
    declaration = _confinement(Declaration(**declared), settings)
    if patch.tag is not None:
        _check_tag(patch.tag, "/body/tag")
    if patch.env is not None:
        _check_env(patch.env, "/body/env")
    # The registry may have been taken off the allowed list since the deployment was made.
    try:
        container_policy.check_registry(deployment.registry_host, settings, "/body")
    except InvalidDeclaration as exc:
        raise _invalid(exc.pointer, exc.detail) from None
    _store_confinement(deployment, declaration)
    if patch.tag is not None:
        deployment.tag, deployment.digest = patch.tag, None
    if patch.env is not None:
        deployment.env_encrypted = secrets.encrypt_json(patch.env)
        deployment.env_names = sorted(patch.env)
    if patch.token_id is not None:
        deployment.token_id = patch.token_id
    if patch.token is not None:
        deployment.token_encrypted = secrets.encrypt_json(patch.token.get_secret_value())
    if "port" in changes:
        deployment.port = patch.port
    if deployment.desired == Desired.running.value:
        # "The process will be restarted": a new generation replaces the running one.
        await _roll_out(session, source, deployment)
    else:
        # Stored; the next deploy or resume runs it (a suspended container is replaced then).
        deployment.generation += 1


async def delete(session: AsyncSession, source: str, deployment: Deployment) -> None:
    if deployment.desired == Desired.deleted.value:
        return
    deployment.desired = Desired.deleted.value
    deployment.next_restart_at = None
    deployment.progress = "removing the container and its data"
    await set_status(session, source, deployment, Status.deleting)


def status_gauge_refresher(service: str) -> Callable[[AsyncSession], Awaitable[None]]:
    """Sets ``modyard_deployer_deployments{status}`` (for ``refresh_state_gauges``)."""

    async def refresh(session: AsyncSession) -> None:
        counts = dict(
            (
                await session.execute(
                    select(Deployment.status, func.count()).group_by(Deployment.status)
                )
            )
            .tuples()
            .all()
        )
        for status in Status:
            DEPLOYMENTS.labels(service, status.value).set(counts.get(status.value, 0))

    return refresh
