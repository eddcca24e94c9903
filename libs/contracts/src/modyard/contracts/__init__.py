"""What modyard's services and clients agree on: the event types on the bus with a model of each
one's ``data`` (:mod:`modyard.contracts.events`), and the public API's responses the SDK and the
CLI read (:mod:`modyard.contracts.api`).

A producer builds an event's data from these models and a consumer parses it back with them, so a
field renamed on one side is a type error (``mypy --strict``) or a failing drift test on the other,
not a key silently missing. This package depends on pydantic alone and imports nothing of modyard.
"""
