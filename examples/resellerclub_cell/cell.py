"""The NewResellerClub cell: the plugin's actions (module/plugin.json) as SDK handlers.

Each handler gets the validated payload and the installation's settings (``userid``,
``password`` …), sent by the gateway with every request. Vendor errors become typed cell errors
(404, 409, 401), which the gateway passes on to the caller. Writes pass the gateway's request id
as the vendor's idempotency key, so a redelivered request does not register a domain twice.

Run it with the credentials the gateway gave the installation:

    modyard cell run examples.resellerclub_cell.cell:cell --installation <workspace>:<slug>
"""

from __future__ import annotations

from typing import Any

from examples.resellerclub_cell.vendor import InMemoryResellerClub, VendorError
from modyard.cell import Cell, Conflict, NotFound, Request, Unauthorized

cell = Cell("newResellerClubCell")
vendor = InMemoryResellerClub()


def _login(settings: dict[str, Any]) -> tuple[str, str]:
    return str(settings.get("userid") or ""), str(settings.get("password") or "")


def _translated(error: VendorError) -> Exception:
    if error.code == "not_found":
        return NotFound(str(error))
    if error.code == "taken":
        return Conflict(str(error))
    return Unauthorized(str(error))


@cell.action("Domain", "checkAvailability")
async def check_availability(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    try:
        return vendor.available(*_login(settings), payload["domain"])
    except VendorError as error:
        raise _translated(error) from error


@cell.action("Domain", "create")
async def create_domain(payload: dict[str, Any], settings: dict[str, Any], request: Request) -> Any:
    try:
        return vendor.register(
            *_login(settings),
            payload["domain"],
            payload.get("years", 1),
            payload.get("nameservers"),
            bool(payload.get("privacy_protection", False)),
            idempotency_key=request.request_id,
        )
    except VendorError as error:
        raise _translated(error) from error


@cell.action("Domain", "fetch")
@cell.action("Domain", "synchronize")
async def fetch_domain(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    try:
        return vendor.get(*_login(settings), payload["domain"]).view()
    except VendorError as error:
        raise _translated(error) from error


@cell.action("Domain", "update")
async def update_domain(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    changes = {k: v for k, v in payload.items() if k == "privacy_protection"}
    try:
        return vendor.modify(*_login(settings), payload["domain"], **changes)
    except VendorError as error:
        raise _translated(error) from error


@cell.action("Domain", "renew")
async def renew_domain(payload: dict[str, Any], settings: dict[str, Any], request: Request) -> Any:
    try:
        return vendor.renew(
            *_login(settings), payload["domain"], payload["years"], request.request_id
        )
    except VendorError as error:
        raise _translated(error) from error


@cell.action("Domain", "transfer")
async def transfer_domain(
    payload: dict[str, Any], settings: dict[str, Any], request: Request
) -> Any:
    try:
        return vendor.transfer_in(
            *_login(settings), payload["domain"], payload["auth_code"], request.request_id
        )
    except VendorError as error:
        raise _translated(error) from error


@cell.action("Domain", "getEppCode")
async def get_epp_code(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    try:
        return {"auth_info": vendor.epp_code(*_login(settings), payload["domain"])}
    except VendorError as error:
        raise _translated(error) from error


@cell.action("NS", "fetch")
async def fetch_nameservers(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    try:
        domain = vendor.get(*_login(settings), payload["domain"])
    except VendorError as error:
        raise _translated(error) from error
    return {"domain": domain.name, "nameservers": dict(domain.nameservers)}


@cell.action("NS", "update")
async def update_nameservers(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    try:
        view = vendor.modify(
            *_login(settings), payload["domain"], nameservers=dict(payload["nameservers"])
        )
    except VendorError as error:
        raise _translated(error) from error
    return {"domain": view["domain"], "nameservers": view["nameservers"]}


@cell.action("Contact", "fetchAll")
async def fetch_contacts(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    try:
        return {"contacts": list(vendor.get(*_login(settings), payload["domain"]).contacts)}
    except VendorError as error:
        raise _translated(error) from error


@cell.action("Contact", "updateList")
async def update_contacts(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    try:
        vendor.modify(*_login(settings), payload["domain"], contacts=list(payload["contacts"]))
        return {"contacts": list(vendor.get(*_login(settings), payload["domain"]).contacts)}
    except VendorError as error:
        raise _translated(error) from error
