"""The request log: batched writes off the request path, and its endpoint."""
