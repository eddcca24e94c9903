"""The gateway's OpenAPI document declares what its endpoints answer (found by schemathesis)."""

from __future__ import annotations

from modyard.appcell_gateway.app import create_app
from modyard.appcell_gateway.settings import GatewaySettings


def test_every_v1_operation_documents_its_problem_responses() -> None:
    # Regression: /v1/cells, /v1/requests and /v1/ui answered 401 and 404 problems while the
    # document promised only 200 and 422, so clients generated from it had no error type.
    document = create_app(GatewaySettings()).openapi()
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
        if "4XX" not in operation["responses"]
    ]
    assert undocumented == []
