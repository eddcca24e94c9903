"""Egress in the runtime: each workspace's allow-list (table, API) and the gate every
steerable outbound call goes through (see docs/runtime.md, "Egress")."""
