"""Response models of the endpoints every service has (health, diagnostics).

Kept free of FastAPI and SQLAlchemy so that the SDK and the CLI can import them cheaply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    service: str
    version: str


class PingSent(BaseModel):
    ping_id: str
    event_id: str
    event_type: str


class PingReceipt(BaseModel):
    event_id: str
    sent_by: str
    received_at: datetime


class PingReceipts(BaseModel):
    ping_id: str
    service: str
    receipts: list[PingReceipt]
