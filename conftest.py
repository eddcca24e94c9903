# The fixtures every package's tests share (real PostgreSQL and RabbitMQ, isolated per session).
pytest_plugins = ["modyard.testing.fixtures"]
