"""asyncpg connections of their own, beside a service's SQLAlchemy engine, for hot paths where
the engine's pool costs more than the statement: its checkout pings the connection (a transaction
begun and rolled back) and goes through SQLAlchemy's greenlet bridge. The runtime's execution
ledger and the gateway's request log use them."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

#: What a dropped or restarted database raises on a pooled connection: expire the pool's
#: connections and try again on new ones.
CONNECTION_ERRORS = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    # 57P01 "terminating connection due to administrator command": a fast restart.
    asyncpg.exceptions.OperatorInterventionError,
    # "cannot switch to state …; another operation is in progress": a connection whose protocol
    # state a restart left broken (tests/test_database_restart.py). It was not classified, so
    # the worker let it escape and the message stayed unacknowledged.
    asyncpg.exceptions.InternalClientError,
)


def asyncpg_dsn(database_url: str) -> str:
    """The service's SQLAlchemy URL (``postgresql+asyncpg://…``) as asyncpg takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def keep_session(connection: asyncpg.Connection) -> None:
    """A pool's ``reset`` that does nothing on release, for statements that leave no session state
    behind (no SET, LISTEN, cursors or advisory locks; asyncpg still rolls back an unfinished
    transaction): the default reset query is one more round trip per use."""
