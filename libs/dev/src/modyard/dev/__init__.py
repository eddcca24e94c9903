"""Developer tooling behind ``modyard dev``: local infrastructure, migrations, running the services.

Everything here drives external programs (PostgreSQL, RabbitMQ, dockerd, the image registry and the
service console scripts) through subprocesses; nothing imports the service packages.
"""
