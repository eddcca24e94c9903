"""``context.state`` / ``saveState`` / ``loadState`` / ``stateGet`` / ``stateSet`` /
``stateUnset`` / ``stateClear`` / ``stateInc`` / ``stateAddToSet`` / ``stateRemoveFromSet``,
and the same members under ``context.flow``
(shared by the flow's nodes) and ``context.service`` (shared by the module's components in one
workspace).

Rows are keyed by the call's workspace, the scope and its owner (``<flow>/<node>``, ``<flow>``
or the module's name). Sizes are capped per value and per owner
(``MODYARD_JS_RUNNER_STATE_MAX_VALUE_BYTES``, ``…_STATE_MAX_BYTES``): past them the member
rejects with ``ERR_CONTEXT_LIMIT`` and nothing is written.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.jsrunner.context_errors import ContextError
from modyard.jsrunner.tables import state as table

if TYPE_CHECKING:
    from modyard.jsrunner.context_api import CallScope, ContextApi, Method

log = structlog.get_logger(__name__)

SCOPES = ("node", "flow", "service")


def _owner(scope: CallScope, kind: str) -> tuple[str, str, bool]:
    """(owner, flow id, persistent) of ``kind``'s rows for this call."""
    if kind == "node":
        return scope.node_owner, scope.flow_id, scope.persistent
    if kind == "flow":
        return scope.flow_id, scope.flow_id, True
    return scope.module, "", True


def _kind(args: dict[str, Any]) -> str:
    kind = str(args.get("scope") or "node")
    if kind not in SCOPES:
        raise ContextError(
            f"state scope {kind!r} is not one of {', '.join(SCOPES)}", "ERR_BAD_OPTION"
        )
    return kind


def _key(args: dict[str, Any], member: str) -> str:
    key = args.get("key")
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise ContextError(
            f"{member}(key): key must be a non-empty string of at most 1024 characters",
            "ERR_BAD_OPTION",
        )
    return key


def _member(kind: str, name: str) -> str:
    return name if kind == "node" else f"{kind}.{name}"


def _encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


def _where(scope: CallScope, kind: str) -> sa.ColumnElement[bool]:
    owner, _, _ = _owner(scope, kind)
    return sa.and_(
        table.c.workspace == scope.workspace, table.c.scope == kind, table.c.owner == owner
    )


async def _check_size(
    api: ContextApi,
    session: AsyncSession,
    scope: CallScope,
    kind: str,
    sizes: dict[str, int],
    *,
    replacing_all: bool = False,
) -> None:
    settings = api.settings
    for key, size in sizes.items():
        if size > settings.state_max_value_bytes:
            raise ContextError(
                f"{_member(kind, 'stateSet')}({key!r}): the value is {size} bytes, more than the "
                f"{settings.state_max_value_bytes} a state value may hold "
                "(MODYARD_JS_RUNNER_STATE_MAX_VALUE_BYTES); keep large data in files or a store",
                "ERR_CONTEXT_LIMIT",
            )
    others = 0
    if not replacing_all:
        others = int(
            await session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(table.c.size), 0)).where(
                    _where(scope, kind), table.c.key.not_in(list(sizes))
                )
            )
            or 0
        )
    total = others + sum(sizes.values())
    if total > settings.state_max_bytes:
        raise ContextError(
            f"{_member(kind, 'state')}: this would hold {total} bytes, more than the "
            f"{settings.state_max_bytes} one {kind}'s state may hold "
            "(MODYARD_JS_RUNNER_STATE_MAX_BYTES); unset keys it no longer needs",
            "ERR_CONTEXT_LIMIT",
        )


def _upsert(scope: CallScope, kind: str, key: str, value: Any, size: int) -> Any:
    owner, flow_id, persistent = _owner(scope, kind)
    statement = pg_insert(table).values(
        workspace=scope.workspace,
        scope=kind,
        owner=owner,
        key=key,
        value=value,
        size=size,
        flow_id=flow_id,
        persistent=persistent,
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.workspace, table.c.scope, table.c.owner, table.c.key],
        set_={
            "value": statement.excluded.value,
            "size": statement.excluded.size,
            "persistent": statement.excluded.persistent,
            "updated_at": sa.func.now(),
        },
    )


