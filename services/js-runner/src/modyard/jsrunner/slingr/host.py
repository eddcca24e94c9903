"""The host side of Slingr's synchronous globals that leave the child (the child blocks on
them; node/slingr/main.js): ``sys.storage`` on the installer's installation storage, and
``sys.events.triggerEvent`` as a bus event the runtime's ``core.event`` triggers of the same
workspace hear. HTTP goes the ``context.httpRequest`` way (http_bridge.py, the egress policy).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from modyard.common.bus.connection import Bus
from modyard.common.bus.envelope import new_event
from modyard.common.service_client import ServiceClient
from modyard.contracts.events import payload
from modyard.contracts.events.runtime import FLOW_EMITTED, FlowEmitted
from modyard.jsrunner.sandbox import RpcHandler
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.jsrunner.slingr.calls import SlingrScope
from modyard.modules.manifest import module_name

log = structlog.get_logger(__name__)

#: How long an installation's configuration is reused (a changed one shows within this).
CONFIG_CACHE_SECONDS = 5.0


class SlingrError(Exception):
    def __init__(self, message: str, code: str = "ERR_NOT_SUPPORTED") -> None:
        super().__init__(message)
        self.message, self.code = message, code


class InstallerStorage(ServiceClient):
    """``sys.storage``: the installer's per-installation storage, as a service."""

    PEER = "installer"

    def __init__(
        self, settings: JsRunnerSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.installer_url,
            subject="js-runner",
            timeout=settings.registry_timeout_seconds,
            transport=transport,
        )
        self._ids: dict[tuple[str, str], str] = {}
        self._configs: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    async def _installation(self, workspace: str, slug: str) -> str:
        known = self._ids.get((workspace, slug))
        if known is None:
            response = await self._http.get(
                f"/v1/workspaces/{quote(workspace)}/installations/{quote(slug)}",
                headers=self._headers(),
            )
            if response.status_code == 404:
                raise SlingrError(f"sys.storage: there is no installation {slug} in {workspace}")
            response.raise_for_status()
            known = str(response.json()["id"])
            self._ids[(workspace, slug)] = known
        return known

    async def call(self, method: str, args: dict[str, Any], scope: SlingrScope) -> Any:
        if not scope.installation or not scope.base.workspace:
            raise SlingrError("sys.storage needs an installation (a flow node of a workspace)")
        key = str(args.get("key") or "")
        if not key:
            raise SlingrError("sys.storage: give a key", "ERR_BAD_OPTION")
        installation = await self._installation(scope.base.workspace, scope.installation)
        path = f"/v1/installations/{installation}/storage/{quote(key, safe='')}"
        if method == "get":
            response = await self._http.get(path, headers=self._headers())
            if response.status_code == 404:
                return None
            response.raise_for_status()
            return response.json().get("value")
        if method == "put":
            given = args.get("options")
            options: dict[str, Any] = given if isinstance(given, dict) else {}
            if args.get("replace"):
                exists = await self._http.get(path, headers=self._headers())
                if exists.status_code == 404:
                    raise SlingrError(
                        f"sys.storage.replace: there is no key {key!r}", "ERR_NOT_FOUND"
                    )
            response = await self._http.put(
                path,
                json=args.get("value"),
                params={"encrypt": "true" if options.get("encrypt") else "false"},
                headers=self._headers(),
            )
            if response.status_code >= 400 and response.status_code < 500:
                raise SlingrError(f"sys.storage.put: {response.text[:300]}", "ERR_BAD_OPTION")
            response.raise_for_status()
            return args.get("value")
        if method == "remove":
            previous = await self.call("get", args, scope)
            response = await self._http.delete(path, headers=self._headers())
            if response.status_code not in (204, 404):
                response.raise_for_status()
            return previous
        raise SlingrError(f"sys.storage.{method} is not supported")

    async def installation_of(self, workspace: str, slug: str) -> dict[str, Any]:
        response = await self._http.get(
            f"/v1/workspaces/{quote(workspace)}/installations/{quote(slug)}",
            headers=self._headers(),
        )
        response.raise_for_status()
        return dict(response.json())

    async def effective_config(self, workspace: str, slug: str) -> dict[str, Any]:
        """The installation's decrypted configuration, for one call's child (run.py); kept
        CONFIG_CACHE_SECONDS in this process's memory only, as the runtime kept it before."""
        key = (workspace, slug)
        cached = self._configs.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return dict(cached[1])
        response = await self._http.get(
            f"/v1/workspaces/{quote(workspace)}/installations/{quote(slug)}/effective-config",
            headers=self._headers(),
        )
        response.raise_for_status()
        answer = response.json()
        config = dict(answer.get("config") or {})
        if answer.get("installation_id"):
            self._ids[key] = str(answer["installation_id"])
        if len(self._configs) > 1000:
            self._configs.clear()
        self._configs[key] = (time.monotonic() + CONFIG_CACHE_SECONDS, config)
        return dict(config)

    def listener_url(self, workspace: str, slug: str) -> str | None:
        """The installation's listener address, ``{runtime}/v1/listeners/{ws}/{id}`` (Slingr's
        ``WEBHOOK_URL``: what a user pastes into the vendor's console), known once its
        configuration was read (``effective_config`` keeps the id). The runtime's address is the
        runner's ``runtime_url`` setting (``MODYARD_JS_RUNNER_RUNTIME_URL``, else
        ``MODYARD_RUNTIME_URL``): set it to the address callers reach."""
        known = self._ids.get((workspace, slug))
        if known is None:
            return None
        base = str(self._settings.runtime_url).rstrip("/")
        return f"{base}/v1/listeners/{quote(workspace, safe='')}/{quote(known, safe='')}"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


