"""The request-scoped session: the one place where an HTTP request's work is committed.

Endpoints and services only ``add``/``flush``; the commit happens here once the endpoint has
returned and before the response is sent (``scope="function"``), so a caller is never told that
something was accepted that then failed to commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.connection import BusUnavailable
from modyard.common.db.database import Database
from modyard.common.errors import ServiceUnavailable


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    try:
        async with database.transaction() as session:
            yield session
    except BusUnavailable as exc:
        # An endpoint that publishes directly (a flow webhook) while the broker is away: its
        # transaction is rolled back, and the caller hears that nothing was accepted.
        raise ServiceUnavailable("The message broker is unreachable; retry shortly.") from exc
    except (OperationalError, OSError, ConnectionError) as exc:
        raise ServiceUnavailable("The database is unreachable; retry shortly.") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise ServiceUnavailable("The database connection was lost; retry shortly.") from exc
        raise


DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