async def load_all(api: ContextApi, scope: CallScope, kind: str = "node") -> dict[str, Any]:
    async with api.database.transaction() as session:
        rows = await session.execute(
            sa.select(table.c.key, table.c.value).where(_where(scope, kind))
        )
        return {key: value for key, value in rows}


async def _get(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    kind = _kind(args)
    scope.require_workspace(_member(kind, "stateGet"))
    key = _key(args, _member(kind, "stateGet"))
    async with api.database.transaction() as session:
        return await session.scalar(
            sa.select(table.c.value).where(_where(scope, kind), table.c.key == key)
        )


async def _set(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    kind = _kind(args)
    scope.require_workspace(_member(kind, "stateSet"))
    key = _key(args, _member(kind, "stateSet"))
    value = args.get("value")
    size = _encoded_size(value)
    async with api.database.transaction() as session:
        await _check_size(api, session, scope, kind, {key: size})
        await session.execute(_upsert(scope, kind, key, value, size))
    return value


async def _unset(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    kind = _kind(args)
    scope.require_workspace(_member(kind, "stateUnset"))
    key = _key(args, _member(kind, "stateUnset"))
    async with api.database.transaction() as session:
        await session.execute(sa.delete(table).where(_where(scope, kind), table.c.key == key))
    return None


async def _clear(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    kind = _kind(args)
    scope.require_workspace(_member(kind, "stateClear"))
    async with api.database.transaction() as session:
        await session.execute(sa.delete(table).where(_where(scope, kind)))
    return None


async def _inc(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    kind = _kind(args)
    member = _member(kind, "stateInc")
    scope.require_workspace(member)
    key = _key(args, member)
    by = args.get("by", 1)
    if isinstance(by, bool) or not isinstance(by, int | float):
        raise ContextError(f"{member}({key!r}, by): by must be a number", "ERR_BAD_OPTION")
    owner, flow_id, persistent = _owner(scope, kind)
    # One statement: concurrent increments of one key never lose an update. A stored value that
    # is not a number fails the cast: the statement fails, and nothing changes.
    current = sa.case(
        (
            sa.func.jsonb_typeof(table.c.value) == "number",
            table.c.value.op("#>>")(sa.literal_column("'{}'::text[]")),
        ),
        else_=sa.literal("not a number"),
    )
    statement = pg_insert(table).values(
        workspace=scope.workspace,
        scope=kind,
        owner=owner,
        key=key,
        value=sa.func.to_jsonb(sa.cast(sa.literal(by), sa.Numeric)),
        size=len(str(by)),
        flow_id=flow_id,
        persistent=persistent,
    )
    increment = statement.on_conflict_do_update(
        index_elements=[table.c.workspace, table.c.scope, table.c.owner, table.c.key],
        set_={
            "value": sa.func.to_jsonb(
                sa.cast(current, sa.Numeric) + sa.cast(sa.literal(by), sa.Numeric)
            ),
            "updated_at": sa.func.now(),
        },
    ).returning(table.c.value)
    try:
        async with api.database.transaction() as session:
            value = await session.scalar(increment)
    except DBAPIError as exc:
        raise ContextError(
            f"{member}({key!r}): the value is not a number", "ERR_BAD_OPTION"
        ) from exc
    return value


_ADD_TO_SET = sa.text(
    """
    INSERT INTO component_state AS row
        (workspace, scope, owner, key, value, size, flow_id, persistent)
    VALUES (:workspace, :scope, :owner, :key, jsonb_build_array(:item), 0, :flow_id, :persistent)
    ON CONFLICT (workspace, scope, owner, key) DO UPDATE SET
        value = CASE
            WHEN jsonb_typeof(row.value) <> 'array' OR row.value IS NULL
                THEN jsonb_build_array(:item)
            WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(row.value) AS e WHERE e = :item)
                THEN row.value
            ELSE row.value || jsonb_build_array(:item)
        END,
        updated_at = now()
    RETURNING value
    """
).bindparams(sa.bindparam("item", type_=JSONB))

_REMOVE_FROM_SET = sa.text(
    """
    UPDATE component_state AS row SET
        value = (
            SELECT coalesce(jsonb_agg(e), '[]'::jsonb)
            FROM jsonb_array_elements(row.value) AS e WHERE e <> :item
        ),
        updated_at = now()
    WHERE workspace = :workspace AND scope = :scope AND owner = :owner AND key = :key
        AND jsonb_typeof(row.value) = 'array'
    RETURNING value
    """
).bindparams(sa.bindparam("item", type_=JSONB))


async def _set_member(
    api: ContextApi, scope: CallScope, args: dict[str, Any], *, adding: bool
) -> Any:
    """``stateAddToSet(key, value)`` / ``stateRemoveFromSet(key, value)``: the array under
    ``key`` gains ``value`` if no element equals it, or loses every element equal to it — in one
    statement, so that concurrent callers (webhook registrations of many flows in
    ``service.*``) never overwrite each other."""
    kind = _kind(args)
    member = _member(kind, "stateAddToSet" if adding else "stateRemoveFromSet")
    scope.require_workspace(member)
    key = _key(args, member)
    owner, flow_id, persistent = _owner(scope, kind)
    item = args.get("value")
    if _encoded_size(item) > api.settings.state_max_value_bytes:
        raise ContextError(
            f"{member}({key!r}): the value is larger than a state value may be "
            "(MODYARD_JS_RUNNER_STATE_MAX_VALUE_BYTES)",
            "ERR_CONTEXT_LIMIT",
        )
    params = {
        "workspace": scope.workspace,
        "scope": kind,
        "owner": owner,
        "key": key,
        "item": item,
        "flow_id": flow_id,
        "persistent": persistent,
    }
    async with api.database.transaction() as session:
        value = await session.scalar(_ADD_TO_SET if adding else _REMOVE_FROM_SET, params)
        if value is None:
            return None
        size = _encoded_size(value)
        # Raising here rolls the statement back: the set stays as it was.
        await _check_size(api, session, scope, kind, {key: size})
        await session.execute(
            sa.update(table).where(_where(scope, kind), table.c.key == key).values(size=size)
        )
    return value


async def _add_to_set(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    return await _set_member(api, scope, args, adding=True)


async def _remove_from_set(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    return await _set_member(api, scope, args, adding=False)


async def _load(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("loadState")
    return await load_all(api, scope, "node")


async def _save(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    """``saveState(state)``: the node's state becomes exactly ``state``."""
    scope.require_workspace("saveState")
    whole = args.get("state")
    if not isinstance(whole, dict):
        raise ContextError("saveState(state): state must be an object", "ERR_BAD_OPTION")
    sizes = {str(key): _encoded_size(value) for key, value in whole.items()}
    async with api.database.transaction() as session:
        await _check_size(api, session, scope, "node", sizes, replacing_all=True)
        await session.execute(
            sa.delete(table).where(_where(scope, "node"), table.c.key.not_in(list(sizes)))
        )
        for key, value in whole.items():
            await session.execute(_upsert(scope, "node", str(key), value, sizes[str(key)]))
    return None


async def forget_node(api: ContextApi, scope: CallScope) -> int:
    """A node's state once its flow stopped (after its ``stop``, which may still read it), unless
    its component declares it persistent, as Appmixer does."""
    async with api.database.transaction() as session:
        result = await session.execute(
            sa.delete(table).where(_where(scope, "node"), table.c.persistent.is_(False))
        )
        return int(getattr(result, "rowcount", 0) or 0)


METHODS: dict[str, Method] = {
    "state.get": _get,
    "state.set": _set,
    "state.unset": _unset,
    "state.clear": _clear,
    "state.inc": _inc,
    "state.addToSet": _add_to_set,
    "state.removeFromSet": _remove_from_set,
    "state.load": _load,
    "state.save": _save,
}
