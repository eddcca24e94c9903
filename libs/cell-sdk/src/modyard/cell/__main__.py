"""``python -m modyard.cell TARGET --credentials FILE``: run a cell (or a module worker) with the
cell SDK alone, until SIGTERM/SIGINT. The same as ``modyard cell run`` of the full SDK, without
its API client, tracing or fast event loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import structlog

from modyard.cell.runner import load_target, serve
from modyard.cell.worker import WorkerOptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modyard.cell", description=__doc__)
    parser.add_argument("target", help="module:attribute naming a Cell or ModuleWorker")
    parser.add_argument(
        "--credentials",
        type=Path,
        help="JSON with amqp_url and queue (`modyard cells credentials --json`)",
    )
    parser.add_argument("--amqp-url", default=os.environ.get("MODYARD_CELL_AMQP_URL"))
    parser.add_argument("--queue", default=os.environ.get("MODYARD_CELL_QUEUE"))
    parser.add_argument("--prefetch", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--shutdown-timeout", type=float, default=30.0)
    parser.add_argument("--log-level", default=os.environ.get("MODYARD_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    try:
        runnable = load_target(args.target)
    except (ValueError, ImportError) as exc:
        parser.error(str(exc))
    amqp_url, queue = args.amqp_url, args.queue
    if args.credentials is not None:
        given = json.loads(args.credentials.read_text())
        amqp_url, queue = amqp_url or given["amqp_url"], queue or given["queue"]
    if not amqp_url:
        parser.error("give --amqp-url or --credentials (or MODYARD_CELL_AMQP_URL)")
    # One JSON line per event, as the services log.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(args.log_level.upper(), logging.INFO)
        ),
    )
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    options = WorkerOptions(
        amqp_url=amqp_url,
        queue=queue,
        prefetch=args.prefetch,
        concurrency=args.concurrency,
        shutdown_timeout=args.shutdown_timeout,
    )
    try:
        asyncio.run(serve(runnable, options))
    except (OSError, TimeoutError) as exc:  # BusUnavailable is one: refused, unreachable
        print(f"cannot start {runnable.name}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