#: A package event's listeners may trigger events in turn, this many deep (then refused).
MAX_EVENT_DEPTH = 3

#: Runs one request on the runner (``JsRunner.handle``): package-event listeners.
Dispatch = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class SlingrHost:
    def __init__(
        self, storage: InstallerStorage, bus: Bus | None, dispatch: Dispatch | None = None
    ) -> None:
        self.storage = storage
        self.bus = bus
        self.dispatch = dispatch
        self._listening: set[asyncio.Task[None]] = set()

    def wrap(self, delegate: RpcHandler | None) -> RpcHandler:
        """The child's ``rpc`` handler: Slingr's members here, the rest (Appmixer's context
        members) as before, with the context scope they know."""

        async def answer(method: str, args: Any, scope: Any) -> dict[str, Any]:
            if isinstance(scope, SlingrScope):
                if not method.startswith("slingr."):
                    return {
                        "error": {
                            "message": f"{method} is not a Slingr member",
                            "code": "ERR_NOT_SUPPORTED",
                        }
                    }
                return await self.answer(method, args if isinstance(args, dict) else {}, scope)
            if delegate is None:
                return {
                    "error": {
                        "message": f"{method} needs the runner's database",
                        "code": "ERR_RUNNER",
                    }
                }
            return await delegate(method, args, scope)

        return answer

    async def answer(self, method: str, args: dict[str, Any], scope: SlingrScope) -> dict[str, Any]:
        try:
            if method.startswith("slingr.storage."):
                result = await self.storage.call(
                    method.removeprefix("slingr.storage."), args, scope
                )
            elif method == "slingr.dependency":
                result = await self.dependency(args, scope)
            elif method == "slingr.event":
                await self.trigger(args, scope)
                result = None
            else:
                raise SlingrError(f"{method} is not supported")
            return {"result": result}
        except SlingrError as exc:
            return {"error": {"message": exc.message, "code": exc.code}}
        except Exception as exc:  # the installer or the broker is away: the call may be retried
            log.warning("slingr_host_call_failed", method=method, exc_info=True)
            return {
                "error": {
                    "message": f"{method} failed in the runner ({type(exc).__name__}: {exc})"[:500],
                    "code": "ECONNRESET",
                }
            }

    async def trigger(self, args: dict[str, Any], scope: SlingrScope) -> None:
        """``sys.events.triggerEvent(name, data)``: one of the package's declared events, heard
        by ``core.event`` nodes of the same workspace as ``<package>:<name>``."""
        name = str(args.get("name") or "")
        event = name.split(":", 1)[1] if name.startswith(f"{scope.package}:") else name
        if event not in scope.events:
            declared = ", ".join(sorted(scope.events)) or "none"
            raise SlingrError(
                f"sys.events.triggerEvent: {scope.package} declares no event {event!r} "
                f"(package.json events: {declared})",
                "ERR_BAD_OPTION",
            )
        if self.bus is None or not scope.base.workspace:
            raise SlingrError("sys.events.triggerEvent needs the broker and a workspace")
        if scope.depth >= MAX_EVENT_DEPTH:
            raise SlingrError(
                f"sys.events.triggerEvent: {event!r} was triggered by package-event listeners "
                f"{scope.depth} deep (at most {MAX_EVENT_DEPTH}): is a listener triggering "
                "the event it listens to?",
                "ERR_BAD_OPTION",
            )
        kind = f"{scope.package}:{event}"
        if scope.emitted is not None:
            scope.emitted.append({"type": kind, "data": args.get("data")})
        else:
            await self.publish(kind, args.get("data"), scope)
        if self.dispatch is not None:
            # The package's own `type: 'package'` listeners, after this call (its worker waits
            # for this answer; the listeners may need a worker of their own).
            task = asyncio.create_task(self._package_listeners(scope, event, args.get("data")))
            self._listening.add(task)
            task.add_done_callback(self._listening.discard)

    async def publish(self, kind: str, data: Any, scope: SlingrScope) -> None:
        """An event of a listener or a dependency function (no flow node to record it with)."""
        assert self.bus is not None
        await self.bus.publish(
            new_event(
                source="modyard/js-runner",
                type=FLOW_EMITTED,
                subject=kind,
                # What a flow's ``core.emit`` publishes: ``core.event`` triggers hear its
                # ``type`` in its ``workspace`` (the runtime's flows/events.py).
                data=payload(
                    FlowEmitted(
                        type=kind,
                        data=data,
                        workspace=scope.base.workspace,
                        flow_id=scope.base.flow_id,
                        node=scope.base.node_id,
                        depth=1,
                    )
                ),
            )
        )

    async def dependency(self, args: dict[str, Any], scope: SlingrScope) -> Any:
        """``dependencies.<package>.functions.<namespace>.<fn>(…)``: the function runs in the
        dependency's own child, with the configuration of the installation this one depends on
        in the same workspace (read by run.py for that call) (installing a package installs its dependencies)."""
        package = str(args.get("package") or "")
        if package not in scope.packages:
            raise SlingrError(
                f"dependencies.{package}: {scope.package} declares no package dependency "
                f"{package!r}",
                "ERR_BAD_OPTION",
            )
        if self.dispatch is None or not scope.installation or not scope.base.workspace:
            raise SlingrError(f"dependencies.{package} needs an installation in a workspace")
        if scope.depth >= MAX_EVENT_DEPTH:
            raise SlingrError(
                f"dependencies.{package}: calls between packages {scope.depth} deep "
                f"(at most {MAX_EVENT_DEPTH})",
                "ERR_BAD_OPTION",
            )
        workspace = scope.base.workspace
        own = await self.storage.installation_of(workspace, scope.installation)
        wanted = module_name(package)
        for slug in own.get("dependencies") or []:
            installed = await self.storage.installation_of(workspace, str(slug))
            if installed.get("module") == wanted:
                break
        else:
            raise SlingrError(
                f"dependencies.{package}: {scope.installation} has no installed dependency "
                f"{wanted} in {workspace}",
                "ERR_NOT_FOUND",
            )
        assert self.dispatch is not None
        reply = await self.dispatch(
            {
                "module": installed["module"],
                "version": installed["version"],
                "workspace": workspace,
                "installation": installed["slug"],
                "component": "",
                "port": "function",
                "payload": {
                    "path": [str(part) for part in args.get("path") or []],
                    "args": args.get("args") or [],
                    "depth": scope.depth + 1,
                },
                **({"egress": scope.origin["egress"]} if "egress" in scope.origin else {}),
            }
        )
        error = reply.get("error")
        if isinstance(error, dict):
            raise SlingrError(
                f"dependencies.{package}: {error.get('message')}",
                "ERR_SLINGR_EXCEPTION" if not error.get("retryable") else "ECONNRESET",
            )
        response = reply.get("response")
        return response.get("result") if isinstance(response, dict) else None

    async def _package_listeners(self, scope: SlingrScope, event: str, data: Any) -> None:
        assert self.dispatch is not None
        request = {
            **scope.origin,
            "component": "",
            "port": "listener",
            "payload": {"kind": "package", "event": event, "data": data, "depth": scope.depth + 1},
        }
        reply = await self.dispatch(request)
        if "error" in reply:
            log.warning(
                "slingr_package_listener_failed",
                module=scope.base.module,
                event=event,
                error=str(reply["error"].get("message"))[:300],
            )
