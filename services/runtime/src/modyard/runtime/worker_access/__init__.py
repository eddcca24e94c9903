"""Module workers' broker access (one RabbitMQ user and request queue per installation): the
service and its endpoints (issue = rotate, revoke)."""
