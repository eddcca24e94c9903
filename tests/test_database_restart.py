"""PostgreSQL restarted (``pg_ctl restart -m fast``) twice during installs and flow load: callers
see every failure (a 503 problem, never another 5xx), nothing is half-applied in the installer
(installation, dependency edge, lock and created event together or not at all), and every flow
message finishes exactly once.

The database is a private cluster started for this test: the shared one must never be restarted.
"""

from __future__ import annotations

import pytest

from modyard.testing.database_restart import run_database_restart
from modyard.testing.infra import IsolatedInfra
from modyard.testing.throwaway import throwaway_postgres

pytestmark = pytest.mark.infra


@pytest.mark.timeout(180)
async def test_database_restarts_are_refused_visibly_and_leave_nothing_half_applied(
    infra: IsolatedInfra,
) -> None:
    async with throwaway_postgres() as database:
        report = await run_database_restart(database, infra.amqp_url)
    figures = report.figures()
    unexplained = report.flow_calls.unexplained() + report.install_calls.unexplained()

    # Failures were 503 problems the callers saw: no other 5xx, no hang.
    assert report.flows.unexplained == 0, (unexplained[:5], report.error_logs)
    assert report.installs.unexplained == 0, (unexplained[:5], report.error_logs)
    assert set(report.readiness_after.values()) == {200}, report.readiness_after

    # The installer: every 201 is there, and whatever is there is whole.
    assert report.consistency.missing == [], figures
    assert report.consistency.incomplete == [], figures
    assert report.consistency.orphan_events == [], figures
    assert sum(report.unpublished_outbox.values()) == 0, report.unpublished_outbox

    # Flows: every accepted message finished (or was stored), none twice.
    assert report.flows.lost == 0, (figures, report.lost_flow_keys[:20], report.error_logs)
    assert report.flows.duplicated == 0, figures
    # A webhook refused with a 503 queued nothing: its caller may retry without running twice.
    assert report.flows.refused_but_completed == 0, figures
    for tally in (report.flows, report.installs):
        assert tally.completed + tally.refused + tally.unprocessed == tally.sent, figures
    assert all(seconds is not None for seconds in report.recovery_seconds), figures
