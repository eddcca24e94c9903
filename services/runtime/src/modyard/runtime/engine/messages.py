"""The message that travels between nodes on the work queue (JSON on the wire)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from pydantic import BaseModel, Field


class FailedAttempt(BaseModel):
    attempt: int
    at: str
    message: str
    retryable: bool
    status: int | None = None


class WorkMessage(BaseModel):
    #: Stable across redeliveries and retries: the key that keeps a node from running twice.
    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    workspace: str
    flow_id: str
    node_id: str
    port: str = "in"
    payload: Any = None
    attempt: int = 1
    errors: list[FailedAttempt] = Field(default_factory=list)
    correlation_id: str | None = None
    #: How many emitted events the chain that started this message went through (``core.emit``
    #: → ``core.event``); children keep it, and an emit at the limit fails (flows/events.py).
    depth: int = Field(default=0, ge=0)
    #: When the run this message belongs to started (epoch seconds), for the end-to-end latency
    #: metric; children keep it (None in messages from before it existed: the first node sets it).
    started_at: float | None = None

    def child_id(self, connection_index: int, output_index: int) -> str:
        """Deterministic, so that re-publishing a node's outputs re-creates the same messages."""
        digest = hashlib.sha256(f"{self.message_id}:{connection_index}:{output_index}".encode())
        return digest.hexdigest()[:32]
