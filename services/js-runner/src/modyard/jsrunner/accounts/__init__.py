"""Accounts for components: context.auth from a node's account (credentials.py) and a module's
auth.js run for the installer (auth_calls.py, endpoints.py)."""
