"""Tables of the JavaScript runner, in its own schema (``js_runner``): only the shared messaging
tables (outbox, processed events) every service has; module state is the runtime's."""

from __future__ import annotations

from modyard.common.db.base import service_metadata

metadata = service_metadata()
