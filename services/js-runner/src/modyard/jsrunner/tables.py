"""Where Appmixer components keep what outlives a call (``context.state*``, ``lock``,
``setTimeout``, ``store.*``, files), in the runner's own schema (``js_runner``).

Every row carries the workspace it belongs to, and every statement filters by the workspace of
the call that asked (never by anything the component says): one workspace's components cannot
read or change another's rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from modyard.jsrunner.models import metadata

#: ``context.state*`` (scope ``node``), ``context.flow.state*`` (``flow``) and
#: ``context.service.state*`` (``service``). ``owner`` is ``<flow>/<node>``, ``<flow>`` or the
#: module's name. ``persistent`` rows (components declaring ``state.persistent``) outlive a stop.
state = sa.Table(
    "component_state",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("owner", sa.String(512), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("value", JSONB(none_as_null=True), nullable=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("flow_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("persistent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

#: ``context.lock(name)``: one row per held lock, taken over once ``expires_at`` passed.
locks = sa.Table(
    "component_locks",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(1024), primary_key=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

#: ``context.setTimeout``: the timer's content waits here; the runtime's delay tiers carry only
#: its id, so ``clearTimeout`` is one update.
timers = sa.Table(
    "component_timers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("flow_id", sa.String(64), nullable=False),
    sa.Column("node_id", sa.String(255), nullable=False),
    sa.Column("content", JSONB(none_as_null=True), nullable=True),
    sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
    #: pending, fired, cancelled
    sa.Column("status", sa.String(16), nullable=False),
)

#: ``context.store.*``: a workspace's data stores (Appmixer's Data Store), key → JSON value.
store_items = sa.Table(
    "store_items",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("store_id", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("value", JSONB(none_as_null=True), nullable=True),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

#: ``context.saveFileStream``: a file's description; its bytes are in ``file_chunks``.
files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("workspace", sa.String(64), nullable=False, index=True),
    sa.Column("filename", sa.String(1024), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("length", sa.BigInteger, nullable=False),
    #: writing while chunks arrive; ready once the last one did (only ready files are read).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

file_chunks = sa.Table(
    "file_chunks",
    metadata,
    sa.Column(
        "file_id",
        sa.String(64),
        sa.ForeignKey("files.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
