"""The request-scoped session: the one place where an HTTP request's work is committed.

Endpoints and services only ``add``/``flush``; the commit happens here once the endpoint has
returned and before the response is sent (``scope="function"``), so a caller is never told that
something was accepted that then failed to commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.connection import BusUnavailable
from modyard.common.db.availability import is_database_unavailable
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
    except Exception as exc:
        if is_database_unavailable(exc):
            raise ServiceUnavailable("The database is unreachable; retry shortly.") from exc
        raise


DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
