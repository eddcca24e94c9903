"""Per-installation key/value storage: the service and its endpoints."""
