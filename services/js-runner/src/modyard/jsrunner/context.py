"""What the runner's endpoints need: the runner and what it found at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from modyard.jsrunner.isolation import Isolation
from modyard.jsrunner.runner import JsRunner


@dataclass
class RunnerContext:
    runner: JsRunner
    isolation: Isolation


def get_context(request: Request) -> RunnerContext:
    context = request.app.state.js_runner
    assert isinstance(context, RunnerContext)
    return context


Context = Annotated[RunnerContext, Depends(get_context)]
