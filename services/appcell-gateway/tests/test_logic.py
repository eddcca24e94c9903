"""Pure logic of the gateway, without infrastructure: postpayload rendering, action security,
cell keys, schema compilation and the install-time ``implements`` check."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from examples.resellerclub_cell.module_archive import module_zip
from modyard.appcell_gateway import upstream
from modyard.appcell_gateway.broker_admin import BrokerAdmin
from modyard.appcell_gateway.cells.catalogue import CellInvalid, build_catalogue
from modyard.appcell_gateway.cells.store import parse_key
from modyard.appcell_gateway.postpayload import render
from modyard.appcell_gateway.problems import CellNotFound, SecurityRefused
from modyard.appcell_gateway.security import enforce
from modyard.appcell_gateway.settings import GatewaySettings
from modyard.appcell_gateway.upstream import InstallerClient, UpstreamMissing
from modyard.appcell_gateway.validation import SchemaCompileError, SchemaFiles
from modyard.common.auth import Principal, Role
from modyard.common.errors import ServiceUnavailable
from modyard.common.templates import TemplateError
from modyard.modules.archive import ArchiveLimits, read_archive
from modyard.modules.formats.appcell import AppCellAdapter


def test_a_lone_placeholder_keeps_the_value_and_text_gets_it_as_text() -> None:
    result = {"auth_info": "EPP-1", "ns": ["a", "b"], "n": 3, "nested": {"x": None}}
    template = {
        "type": "overwrite",
        "data": {
            "whole": "{{result}}",
            "code": "{{ result.auth_info }}",
            "first": "{{result.ns[0]}}",
            "dotted": "{{result.ns.1}}",
            "text": "code {{result.auth_info}} / {{result.n}} / {{result.ns}}",
            "missing": "{{result.nope.deeper}}",
            "missing_in_text": "[{{result.nope}}]",
            "null": "{{result.nested.x}}",
            "literal": 7,
        },
    }
    assert render(template, result) == {
        "type": "overwrite",
        "data": {
            "whole": result,
            "code": "EPP-1",
            "first": "a",
            "dotted": "b",
            "text": 'code EPP-1 / 3 / ["a","b"]',
            "missing": None,
            "missing_in_text": "[]",
            "null": None,
            "literal": 7,
        },
    }


def test_postpayload_keys_with_dashes_stay_paths_and_other_placeholders_stay_text() -> None:
    result = {"domain-name": "example.org", "$id": 7}
    template = {"d": "{{result.domain-name}}", "i": "{{ result.$id }}", "o": "x {{ order.id }}"}
    assert render(template, result) == {"d": "example.org", "i": 7, "o": "x {{ order.id }}"}


def test_a_postpayload_whose_braces_do_not_close_is_refused_with_its_place() -> None:
    with pytest.raises(TemplateError) as caught:
        render({"data": ["ok", "{{ result.code"]}, {"code": 1})
    assert caught.value.pointer == "/data/1"


def _principal(
    *roles: Role,
    products: frozenset[str] = frozenset(),
    permissions: frozenset[str] = frozenset(),
) -> Principal:
    return Principal(
        subject="s",
        roles=frozenset(roles),
        products=frozenset(products),
        permissions=frozenset(permissions),
    )


@pytest.mark.parametrize(
    ("security", "principal", "product", "allowed"),
    [
        ("protected", _principal(Role.user), None, True),
        ("public", _principal(Role.user, products=frozenset({"p1"})), "p1", True),
        ("public", _principal(Role.user, products=frozenset({"p1"})), "p2", False),
        ("public", _principal(Role.user, products=frozenset({"p1"})), None, False),
        ("public", _principal(Role.service), "p1", False),
        ("public", _principal(Role.operator), "p9", True),
        (
            "rbac::domains.transfer",
            _principal(Role.user, permissions=frozenset({"domains.transfer"})),
            None,
            True,
        ),
        (
            "rbac::domains.transfer",
            _principal(Role.user, permissions=frozenset({"domains"})),
            None,
            False,
        ),
        ("rbac::domains.transfer", _principal(Role.operator), None, True),
        ("something-else", _principal(Role.user), None, False),
    ],
)
def test_action_security(
    security: str, principal: Principal, product: str | None, allowed: bool
) -> None:
    if allowed:
        enforce(security, principal, product)
    else:
        with pytest.raises(SecurityRefused):
            enforce(security, principal, product)


def test_a_cell_is_named_by_installation_id_or_workspace_and_slug() -> None:
    installation = uuid.uuid4()
    assert parse_key(str(installation)) == installation
    assert parse_key("shop:rc") == ("shop", "rc")
    assert parse_key("shop:app.nested") == ("shop", "app.nested")
    for bad in ("rc", ":rc", "shop:"):
        with pytest.raises(CellNotFound):
            parse_key(bad)


def test_schemas_compile_from_bundled_files_only() -> None:
    files = SchemaFiles(
        {"schema/a.json": {"$ref": "b.json"}, "schema/b.json": {"type": "integer"}},
        cell_name="someCell",
    )
    compiled = files.compile({"path": "schema/a.json", "reference": "schema/a.json"})
    assert compiled.violations(3) == []
    assert [v.message for v in compiled.violations("x")] == ['"x" is not of type "integer"']
    with pytest.raises(SchemaCompileError, match="names no file bundled"):
        files.compile({"inline": {"$ref": "https://example.com/elsewhere.json"}})


def _catalogue(edit: Any = None) -> dict[str, Any]:
    archive = module_zip(edit=edit)
    manifest = AppCellAdapter().parse(read_archive(archive, ArchiveLimits()))
    return build_catalogue(manifest, archive)


def test_the_example_cells_catalogue_inherits_schemas_from_its_resources() -> None:
    catalogue = _catalogue()
    actions = catalogue["plugins"]["NewResellerClub"]["actions"]
    assert actions["getEppCode"][0]["result"]["path"] == "schema/domain/eppcode.result.schema.json"
    assert actions["renew"][0]["result"]["path"] == "schema/domain/domain.result.json"
    assert actions["checkAvailability"][0]["security"] == "public"
    assert actions["synchronize"][0]["postpayload"]["data"]["status"] == "{{result.status}}"
    assert {"resource": "Contact", "action": "fetchAll"}.items() <= actions["fetchAll.Contact"][
        0
    ].items()


def test_a_plugin_lacking_what_it_implements_is_refused_with_what_to_add() -> None:
    def without(documents: dict[str, dict[str, Any]]) -> None:
        actions = documents["plugin.json"]["plugin"]["NewResellerClub"]["actions"]
        del actions["checkAvailability"]
        del actions["renew"]

    with pytest.raises(CellInvalid) as refused:
        _catalogue(without)
    message = str(refused.value)
    assert "availability.schema" in message
    assert '"checkAvailability"' in message
    assert "renewable.schema" in message
    assert '"renew"' in message
    assert "add the action(s) to plugin.json" in message


async def test_cell_credentials_name_the_broker_as_cells_reach_it() -> None:
    settings = GatewaySettings(amqp_url="amqp://admin:secret@rabbitmq:5672/modyard")
    own = BrokerAdmin(settings)
    elsewhere = BrokerAdmin(
        GatewaySettings(
            amqp_url="amqp://admin:secret@rabbitmq:5672/modyard",
            cell_broker_address="127.0.0.1:5672",
        )
    )
    try:
        assert own.amqp_url_for("cell-1", "p/w") == "amqp://cell-1:p%2Fw@rabbitmq:5672/modyard"
        # Cells deployed on the host network (compose) reach the broker by its published port.
        assert elsewhere.amqp_url_for("cell-1", "pw") == "amqp://cell-1:pw@127.0.0.1:5672/modyard"
    finally:
        await own.close()
        await elsewhere.close()


class _Clock:
    now = 1000.0

    def monotonic(self) -> float:
        return self.now


class _Installer(InstallerClient):
    """The installer client with its HTTP fetch replaced: each fetch waits for ``release``."""

    def __init__(self, ttl: float) -> None:
        super().__init__(GatewaySettings(settings_cache_seconds=ttl))
        self.fetches = 0
        self.answer: dict[str, Any] | Exception = {"password": "one"}
        self.release = asyncio.Event()

    async def _fetch(self, workspace: str, slug: str) -> dict[str, Any]:
        self.fetches += 1
        await self.release.wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        return dict(self.answer)


async def _settle() -> None:
    """Let the tasks started so far run up to their next wait (a fetch runs in a task of its
    own, started by the request that needs it: a few turns of the loop)."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(upstream, "time", clock)
    return clock


