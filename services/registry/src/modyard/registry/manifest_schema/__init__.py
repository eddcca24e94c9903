"""The canonical manifest's JSON Schema, as the API serves it."""
