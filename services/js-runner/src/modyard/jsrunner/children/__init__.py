"""The sandboxed Node children as operators see them: GET /v1/sandbox."""
