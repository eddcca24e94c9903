"""Events the deployer service consumes (besides the diagnostics ping every service handles)."""

from __future__ import annotations

from modyard.common.bus.consumer import EventSubscription

subscriptions: list[EventSubscription] = []
