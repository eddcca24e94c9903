"""The installer's events: an installation created, configured, upgraded or removed, with what
the runtime, the gateway and the JS runner need to act without calling back."""

from __future__ import annotations

from typing import Any, Final

from pydantic import Field

from modyard.contracts.events import EventData

INSTALLATION_CREATED: Final = "modyard.installer.installation.created"
INSTALLATION_CONFIGURED: Final = "modyard.installer.installation.configured"
INSTALLATION_UPGRADED: Final = "modyard.installer.installation.upgraded"
INSTALLATION_REMOVED: Final = "modyard.installer.installation.removed"
#: The topic pattern a consumer binds to hear all four.
INSTALLATION_EVENTS: Final = "modyard.installer.installation.*"

#: Why the runtime stops flows after a breaking upgrade.
MAJOR_UPGRADE_REASON: Final = "module_major_upgrade"


class InstallationComponent(EventData):
    """One component of the installed version: how to validate and run a flow's node. Only the
    name and role are required, so an event recorded before a field existed still parses."""

    name: str
    role: str
    executor: str | None = None
    #: How to reach it, e.g. the ``http`` executor's deployment and path.
    executor_options: dict[str, Any] = Field(default_factory=dict)
    private: bool = False
    polling_interval_seconds: int | None = None
    #: A webhook component is served at /v1/hooks/… by the runtime (js executor).
    webhook: bool = False
    properties_schema: dict[str, Any] | None = None
    in_ports: list[str] = Field(default_factory=list)
    out_ports: list[str] = Field(default_factory=list)


class InstallationEvent(EventData):
    """``data`` of the four installation events (the upgrade and the removal add theirs)."""

    workspace: str
    slug: str
    installation_id: str
    module: str
    version: str
    format: str
    kind: str
    pinned: bool
    parent_id: str | None
    components: list[InstallationComponent]
    # -- upgraded only
    previous_version: str | None = None
    #: A move to a new major version: flows using the module are stopped.
    breaking: bool = False
    automatic: bool = False
    reason: str | None = None
    affected_components: list[InstallationComponent] | None = None
    # -- removed only: removed although others depended on it
    forced: bool = False


ACCOUNT_INVALIDATED: Final = "modyard.installer.account.invalidated"


class AccountInvalidated(EventData):
    """An account's OAuth refresh was refused: the account is invalid until its owner connects
    it again (the runtime sends the ``account.invalid`` system webhook). Never carries tokens."""

    workspace: str
    account_id: str
    owner: str
    service: str
    name: str
    reason: str
