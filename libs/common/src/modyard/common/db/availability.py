"""Which exceptions mean "the database is away right now" rather than "this request is wrong".

SQLAlchemy wraps what asyncpg raises while a statement runs (``OperationalError``,
``InterfaceError``, a ``DBAPIError`` that invalidated its connection), but not what asyncpg raises
while the pool *opens* a connection: during a restart that is the raw
``CannotConnectNowError`` ("the database system is shutting down" / "starting up", SQLSTATE
57P03), a ``PostgresConnectionError`` or a refused socket. Those were 500s and unhandled consumer
errors in tests/test_database_restart.py; every caller now classifies them here.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

#: Raised as they are, not wrapped by SQLAlchemy, when a new connection cannot be opened.
RAW_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # 57P01 admin shutdown, 57P03 cannot connect now
    asyncpg.exceptions.InterfaceError,  # the connection closed under a client call
)


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors that say nothing about the request: retry later (or answer 503)."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | ConnectionError):
        return True
    if isinstance(exc, RAW_DRIVER_ERRORS):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
