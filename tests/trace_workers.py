"""A module worker for the tracing test, run by ``modyard cell run trace_workers:worker`` as a
process of its own: ``Echo`` answers its payload, failing (retryable) the first time it sees a
message whose payload says ``fail_once``, so the runtime sends that node through a delay tier, and
for good (not retryable) the first time a payload says ``fatal_once`` (an unprocessed message)."""

from __future__ import annotations

from typing import Any

from modyard.sdk.cell import CellError, ComponentCall, ModuleWorker

worker = ModuleWorker("trace-mod")
_failed: set[str] = set()


@worker.component("Echo")
async def echo(payload: Any, call: ComponentCall) -> Any:
    if isinstance(payload, dict) and payload.get("fail_once") and call.message_id not in _failed:
        _failed.add(call.message_id)
        raise CellError("busy, try again", status=503, retryable=True)
    if isinstance(payload, dict) and payload.get("fatal_once") and "fatal" not in _failed:
        _failed.add("fatal")
        raise CellError("refused for good", status=400, retryable=False)
    return {"echo": payload}
