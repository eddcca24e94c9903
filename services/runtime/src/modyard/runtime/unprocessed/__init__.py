"""The dead-letter store of unprocessed messages: the service and its endpoints."""
