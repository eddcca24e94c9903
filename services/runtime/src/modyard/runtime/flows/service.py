"""Creating, changing, validating, starting and stopping flows."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common import component_refs
from modyard.common.auth import Principal, Role
from modyard.common.bus.envelope import CloudEvent
from modyard.common.errors import (
    Conflict,
    Forbidden,
    InvalidParam,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from modyard.common.user_schemas import SchemaRefused, compile_user_schema
from modyard.runtime import changes, installed_components
from modyard.runtime.components.core import core_component
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.engine.scheduler import drop_flow_triggers, schedule_flow_triggers
from modyard.runtime.failures import RetryPolicy
from modyard.runtime.flows import accounts
from modyard.runtime.flows.definition import FlowDefinition, FlowIn
from modyard.runtime.flows.events import HeardEvent, emit_problem, listen_problem
from modyard.runtime.flows.triggers import TRIGGERS
from modyard.runtime.installer_client import InstallerClient, InstallerUnavailable
from modyard.runtime.models import Flow, InstalledComponent
from modyard.runtime.replica_news import ReplicaNews
from modyard.runtime.webhooks import payloads
from modyard.runtime.webhooks.service import notify

RUNNING, STOPPED = "running", "stopped"
BY_USER = "by_user"


async def get_flow(session: AsyncSession, workspace: str, flow_id: uuid.UUID) -> Flow:
    flow = await session.get(Flow, flow_id)
    if flow is None or flow.workspace != workspace:
        raise NotFound(f"Workspace {workspace!r} has no flow {flow_id}.")
    return flow


async def list_flows(session: AsyncSession, workspace: str, status: str | None) -> list[Flow]:
    query = select(Flow).where(Flow.workspace == workspace).order_by(Flow.created_at)
    if status:
        query = query.where(Flow.status == status)
    return list((await session.scalars(query)).all())


def _named_owner(requested: str | None, caller: Principal) -> str | None:
    """The owner ``requested`` in a body, if the caller may name it (``None``: not named).

    A flow runs with its owner's ACL rules, so naming someone else would borrow their rules:
    only operators may, and the flow records which operator did (``owner_set_by``)."""
    if requested is None or requested == caller.subject:
        return None
    if not caller.is_operator:
        raise Forbidden(
            f"Only operators may make someone else ({requested!r}) a flow's owner: leave "
            "'owner' out, the flows you create or change are yours.",
            slug="flow-owner-not-yours",
        )
    return requested


async def create_flow(
    session: AsyncSession, workspace: str, body: FlowIn, caller: Principal
) -> Flow:
    named = _named_owner(body.owner, caller)
    flow = Flow(
        workspace=workspace,
        name=body.name,
        description=body.description,
        owner=named or caller.subject,
        created_by=caller.subject,
        owner_set_by=caller.subject if named else None,
        definition=body.definition.model_dump(mode="json", by_alias=True),
        status=STOPPED,
    )
    session.add(flow)
    await session.flush()
    return flow


async def replace_flow(
    session: AsyncSession,
    flow: Flow,
    body: FlowIn,
    caller: Principal,
    news: ReplicaNews | None = None,
) -> Flow:
    if flow.status == RUNNING:
        raise Conflict(
            "Stop the flow before changing it; running flows keep their definition.",
            slug="flow-running",
        )
    named = _named_owner(body.owner, caller)
    flow.name = body.name
    flow.description = body.description
    if named:
        flow.owner, flow.owner_set_by = named, caller.subject
    elif not caller.is_operator and flow.owner != caller.subject:
        # Who changes what a flow does answers for it: the flow now runs with their rules.
        flow.owner, flow.owner_set_by = caller.subject, None
    flow.definition = body.definition.model_dump(mode="json", by_alias=True)
    flow.revision += 1
    await session.flush()
    await changes.flow_changed(session, flow.workspace, flow.id, news)
    return flow


async def delete_flow(session: AsyncSession, flow: Flow, news: ReplicaNews | None = None) -> None:
    if flow.status == RUNNING:
        raise Conflict("Stop the flow before deleting it.", slug="flow-running")
    await session.delete(flow)
    await session.flush()
    await changes.flow_changed(session, flow.workspace, flow.id, news)


def component_resource(module: str, component: str) -> str:
    # The installer's ACL names components this way (see modyard.installer.acl.rules).
    return component if component.startswith(module + ".") else f"{module}.{component}"


def acting_users(flow: Flow, caller: Principal | None) -> list[str]:
    """Whose ACL rules a start is checked against: the owner's, and a user caller's too (a
    member of the workspace must not start, with the owner's rules, what they may not use)."""
    users = [flow.owner]
    trusted = caller is None or caller.has_role(Role.operator, Role.service)
    if caller is not None and not trusted and caller.subject != flow.owner:
        users.append(caller.subject)
    return users


async def validate(
    session: AsyncSession,
    installer: InstallerClient,
    flow: Flow,
    caller: Principal | None = None,
) -> list[InvalidParam]:
    """Every problem that keeps the flow from starting, each located by a JSON pointer.

    ``caller`` is who asks (``None``: the system, e.g. a restart): see :func:`acting_users`."""
    errors: list[InvalidParam] = []
    definition = FlowDefinition.model_validate(flow.definition)
    if not definition.nodes:
        errors.append(
            InvalidParam(pointer="/definition/nodes", detail="A flow needs at least one node.")
        )
    ports: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    wanted_resources: dict[str, str] = {}
    installed_nodes: dict[str, InstalledComponent] = {}
    for node_id, node in definition.nodes.items():
        pointer = f"/definition/nodes/{node_id}"
        malformed = component_refs.syntax_problem(node.component)
        if malformed:
            errors.append(InvalidParam(pointer=pointer + "/component", detail=malformed))
            continue
        schema: dict[str, Any] | None
        if component_refs.is_core(node.component):
            trigger = TRIGGERS.get(node.component)
            core = core_component(node.component)
            if trigger is None and core is None:
                errors.append(
                    InvalidParam(
                        pointer=pointer + "/component",
                        detail=f"There is no core component {node.component!r}.",
                    )
                )
                continue
            if trigger is not None:
                schema, ports[node_id] = trigger.properties_schema, ((), ("out",))
                cron = node.properties.get("cron")
                if (
                    node.component == "core.schedule"
                    and isinstance(cron, str)
                    and not croniter.is_valid(cron)
                ):
                    errors.append(
                        InvalidParam(
                            pointer=pointer + "/properties/cron",
                            detail="Not a cron expression: five fields (minute hour day month weekday), "
                            "or six with seconds last, e.g. '*/5 * * * *'.",
                        )
                    )
            else:
                assert core is not None
                schema, ports[node_id] = core.properties_schema, (("in",), tuple(core.out_ports))
            kind = node.properties.get("type")
            refused = (
                listen_problem(kind)
                if node.component == "core.event"
                else emit_problem(kind)
                if node.component == "core.emit"
                else None
            )
            if refused:
                errors.append(InvalidParam(pointer=pointer + "/properties/type", detail=refused))
        else:
            try:
                installed = await installed_components.find(session, flow.workspace, node.component)
            except installed_components.AmbiguousComponent as exc:
                errors.append(InvalidParam(pointer=pointer + "/component", detail=str(exc)))
                continue
            if installed is None or not installed.present:
                errors.append(
                    InvalidParam(
                        pointer=pointer + "/component",
                        detail=f"Workspace {flow.workspace!r} has no installed component {node.component!r}; install the module first (GET /v1/workspaces/{flow.workspace}/components gives the ref of each).",
                    )
                )
                continue
            schema = installed.spec.get("properties_schema")
            ports[node_id] = _module_ports(installed)
            wanted_resources[node_id] = component_resource(installed.module, installed.component)
            installed_nodes[node_id] = installed
        if schema:
            # A module's schema is its publisher's text: nothing fetched, patterns on RE2.
            try:
                validator = compile_user_schema(schema)
            except SchemaRefused as exc:
                errors += [
                    InvalidParam(
                        pointer=pointer + "/component",
                        detail=f"The component's properties_schema cannot be used ({where or '/'}: {reason}); the module's publisher must fix it.",
                    )
                    for where, reason in exc.problems
                ]
                continue
            for error in validator.iter_errors(node.properties):
                location = "".join(f"/{part}" for part in error.absolute_path)
                errors.append(
                    InvalidParam(pointer=f"{pointer}/properties{location}", detail=error.message)
                )
    for index, connection in enumerate(definition.connections):
        pointer = f"/definition/connections/{index}"
        for end, node_id, port, side in (
            ("from", connection.source, connection.source_port, 1),
            ("to", connection.target, connection.target_port, 0),
        ):
            if node_id not in definition.nodes:
                errors.append(
                    InvalidParam(
                        pointer=f"{pointer}/{end}", detail=f"There is no node {node_id!r}."
                    )
                )
            elif node_id in ports and port not in ports[node_id][side]:
                known = ", ".join(ports[node_id][side]) or "none"
                errors.append(
                    InvalidParam(
                        pointer=f"{pointer}/{end}_port",
                        detail=f"Node {node_id!r} has no {'output' if side else 'input'} port {port!r} (it has: {known}).",
                    )
                )
    try:
        RetryPolicy().merge(definition.retry_policy)
    except ValueError as exc:
        errors.append(InvalidParam(pointer="/definition/retry_policy", detail=str(exc)))
    for user in acting_users(flow, caller) if wanted_resources else []:
        try:
            allowed = await installer.usable_components(flow.workspace, user)
        except InstallerUnavailable as exc:
            raise ServiceUnavailable(f"Cannot check the flow owner's permissions: {exc}.") from exc
        who = "The flow's owner" if user == flow.owner else "You (starting the flow)"
        for node_id, resource in wanted_resources.items():
            if resource not in allowed:
                errors.append(
                    InvalidParam(
                        pointer=f"/definition/nodes/{node_id}/component",
                        detail=f"{who} {user!r} may not use {resource!r}; an operator can grant it with an ACL rule.",
                    )
                )
    errors += await accounts.problems(installer, flow, definition, installed_nodes)
    return errors


def _module_ports(installed: InstalledComponent) -> tuple[tuple[str, ...], tuple[str, ...]]:
    spec = installed.spec
    in_ports = tuple(spec.get("in_ports") or ())
    out_ports = tuple(spec.get("out_ports") or ())
    if installed.role == "trigger":
        return (), out_ports or ("out",)
    return in_ports or ("in",), out_ports or ("out",)


async def start_flow(
    session: AsyncSession,
    installer: InstallerClient,
    flow: Flow,
    caller: Principal | None = None,
    news: ReplicaNews | None = None,
) -> Flow:
    errors = await validate(session, installer, flow, caller)
    if errors:
        problem = ValidationFailed(
            f"The flow cannot start: {len(errors)} problem(s), listed in 'errors'.",
            slug="invalid-flow",
        )
        problem.errors = errors
        raise problem
    if flow.status != RUNNING:
        flow.status = RUNNING
        flow.stop_reason = None
        flow.started_at = datetime.now(UTC)
        flow.revision += 1
        await session.flush()
        await schedule_flow_triggers(session, flow)
        await changes.flow_changed(session, flow.workspace, flow.id, news)
    return flow


async def stop_flow(
    session: AsyncSession,
    flow: Flow,
    *,
    reason: str = BY_USER,
    affected: Iterable[dict[str, Any]] = (),
    news: ReplicaNews | None = None,
) -> Flow:
    """Stop a flow; a stop by the system (any reason but ``by_user``) tells the owner's webhooks.
    ``news``: the serving process's own, which then drops its copy right after the commit."""
    if flow.status == STOPPED and flow.stop_reason == reason:
        return flow
    flow.status = STOPPED
    flow.stop_reason = reason
    flow.stopped_at = datetime.now(UTC)
    flow.revision += 1
    await session.flush()
    await drop_flow_triggers(session, flow.id)
    # Every runtime process stops running it as soon as this commits, not when its copy expires.
    await changes.flow_changed(session, flow.workspace, flow.id, news)
    if reason != BY_USER:
        await notify(
            session,
            payloads.FLOW_STOPPED,
            {
                "workspace": flow.workspace,
                "flow": {"id": str(flow.id), "name": flow.name},
                "owner": flow.owner,
                "reason": reason,
                "affected_components": list(affected),
                "stopped_at": flow.stopped_at.isoformat(),
            },
        )
    return flow


async def stop_flows_using(
    session: AsyncSession, workspace: str, slug: str, module: str, reason: str
) -> list[uuid.UUID]:
    """Stop the running flows of ``workspace`` that use installation ``slug`` (major upgrades)."""
    # A node uses the installation when its reference names one of the installation's components
    # (removed ones included): a prefix test would also catch installation 'acme.weather' for
    # 'acme', and miss the explicit 'acme:…' form.
    rows = await session.scalars(
        select(InstalledComponent).where(
            InstalledComponent.workspace == workspace, InstalledComponent.slug == slug
        )
    )
    candidates = [component_refs.Candidate(row.slug, row.module, row.component) for row in rows]
    stopped = []
    for flow in await list_flows(session, workspace, RUNNING):
        definition = FlowDefinition.model_validate(flow.definition)
        affected = [
            {"node": node_id, "component": node.component, "module": module}
            for node_id, node in definition.nodes.items()
            if component_refs.matching(node.component, candidates)
        ]
        if affected:
            await stop_flow(session, flow, reason=reason, affected=affected)
            stopped.append(flow.id)
    return stopped


async def event_trigger_messages(
    session: AsyncSession, heard: HeardEvent, event: CloudEvent
) -> list[WorkMessage]:
    """The messages that ``event`` starts: one per connection of each running ``core.event`` node
    of the event's workspace waiting for its type. Their ids derive from the event's, so a
    redelivered event starts the same messages, which the worker then deduplicates."""
    messages: list[WorkMessage] = []
    running = select(Flow).where(Flow.status == RUNNING, Flow.workspace == heard.workspace)
    for flow in (await session.scalars(running)).all():
        definition = FlowDefinition.model_validate(flow.definition)
        for node_id, node in definition.nodes.items():
            if node.component != "core.event" or node.properties.get("type") != heard.kind:
                continue
            payload = {
                "type": heard.kind,
                "id": event.id,
                "source": event.source,
                "data": heard.data,
            }
            for index, connection in definition.outgoing(node_id, "out"):
                key = f"{event.id}:{flow.id}:{node_id}:{index}".encode()
                messages.append(
                    WorkMessage(
                        message_id=hashlib.sha256(key).hexdigest()[:32],
                        workspace=flow.workspace,
                        flow_id=str(flow.id),
                        node_id=connection.target,
                        port=connection.target_port,
                        payload=payload,
                        correlation_id=event.correlationid,
                        depth=heard.depth,
                    )
                )
    return messages
