"""One typed context object per service, instead of loose ``app.state`` attributes.

A service declares what its endpoints need besides a database session (its settings, clients,
caches) as one dataclass, stores it on the app once (:meth:`ContextSlot.attach`) and reads it in a
dependency (:meth:`ContextSlot.dependency`) typed as that class, so an endpoint never reads an untyped
attribute back and asserts its type::

    SLOT = ContextSlot(RegistryContext)
    Context = Annotated[RegistryContext, Depends(SLOT.dependency)]
"""

from __future__ import annotations

from typing import Generic, TypeVar

from fastapi import FastAPI, Request

T = TypeVar("T")

_ATTRIBUTE = "service_context"


class ContextSlot(Generic[T]):
    def __init__(self, kind: type[T]) -> None:
        self.kind = kind

    def attach(self, app: FastAPI, context: T) -> None:
        setattr(app.state, _ATTRIBUTE, context)

    def of(self, app: FastAPI) -> T:
        context = getattr(app.state, _ATTRIBUTE, None)
        if not isinstance(context, self.kind):
            # A wiring bug of the service (create_app did not attach it), never a request's fault.
            raise RuntimeError(f"this app has no {self.kind.__name__}: attach it in create_app")
        return context

    def get(self, request: Request) -> T:
        """The context of the app serving ``request`` (from code that has the request)."""
        return self.of(request.app)

    async def dependency(self, request: Request) -> T:
        """:meth:`get` as an endpoint's dependency. A coroutine on purpose: FastAPI runs a plain
        function dependency in its thread pool, a hop to another thread and back on every request
        for an attribute read."""
        return self.of(request.app)
