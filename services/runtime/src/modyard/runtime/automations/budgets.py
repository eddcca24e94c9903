"""What one automation run may spend: settings ``MODYARD_AUTOMATION_*`` and the error past them.

Runs of every workspace share the runtime's event loop, so each run is bounded on its own (one
workspace exhausting its budget stops its run, not the others'): instructions, compute time (time
spent evaluating, not waiting on fetches, waits or the database), wall-clock time, the size of the
values it builds and the branches ``all`` runs at once. A run past a budget fails with
:class:`BudgetExceeded`: a 422 problem ``automation-budget-exceeded`` naming the budget and its
setting; it is not retried (the same run would spend the same again).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modyard.common.settings import ENV_FILES


class AutomationBudgets(BaseSettings):
    """Per-run budgets of automations (``MODYARD_AUTOMATION_<NAME>``)."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_AUTOMATION_", env_file=ENV_FILES, extra="ignore"
    )

    #: Instructions one run may execute (loops and calls included).
    max_steps: int = Field(default=100_000, ge=1)
    #: Items one ``repeat`` may go through.
    max_repeat: int = Field(default=1000, ge=1)
    #: Seconds of evaluation (templates, conditions, set) per run, waits and fetches excluded.
    max_compute_seconds: float = Field(default=5.0, gt=0)
    #: Seconds from start to end of a run, waits and fetches included.
    max_run_seconds: float = Field(default=900.0, gt=0)
    #: Approximate JSON size of one value a run builds (set, output, emit, call arguments).
    max_value_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    #: Items a list or an object may reach through ``set`` with ``type: merge``/``push``.
    max_collection_items: int = Field(default=100_000, ge=1)
    #: Branches of ``all`` running at once in one run (nested ones and calls included).
    max_parallel: int = Field(default=64, ge=1)


@lru_cache(maxsize=1)
def default_budgets() -> AutomationBudgets:
    """The budgets from the environment, read once."""
    return AutomationBudgets()


SETTING_PREFIX = "MODYARD_AUTOMATION_"


def setting_name(budget: str) -> str:
    """The environment variable of a budget: ``max_steps`` → ``MODYARD_AUTOMATION_MAX_STEPS``."""
    return SETTING_PREFIX + budget.upper()


__all__ = ["AutomationBudgets", "default_budgets", "setting_name"]
