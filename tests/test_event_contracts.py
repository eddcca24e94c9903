"""Drift between an event's producer and its consumers (issue 18): each producer's real event
builder, read back by the consumers' own parsing (modyard.contracts.events).

A producer renaming or dropping a field fails here: the data no longer fits the contract the
consumers parse (they would skip the event), or carries a key no consumer knows.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from modyard.common.bus.envelope import CloudEvent
from modyard.contracts.events import EventData, parse
from modyard.contracts.events.deployer import DEPLOYMENT_STATUS_CHANGED, DeploymentStatusChanged
from modyard.contracts.events.installer import (
    INSTALLATION_CREATED,
    INSTALLATION_REMOVED,
    INSTALLATION_UPGRADED,
    InstallationEvent,
)
from modyard.contracts.events.registry import MODULE_PUBLISHED, ModuleVersionEvent
from modyard.contracts.events.runtime import AUTOMATION_EVENT_EMITTED, AutomationEventEmitted
from modyard.deployer.events import status_changed
from modyard.deployer.models import Deployment
from modyard.installer.events import installation_event
from modyard.installer.models import Installation
from modyard.jsrunner.ahead import has_js_components
from modyard.registry.events import module_event
from modyard.registry.models import ModuleVersion
from modyard.runtime.automations.events import workspace_event
from modyard.runtime.flows.events import heard_event

MANIFEST: dict[str, Any] = {
    "name": "acme",
    "version": "2.0.0",
    "format": "appmixer",
    "kind": "connector",
    "components": [
        {
            "name": "Send",
            "role": "action",
            "executor": {"type": "js", "extra": {"entry": "send.js"}},
            "webhook": True,
            "in_ports": [{"name": "in"}],
            "out_ports": [{"name": "out"}],
        }
    ],
}


def installation() -> Installation:
    return Installation(
        id=uuid.uuid4(),
        slug="acme",
        module="acme",
        version="2.0.0",
        format="appmixer",
        kind="connector",
        pinned=False,
        parent_id=None,
        manifest=MANIFEST,
    )


def fits(model: type[EventData], event: CloudEvent) -> Any:
    """``event``'s data as its consumers read it; every key it carries is one they know."""
    assert isinstance(event.data, dict)
    unknown = event.data.keys() - model.model_fields.keys()
    assert not unknown, f"{event.type} carries fields no consumer reads: {sorted(unknown)}"
    parsed = parse(model, event.data)
    assert parsed is not None, f"{event.type} no longer fits {model.__name__}"
    return parsed


def test_the_installers_events_are_what_the_runtime_gateway_and_js_runner_read() -> None:
    created = installation_event(INSTALLATION_CREATED, "test", "ws", installation())
    data = fits(InstallationEvent, created)
    assert (data.workspace, data.slug, data.module, data.version) == ("ws", "acme", "acme", "2.0.0")
    component = data.components[0]
    assert (component.name, component.executor, component.webhook) == ("Send", "js", True)
    assert component.in_ports == ["in"]
    assert has_js_components(data)
    # What a flow of the workspace hears: the listed fields only.
    heard = heard_event(created)
    assert heard is not None
    assert heard.data == {
        "workspace": "ws",
        "slug": "acme",
        "module": "acme",
        "version": "2.0.0",
        "pinned": False,
        "kind": "connector",
    }

    upgraded = installation_event(
        INSTALLATION_UPGRADED,
        "test",
        "ws",
        installation(),
        previous_version="1.4.0",
        breaking=True,
        automatic=False,
        reason="module_major_upgrade",
        affected_components=[{"name": "Send", "role": "action"}],
    )
    data = fits(InstallationEvent, upgraded)
    assert data.breaking
    assert data.reason == "module_major_upgrade"
    assert data.previous_version == "1.4.0"
    assert [c.name for c in data.affected_components or []] == ["Send"]

    removed = installation_event(INSTALLATION_REMOVED, "test", "ws", installation(), forced=True)
    assert fits(InstallationEvent, removed).forced is True
    # An upgrade's own fields stay off the events that are not upgrades.
    assert isinstance(created.data, dict)
    assert "breaking" not in created.data
    assert "reason" not in created.data


def test_an_installer_event_field_no_consumer_knows_is_refused_where_it_is_built() -> None:
    with pytest.raises(TypeError, match="previous"):
        installation_event(INSTALLATION_UPGRADED, "test", "ws", installation(), previous="1.0.0")


def test_a_renamed_field_is_an_event_the_consumers_skip() -> None:
    """What the drift checks above guard against: a consumer parsing data a producer renamed."""
    created = installation_event(INSTALLATION_CREATED, "test", "ws", installation())
    assert isinstance(created.data, dict)
    drifted = {**created.data, "module_name": created.data["module"]}
    del drifted["module"]
    assert parse(InstallationEvent, drifted) is None


def test_the_registrys_published_event_is_what_the_installer_reads() -> None:
    version = ModuleVersion(
        version="1.2.0",
        manifest={"format": "modyard", "kind": "connector"},
        archive_digest="sha256:" + "0" * 64,
        yanked=False,
        yanked_reason=None,
    )
    data = fits(ModuleVersionEvent, module_event(MODULE_PUBLISHED, "test", "acme", version))
    assert (data.name, data.version, data.digest) == ("acme", "1.2.0", "sha256:" + "0" * 64)


def test_the_deployers_status_event_fits_its_contract() -> None:
    deployment = Deployment(
        id=uuid.uuid4(),
        name="web",
        repository="registry.local/web",
        tag="1",
        digest=None,
        status="running",
        desired="deployed",
        reason=None,
        restart_count=0,
        generation=3,
        port=8080,
    )
    event = status_changed("test", deployment, "starting")
    assert event.type == DEPLOYMENT_STATUS_CHANGED
    data = fits(DeploymentStatusChanged, event)
    assert (data.image, data.previous_status, data.generation) == (
        "registry.local/web:1",
        "starting",
        3,
    )


def test_an_automation_event_is_what_the_automations_and_waits_read() -> None:
    event = workspace_event("test", "ws", "toolbox.executed", {"ok": 1}, depth=2)
    assert event.type == AUTOMATION_EVENT_EMITTED
    data = fits(AutomationEventEmitted, event)
    assert (data.workspace, data.type, data.payload, data.depth) == (
        "ws",
        "toolbox.executed",
        {"ok": 1},
        2,
    )
