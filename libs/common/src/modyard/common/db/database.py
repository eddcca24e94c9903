"""The async engine and session factory of one service.

Every connection's ``search_path`` is the service's own schema, so tables are declared without a
schema and each service sees only its own (DESIGN.md §1: no service reads another's tables).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from modyard.common.settings import ServiceSettings

#: ``session.info`` key of the callback that wakes the outbox relay after a commit.
OUTBOX_WAKE_KEY = "modyard_outbox_wake"


class Database:
    def __init__(self, settings: ServiceSettings) -> None:
        self.schema = settings.db_schema
        url = make_url(settings.database_url)
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            # A connection that died with the server is noticed before it is handed out.
            pool_pre_ping=settings.db_pool_pre_ping,
            connect_args={
                "timeout": settings.db_connect_timeout_seconds,
                "server_settings": {
                    "search_path": self.schema,
                    "application_name": f"modyard-{settings.service_name}",
                },
            },
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._readiness_timeout = settings.readiness_timeout_seconds
        #: Set by the outbox relay so that an event committed here is relayed at once.
        self.on_outbox_commit: Callable[[], None] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits when the block ends and rolls back if it raises.

        This and :func:`modyard.common.db.session.get_session` are the only places that commit.
        """
        async with self.sessionmaker() as session, session.begin():
            if self.on_outbox_commit is not None:
                session.info[OUTBOX_WAKE_KEY] = self.on_outbox_commit
            yield session

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._readiness_timeout):
                async with self.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
