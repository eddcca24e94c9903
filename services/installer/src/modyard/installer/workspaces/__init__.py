"""Workspaces (tenants) and who is in them: the service and its endpoints."""