async def test_cell_settings_are_refreshed_before_they_expire_without_a_request_waiting(
    clock: _Clock,
) -> None:
    installer = _Installer(ttl=5)
    installation = uuid.uuid4()
    installer.release.set()
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "one"}
    installer.release.clear()
    installer.answer = {"password": "two"}
    clock.now += 3.5  # not yet in the copy's last second: no fetch
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "one"}
    await asyncio.sleep(0)
    assert installer.fetches == 1
    clock.now += 1  # in its last second, before its expiry
    # Answered from the copy at once, while the installer has not answered the refresh.
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "one"}
    await _settle()
    assert installer.fetches == 2
    installer.release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "two"}
    assert installer.fetches == 2
    await installer.close()


async def test_no_copy_of_cell_settings_is_used_past_its_expiry(clock: _Clock) -> None:
    installer = _Installer(ttl=5)
    installation = uuid.uuid4()
    installer.release.set()
    await installer.effective_config(installation, "ws", "rc")
    installer.answer = ServiceUnavailable("the installer is down")
    clock.now += 4.5
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "one"}
    for _ in range(5):
        await asyncio.sleep(0)  # the refresh ran, and failed
    clock.now += 0.5  # the copy has expired
    with pytest.raises(ServiceUnavailable):
        await installer.effective_config(installation, "ws", "rc")
    installer.answer = UpstreamMissing("removed")
    with pytest.raises(UpstreamMissing):
        await installer.effective_config(installation, "ws", "rc")
    await installer.close()


