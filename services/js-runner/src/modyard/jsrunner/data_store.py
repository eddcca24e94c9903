"""``context.store.*``: a workspace's data stores (Appmixer's Data Store), the subset public
connectors use: ``get``, ``set``, ``remove``, ``find`` and ``count`` (a query on ``key`` and on
``value`` or ``value.<field>`` by equality, ``key`` also by ``$in``; ``limit``, ``offset``,
``sort`` on ``key`` or ``updatedAt``). A store is named by its id, and exists in the calling
workspace only. ``registerWebhook`` / ``unregisterWebhook`` reject naming the member.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from modyard.jsrunner.context_errors import ContextError
from modyard.jsrunner.tables import store_items as table

if TYPE_CHECKING:
    from modyard.jsrunner.context_api import CallScope, ContextApi, Method


def _text(args: dict[str, Any], name: str, member: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise ContextError(f"store.{member}: {name} must be a non-empty string", "ERR_BAD_OPTION")
    return value


def _item(row: Any) -> dict[str, Any]:
    return {
        "storeId": row.store_id,
        "key": row.key,
        "value": row.value,
        "updatedAt": row.updated_at.isoformat(),
    }


def _where(scope: CallScope, store_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.workspace == scope.workspace, table.c.store_id == store_id)


def _conditions(query: Any) -> list[sa.ColumnElement[bool]]:
    if query is None:
        return []
    if not isinstance(query, dict):
        raise ContextError(
            "store.find(storeId, {query}): query must be an object", "ERR_BAD_OPTION"
        )
    conditions: list[sa.ColumnElement[bool]] = []
    for field, wanted in query.items():
        if field == "key":
            if (
                isinstance(wanted, dict)
                and set(wanted) == {"$in"}
                and isinstance(wanted["$in"], list)
            ):
                conditions.append(table.c.key.in_([str(k) for k in wanted["$in"]]))
            elif isinstance(wanted, str):
                conditions.append(table.c.key == wanted)
            else:
                raise ContextError(
                    "store.find: key matches a string or {$in: [...]} here", "ERR_NOT_SUPPORTED"
                )
        elif field == "value" or field.startswith("value."):
            if isinstance(wanted, dict) and any(str(k).startswith("$") for k in wanted):
                raise ContextError(
                    f"store.find: the operators of {field!r} ({', '.join(wanted)}) are not "
                    "supported here; match by equality",
                    "ERR_NOT_SUPPORTED",
                )
            if field == "value":
                conditions.append(table.c.value == sa.bindparam(None, wanted, type_=JSONB))
            else:
                document: Any = wanted
                for part in reversed(field.split(".")[1:]):
                    document = {part: document}
                conditions.append(table.c.value.op("@>")(sa.bindparam(None, document, type_=JSONB)))
        else:
            raise ContextError(
                f"store.find: {field!r} cannot be queried here (key, value, value.<field>)",
                "ERR_NOT_SUPPORTED",
            )
    return conditions


async def _get(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("store.get")
    store_id, key = _text(args, "storeId", "get"), _text(args, "key", "get")
    async with api.database.transaction() as session:
        return await session.scalar(
            sa.select(table.c.value).where(_where(scope, store_id), table.c.key == key)
        )


async def _set(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("store.set")
    store_id, key = _text(args, "storeId", "set"), _text(args, "key", "set")
    value = args.get("value")
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > api.settings.store_max_value_bytes:
        raise ContextError(
            f"store.set({store_id!r}, {key!r}): the value is {size} bytes, more than the "
            f"{api.settings.store_max_value_bytes} a store item may hold "
            "(MODYARD_JS_RUNNER_STORE_MAX_VALUE_BYTES)",
            "ERR_CONTEXT_LIMIT",
        )
    statement = pg_insert(table).values(
        workspace=scope.workspace, store_id=store_id, key=key, value=value
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.workspace, table.c.store_id, table.c.key],
        set_={"value": statement.excluded.value, "updated_at": sa.func.now()},
    )
    async with api.database.transaction() as session:
        await session.execute(statement)
    return {"storeId": store_id, "key": key, "value": value}


async def _remove(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("store.remove")
    store_id, key = _text(args, "storeId", "remove"), _text(args, "key", "remove")
    async with api.database.transaction() as session:
        await session.execute(sa.delete(table).where(_where(scope, store_id), table.c.key == key))
    return None


_SORTABLE = {"key": table.c.key, "updatedAt": table.c.updated_at}


async def _find(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("store.find")
    store_id = _text(args, "storeId", "find")
    options = args.get("options") or {}
    if not isinstance(options, dict):
        raise ContextError(
            "store.find(storeId, options): options must be an object", "ERR_BAD_OPTION"
        )
    statement = sa.select(table).where(_where(scope, store_id), *_conditions(options.get("query")))
    for field, direction in (options.get("sort") or {}).items():
        column = _SORTABLE.get(field)
        if column is None:
            raise ContextError(
                f"store.find: cannot sort by {field!r} (key, updatedAt)", "ERR_NOT_SUPPORTED"
            )
        statement = statement.order_by(column.desc() if direction in (-1, "desc") else column.asc())
    limit = options.get("limit")
    statement = statement.limit(
        min(int(limit), api.settings.store_find_max)
        if isinstance(limit, int) and limit > 0
        else api.settings.store_find_max
    )
    offset = options.get("offset")
    if isinstance(offset, int) and offset > 0:
        statement = statement.offset(offset)
    async with api.database.transaction() as session:
        return [_item(row) for row in await session.execute(statement)]


async def _count(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("store.count")
    store_id = _text(args, "storeId", "count")
    async with api.database.transaction() as session:
        return await session.scalar(
            sa.select(sa.func.count())
            .select_from(table)
            .where(_where(scope, store_id), *_conditions(args.get("query")))
        )


async def clear(api: ContextApi, scope: CallScope, store_id: str) -> None:
    """A store's items removed (``callAppmixer DELETE /stores/<id>``)."""
    async with api.database.transaction() as session:
        await session.execute(sa.delete(table).where(_where(scope, store_id)))


METHODS: dict[str, Method] = {
    "store.get": _get,
    "store.set": _set,
    "store.remove": _remove,
    "store.find": _find,
    "store.count": _count,
}
