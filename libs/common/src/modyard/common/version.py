"""The version every service reports (OpenAPI, /healthz), in a module of its own so that an app
can read it without importing the service app factory (and with it the database and the broker)."""

VERSION = "0.1.0"