async def _forgotten_while_fetching(
    installer: _Installer,
) -> tuple[uuid.UUID, asyncio.Task[dict[str, Any]]]:
    """A request whose fetch is in flight when the installation's event drops its settings."""
    installation = uuid.uuid4()
    before = asyncio.create_task(installer.effective_config(installation, "ws", "rc"))
    await asyncio.sleep(0)
    installer.forget(installation)
    return installation, before


async def test_settings_fetched_across_a_forget_are_not_kept(clock: _Clock) -> None:
    # A fetch begun before the installation's event may have read the settings the event
    # replaced: its answer goes to its own waiters, and is not kept for the cache's time.
    installer = _Installer(ttl=60)
    installation, before = await _forgotten_while_fetching(installer)
    installer.release.set()
    assert await before == {"password": "one"}
    installer.answer = {"password": "two"}
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "two"}
    assert installer.fetches == 2
    # That one is kept: the copy serves until the next forget.
    installer.answer = {"password": "three"}
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "two"}
    assert installer.fetches == 2
    installer.forget_all()
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "three"}
    assert installer.fetches == 3
    await installer.close()


async def test_a_request_after_a_forget_does_not_wait_on_the_earlier_fetch(clock: _Clock) -> None:
    installer = _Installer(ttl=60)
    installation, before = await _forgotten_while_fetching(installer)
    after = asyncio.create_task(installer.effective_config(installation, "ws", "rc"))
    await _settle()
    assert installer.fetches == 2  # its own fetch, not the one begun before the event
    installer.release.set()
    await asyncio.gather(before, after)
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "one"}
    assert installer.fetches == 2  # the later fetch's answer is kept
    await installer.close()


async def test_a_request_that_gives_up_leaves_the_shared_fetch_to_the_others(clock: _Clock) -> None:
    # The first request of a burst starts the installation's fetch and the others wait for it;
    # that first client hanging up (its request task cancelled) must not cancel theirs.
    installer = _Installer(ttl=60)
    installation = uuid.uuid4()
    first = asyncio.create_task(installer.effective_config(installation, "ws", "rc"))
    await asyncio.sleep(0)
    others = [
        asyncio.create_task(installer.effective_config(installation, "ws", "rc")) for _ in range(3)
    ]
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    installer.release.set()
    assert await asyncio.gather(*others) == [{"password": "one"}] * 3
    assert first.cancelled()
    assert installer.fetches == 1
    # and the fetch's answer is kept as any other
    assert await installer.effective_config(installation, "ws", "rc") == {"password": "one"}
    assert installer.fetches == 1
    await installer.close()
