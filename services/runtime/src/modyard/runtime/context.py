"""What the runtime's logic needs besides a database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from modyard.common.bus.connection import Bus
from modyard.runtime.engine.flow_cache import FlowCache
from modyard.runtime.executors import ModuleExecutors
from modyard.runtime.installer_client import InstallerClient
from modyard.runtime.settings import RuntimeSettings


@dataclass
class RuntimeContext:
    settings: RuntimeSettings
    installer: InstallerClient
    bus: Bus
    flows: FlowCache
    #: js webhook components and start/stop are called from requests (flows/js_lifecycle.py).
    executors: ModuleExecutors | None = None


def get_context(request: Request) -> RuntimeContext:
    context = request.app.state.runtime
    assert isinstance(context, RuntimeContext)
    return context


Context = Annotated[RuntimeContext, Depends(get_context)]
