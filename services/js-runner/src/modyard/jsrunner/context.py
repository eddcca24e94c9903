"""What the runner's endpoints need: the runner and what it found at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from modyard.common.service_context import ContextSlot
from modyard.jsrunner.isolation import Isolation
from modyard.jsrunner.runner import JsRunner


@dataclass
class RunnerContext:
    runner: JsRunner
    isolation: Isolation


SLOT = ContextSlot(RunnerContext)
Context = Annotated[RunnerContext, Depends(SLOT.dependency)]
