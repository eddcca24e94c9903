"""Cells: their catalogue, the store that installs and compiles them, and their endpoints
(the action call also as a plain-ASGI lane)."""
