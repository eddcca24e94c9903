"""The runner's recent component output, for ``modyard js logs`` (``GET /v1/logs``).

The log lines also go to the runner's own log (``js_component_log``, ``js_child_stopped``); this
keeps the last :data:`KEEP` of them in memory, numbered, so that an operator can read and follow
one module's output without access to the log pipeline. Per process: with several runner
replicas, each shows what its own children printed.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Final

KEEP: Final = 5000


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float
    module: str
    pid: int | None
    level: str
    message: str


class LogBook:
    def __init__(self, keep: int = KEEP) -> None:
        self._entries: deque[Entry] = deque(maxlen=keep)
        self._seq = itertools.count(1)

    def add(self, module: str, pid: int | None, level: str, message: str) -> None:
        self._entries.append(Entry(next(self._seq), time.time(), module, pid, level, message))

    def latest(self) -> int:
        return self._entries[-1].seq if self._entries else 0

    def read(
        self, *, after: int = 0, module: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Entries numbered above ``after`` (oldest first), of modules whose version key starts
        with ``module`` (``acme.crm`` matches ``acme.crm@1.0.0-…``) when given."""
        found = []
        for entry in self._entries:
            if entry.seq <= after:
                continue
            if module and not (entry.module == module or entry.module.startswith(module + "@")):
                continue
            found.append(asdict(entry))
            if len(found) >= limit:
                break
        return found


#: The process's log book (children write to it; the API reads it).
LOGBOOK = LogBook()
