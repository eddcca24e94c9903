"""Flows: graphs of nodes, their validation, and starting and stopping them."""
