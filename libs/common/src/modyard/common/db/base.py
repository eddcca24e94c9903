"""What every service's tables share: the constraint naming convention and eager defaults.

Each service keeps its own ``MetaData`` (its own schema and Alembic history, and two services'
``outbox`` tables must not meet in one process), so each declares its own ``Base``::

    metadata = service_metadata()

    class Base(ServiceModel, DeclarativeBase):
        metadata = metadata
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import MetaData

#: Constraint names Alembic can find again: autogenerate and later migrations name the same
#: index or key the same way in every service.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """A new ``MetaData`` with the naming convention, one per service."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class ServiceModel:
    """The mixin of each service's declarative ``Base``."""

    # Server-set timestamps come back with each INSERT/UPDATE, so reading them after a flush
    # needs no lazy load (which async sessions cannot do).
    __mapper_args__: Any = {"eager_defaults": True}  # noqa: RUF012 - read once by SQLAlchemy
