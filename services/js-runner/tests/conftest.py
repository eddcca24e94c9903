"""Fixtures of the JavaScript runner's tests (helpers in jsrunner_env.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest
from jsrunner_env import Harness, runner_settings, running_harness
from persistence_env import persistent  # noqa: F401 - the runner with its database


@pytest.fixture(scope="session")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = runner_settings()
    async with running_harness(settings, tmp_path_factory.mktemp("modules")) as harness:
        yield harness
