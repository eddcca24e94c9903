"""Drift between a service's response models and what the SDK reads of them (issue 18): each
model of modyard.contracts.api names the fields of the service's own response model, in its
order (``--json`` prints them in that order): a field renamed, added or dropped on either side
fails here."""

from __future__ import annotations

import uuid

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from modyard.appcell_gateway import schemas as gateway_schemas
from modyard.common import errors
from modyard.contracts.api import ApiModel
from modyard.contracts.api import deployer as deployer_api
from modyard.contracts.api import gateway as gateway_api
from modyard.contracts.api import installer as installer_api
from modyard.contracts.api import registry as registry_api
from modyard.contracts.api import runtime as runtime_api
from modyard.deployer import schemas as deployer_schemas
from modyard.installer import schemas as installer_schemas
from modyard.registry import schemas as registry_schemas
from modyard.runtime import schemas as runtime_schemas
from modyard.runtime.apps import schemas as app_schemas
from modyard.runtime.automations import endpoints as automation_endpoints
from modyard.runtime.automations import schemas as automation_schemas
from modyard.runtime.webhooks import schemas as webhook_schemas
from modyard.runtime.worker_access import endpoints as runtime_workers

PAIRS: list[tuple[type[ApiModel], type[BaseModel]]] = [
    (registry_api.VersionSummary, registry_schemas.VersionSummary),
    (registry_api.PublishedVersion, registry_schemas.PublishedVersion),
    (registry_api.PublishResult, registry_schemas.PublishResult),
    (registry_api.StoredWithout, registry_schemas.StoredWithout),
    (registry_api.ModuleSummary, registry_schemas.ModuleSummary),
    (registry_api.ModuleDetail, registry_schemas.ModuleDetail),
    (installer_api.InstallationOut, installer_schemas.InstallationOut),
    (installer_api.InstallResult, installer_schemas.InstallResult),
    (installer_api.Member, installer_schemas.Member),
    (installer_api.WorkspaceOut, installer_schemas.WorkspaceOut),
    (installer_api.AclRuleOut, installer_schemas.AclRuleOut),
    (installer_api.ComponentOut, installer_schemas.ComponentOut),
    (installer_api.RevocationOut, installer_schemas.RevocationOut),
    (deployer_api.DeploymentOut, deployer_schemas.DeploymentOut),
    (deployer_api.DeploymentPage, deployer_schemas.DeploymentPage),
    (runtime_api.FlowOut, runtime_schemas.FlowOut),
    (runtime_api.InvalidParam, errors.InvalidParam),
    (runtime_api.FlowValidation, runtime_schemas.FlowValidation),
    (runtime_api.UnprocessedOut, runtime_schemas.UnprocessedOut),
    (runtime_api.BulkResult, runtime_schemas.BulkResult),
    (runtime_api.WebhookOut, webhook_schemas.WebhookOut),
    (runtime_api.AttemptOut, webhook_schemas.AttemptOut),
    (runtime_api.DeliveryOut, webhook_schemas.DeliveryOut),
    (runtime_api.WorkerCredentialsOut, runtime_workers.WorkerCredentialsOut),
    (runtime_api.AutomationOut, automation_schemas.AutomationOut),
    (runtime_api.SourceOut, automation_schemas.SourceOut),
    (runtime_api.RunOut, automation_schemas.RunOut),
    (runtime_api.PublishOut, app_schemas.PublishOut),
    (runtime_api.PublishedApp, app_schemas.PublishedApp),
    (runtime_api.InstanceAutomation, app_schemas.InstanceAutomation),
    (runtime_api.AppInstanceOut, app_schemas.AppInstanceOut),
    (gateway_api.CellSummary, gateway_schemas.CellSummary),
    (gateway_api.CellDetail, gateway_schemas.CellDetail),
    (gateway_api.CellCredentials, gateway_schemas.CellCredentials),
    (gateway_api.ActionAnswer, gateway_schemas.ActionAnswer),
    (gateway_api.RequestEntry, gateway_schemas.RequestEntry),
    (gateway_api.SlotBundle, gateway_schemas.SlotBundle),
    (gateway_api.SlotBundles, gateway_schemas.SlotBundles),
]


@pytest.mark.parametrize(("contract", "service"), PAIRS, ids=[c.__name__ for c, _ in PAIRS])
def test_the_sdks_model_names_the_services_fields_in_order(
    contract: type[ApiModel], service: type[BaseModel]
) -> None:
    # FastAPI sends every field of a response model (defaults too), so the SDK may require any.
    assert list(contract.model_fields) == list(service.model_fields)


def test_an_answer_keeps_what_the_service_sent() -> None:
    """``--json`` prints the answer as sent: unknown fields kept, none added, order unchanged."""
    sent = {
        "slug": "acme",
        "name": "Acme",
        "created_at": "2026-12-06T17:15:13.123000Z",
        "members": [{"subject": "a@x", "role": "owner", "added_at": "2026-12-06T17:15:13Z"}],
        "newer_field": {"kept": True},
    }
    answer = installer_api.WorkspaceOut.model_validate(sent)
    assert answer.members[0].role == "owner"
    assert list(answer.as_json().items()) == list(sent.items())


def test_an_action_answer_keeps_the_cells_for_update_under_its_wire_name() -> None:
    sent = {"status": "success", "result": {"id": 7}, "for-update": {"expires": "2027-01-01"}}
    answer = gateway_api.ActionAnswer.model_validate(sent)
    assert answer.for_update == {"expires": "2027-01-01"}
    assert answer.as_json() == sent


def test_a_slot_answer_reads_what_the_gateway_sends() -> None:
    """The gateway's own model, sent as JSON, reads back field for field (its UUIDs as text)."""
    sent = gateway_schemas.SlotBundles(
        slot="billing.sidebar",
        product="domains",
        bundles=[
            gateway_schemas.SlotBundle(kind="dependency", url="https://cdn.example/lib.js"),
            gateway_schemas.SlotBundle(
                kind="module",
                name="sidebar",
                path="ui/sidebar.js",
                digest="sha256:00",
                installation_id=uuid.uuid4(),
                slot_filters=["billing.*"],
            ),
        ],
    ).model_dump(mode="json")
    answer = gateway_api.SlotBundles.model_validate(sent)
    assert answer.bundles[1].slot_filters == ["billing.*"]
    assert answer.as_json() == sent


def test_automation_endpoints_declare_no_model_so_any_json_is_their_answer() -> None:
    """``call_endpoint`` answers ``EndpointOutput`` (any JSON value) because the runtime's
    endpoint routes send their automation's output as it is; a model added there belongs in
    modyard.contracts.api too."""
    routes = [
        route
        for route in automation_endpoints.router.routes
        if isinstance(route, APIRoute) and route.path.endswith("/endpoints/{name:path}")
    ]
    assert {method for route in routes for method in route.methods} == {
        "GET",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
    }
    assert {route.response_model for route in routes} == {None}
    output = TypeAdapter(runtime_api.EndpointOutput)
    assert output.validate_python([1, "two", {"three": None}]) == [1, "two", {"three": None}]
