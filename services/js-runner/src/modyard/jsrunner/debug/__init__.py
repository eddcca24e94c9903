"""Debugging a component outside any flow (operators): POST /v1/run, GET /v1/logs."""
