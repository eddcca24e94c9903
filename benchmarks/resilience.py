"""Faults under load, counted, with the scenarios of the fault tests:

- broker outage (tests/test_broker_outage.py): RabbitMQ stopped for 10 s (``rabbitmqctl
  stop_app``/``start_app``) under flow-webhook and gateway load, on a private broker node (the
  shared one is never stopped) and the session's isolated database;
- database restart (tests/test_database_restart.py): ``pg_ctl restart -m fast`` twice under
  installs and flow-webhook load, on a private PostgreSQL cluster.

Figures: requests/messages sent, completed, failed-and-reported (refused with a problem body),
unprocessed, lost and duplicated completions (both must be 0), and how long after ``start_app``
the services were ready, the first flow completed, the first gateway reply came and the backlog
accepted before the restart was drained (after a database restart: until the first install).
"""

from __future__ import annotations

from typing import Any

from examples.resellerclub_cell.module_archive import module_zip
from examples.resellerclub_cell.process import CWD, cell_command
from modyard.testing.broker_outage import run_broker_outage
from modyard.testing.database_restart import run_database_restart
from modyard.testing.infra import IsolatedInfra
from modyard.testing.resilience import Tally
from modyard.testing.throwaway import throwaway_postgres, throwaway_rabbitmq


def _total(*tallies: Tally) -> dict[str, int]:
    keys = tallies[0].as_dict().keys()
    return {key: sum(tally.as_dict()[key] for tally in tallies) for key in keys}


async def resilience(infra: IsolatedInfra) -> dict[str, Any]:
    async with throwaway_rabbitmq() as broker:
        report = await run_broker_outage(
            broker,
            infra.database_url,
            cell_archive=module_zip(),
            cell_command=cell_command,
            cell_cwd=CWD,
        )
    async with throwaway_postgres() as database:
        restart = await run_database_restart(database, infra.amqp_url)
    figures = report.figures()
    restart_figures = restart.figures()
    outage_total = _total(report.flows, report.gateway)
    restart_total = _total(restart.flows, restart.installs)
    return {
        "benchmark": "resilience",
        "broker_outage": {**figures, "total": outage_total},
        "database_restart": {**restart_figures, "total": restart_total},
        "targets": {"lost": 0, "duplicated": 0, "unexplained": 0, "half_applied_installs": 0},
        "targets_met": all(
            total[key] == 0
            for total in (outage_total, restart_total)
            for key in ("lost", "duplicated", "unexplained")
        )
        and figures["outbox_pings"]["received_by_every_service"] == report.pings_sent
        and restart_figures["half_applied_installs"] == 0,
    }
