"""What the console's pages need: its settings, the token verifier and the shared HTTP pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends

from modyard.backoffice.settings import BackofficeSettings
from modyard.common.service_context import ContextSlot
from modyard.common.tokens import VerifiedTokens


@dataclass
class BackofficeContext:
    settings: BackofficeSettings
    tokens: VerifiedTokens
    #: One connection pool for every operator's calls, opened by the app's lifespan.
    transport: httpx.AsyncHTTPTransport | None = None

    @property
    def pool(self) -> httpx.AsyncHTTPTransport:
        if self.transport is None:
            raise RuntimeError("the console's HTTP pool opens with the app's lifespan")
        return self.transport


SLOT = ContextSlot(BackofficeContext)
Context = Annotated[BackofficeContext, Depends(SLOT.dependency)]
