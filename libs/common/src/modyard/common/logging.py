"""Structured logging: one JSON object per line, with the request and correlation ids bound.

Standard-library loggers (uvicorn, SQLAlchemy, aio-pika) are routed through the same structlog
processors so that every line a service prints has the same shape.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import Processor


def configure_logging(
    *, service: str, level: str = "INFO", json: bool = True, stream: TextIO = sys.stdout
) -> None:
    global _service_name
    _service_name = service
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            # First: a line below the logger's level costs nothing more (hot paths log at INFO).
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own handlers; ours replace them, and our middleware writes access lines.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # aiormq logs every reconnect attempt at length; our bus logs the state changes that matter.
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)


#: The service named on every line: read when a line is written, not when its logger was made.
#: structlog caches each logger with the processors configured at its first use
#: (``cache_logger_on_first_use``), so a closure over the name would keep the first
#: configuration's name in those loggers after a later configure_logging (a process that hosts
#: several apps in turn: the tests).
_service_name = ""


def _add_service(
    _logger: object, _name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    event.setdefault("service", _service_name)
    return event
