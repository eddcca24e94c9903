"""RabbitMQ stopped for 10 s (``rabbitmqctl stop_app``) and started again under flow-webhook and
gateway load: the services say they are not ready, callers get prompt 503 problems, everything
resumes by itself, the outbox delivers what was written meanwhile, and every request is accounted
for — none lost, none completed twice.

The broker is a private node started for this test: the shared one must never be stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modyard.testing.broker_outage import run_broker_outage
from modyard.testing.infra import IsolatedInfra
from modyard.testing.throwaway import throwaway_rabbitmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the example cell lives in examples/

from examples.resellerclub_cell.module_archive import module_zip  # noqa: E402
from examples.resellerclub_cell.process import CWD, cell_command  # noqa: E402

pytestmark = pytest.mark.infra


@pytest.mark.timeout(240)
async def test_broker_outage_is_refused_promptly_then_recovered_without_loss(
    infra: IsolatedInfra,
) -> None:
    async with throwaway_rabbitmq() as broker:
        report = await run_broker_outage(
            broker,
            infra.database_url,
            cell_archive=module_zip(),
            cell_command=cell_command,
            cell_cwd=CWD,
        )
    figures = report.figures()

    # While the broker was down every service said so, and callers heard it as 503 problems.
    assert set(report.readiness_down.values()) == {503}, report.readiness_down
    during = report.statuses_during_outage
    assert set(during["hooks"]) <= {"202", "503"}, during
    assert "503" in during["hooks"], during
    assert set(during["gateway"]) <= {"200", "503", "504"}, during
    assert "503" in during["gateway"], during
    assert report.slowest_refusal_seconds < 10, figures  # refused, not left hanging

    # Afterwards it all came back on its own: readiness, consumers and publishers.
    assert set(report.readiness_after.values()) == {200}, report.readiness_after
    assert report.first_flow_completion_seconds is not None, figures
    assert report.first_gateway_reply_seconds is not None, figures

    # Every event written to an outbox during the outage reached every service, once.
    assert report.pings_received_everywhere == report.pings_sent == 5, figures
    assert report.ping_receipts_duplicated == 0, figures
    assert sum(report.unpublished_outbox.values()) == 0, report.unpublished_outbox

    # Every request is accounted for.
    for tally in (report.flows, report.gateway):
        assert tally.lost == 0, (figures, report.lost_flow_keys[:20], report.error_logs)
        assert tally.duplicated == 0, figures
        unexplained = [
            (answer, f"{answer.at - report.stopped_at:+.2f} s from stop_app")
            for answer in report.flow_calls.unexplained() + report.gateway_calls.unexplained()
        ]
        assert tally.unexplained == 0, (unexplained[:5], report.error_logs)
        assert tally.completed + tally.refused + tally.unprocessed == tally.sent, figures
    assert report.flows.refused > 0, figures
    assert report.gateway.refused > 0, figures
