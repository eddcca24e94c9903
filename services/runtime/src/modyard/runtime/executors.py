"""Running module components with the executor their manifest names.

- ``amqp`` sends a request to the installation's worker queue and waits for the reply on this
  process's reply queue (correlated by id, and accepted only from that worker's broker user).
- ``js`` sends the same request to the JavaScript runner's queue (services/js-runner), whose
  broker user alone may answer it.
- ``http`` POSTs the same request to a deployed container module: the deployer says where it
  listens (the deployment named in the component's ``executor.extra.deployment``, by default the
  module's name), at ``executor.extra.path`` (by default ``/components/<component>``).

Either way the module answers ``{"outputs": {port: [message, …]}}`` or ``{"error": {"message",
"retryable", "status"}}`` (docs/runtime.md, "Module workers").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aio_pika.abc import AbstractIncomingMessage
from yarl import URL

from modyard.common.bus.connection import Bus, BusUnavailable, MessageReturned
from modyard.common.bus.replies import InvalidReply, PendingReplies
from modyard.common.egress.policy import Allowance, EgressRefused
from modyard.runtime.components.base import ComponentError, Outputs
from modyard.runtime.components.core.http import MAX_RESPONSE_BYTES, read_body
from modyard.runtime.deployer_client import DeployerClient
from modyard.runtime.egress import gate
from modyard.runtime.engine.dispatch import send
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.failures import DELAY_TIERS, classify_exception, status_error
from modyard.runtime.flows.definition import FlowDefinition
from modyard.runtime.models import InstalledComponent
from modyard.runtime.worker_access.service import (
    REPLIES_EXCHANGE,
    REPLY_EXCHANGE_HEADER,
    worker_queue,
    worker_user,
)

log = structlog.get_logger(__name__)


class AmqpExecutor:
    """Requests to an installation's own worker queue; replies only from its worker's user.

    Broker access is per installation (:mod:`modyard.runtime.worker_access`): the request, with
    the installation's decrypted configuration, can only be consumed by the worker logged in with
    that installation's credentials, and a reply is taken only if its ``user_id`` (checked by
    RabbitMQ against the publishing connection) is that worker's user: anyone else who learns a
    correlation id cannot answer in the worker's place.
    """

    def __init__(self, bus: Bus, *, timeout_seconds: float) -> None:
        self._bus = bus
        self._timeout = timeout_seconds
        self._replies = PendingReplies()
        self.reply_queue = ""

    async def on_reply(self, message: AbstractIncomingMessage) -> None:
        self._replies.settle(message.correlation_id, message.user_id, message.body)

    @property
    def foreign_replies(self) -> int:
        """Replies from another broker user than the worker's (dropped)."""
        return self._replies.foreign

    async def call(self, installed: InstalledComponent, request: dict[str, Any]) -> Outputs:
        return await self.request(
            installed,
            request,
            routing_key=worker_queue(installed.installation_id),
            user=worker_user(installed.installation_id),
            not_listening=(
                f"no worker of {installed.workspace}:{installed.slug} (module "
                f"{installed.module!r}) is listening: its queue exists once worker credentials "
                f"are issued (POST /v1/workspaces/{installed.workspace}/installations/"
                f"{installed.slug}/worker-credentials)"
            ),
        )

    async def request(
        self,
        installed: InstalledComponent,
        request: dict[str, Any],
        *,
        routing_key: str,
        user: str,
        not_listening: str,
    ) -> Outputs:
        """Publish ``request`` to ``routing_key`` and wait for the answer only ``user`` may give
        (module workers, and the JavaScript runner for ``js`` components)."""
        reply = await self.reply(
            installed, request, routing_key=routing_key, user=user, not_listening=not_listening
        )
        return outputs_of(installed.module, reply)

    async def reply(
        self,
        installed: InstalledComponent,
        request: dict[str, Any],
        *,
        routing_key: str,
        user: str,
        not_listening: str,
        timeout_seconds: float | None = None,
    ) -> Any:
        """:meth:`request`'s answer as it came (the JavaScript runner's carries timers too),
        waited for ``timeout_seconds`` (by default the module workers' timeout)."""
        module = installed.module
        timeout = timeout_seconds or self._timeout
        with self._replies.expect(user) as (correlation_id, future):
            try:
                await self._publish(request, routing_key, correlation_id, timeout)
                return await asyncio.wait_for(future, timeout)
            except InvalidReply as exc:
                raise ComponentError(
                    "the module's worker answered with invalid JSON", retryable=False
                ) from exc
            except MessageReturned as exc:
                raise ComponentError(not_listening, retryable=True) from exc
            except BusUnavailable as exc:
                raise ComponentError("the message broker is not connected", retryable=True) from exc
            except TimeoutError as exc:
                raise ComponentError(
                    f"module {module!r} did not answer within {timeout:g} s", retryable=True
                ) from exc

    async def _publish(
        self, request: dict[str, Any], routing_key: str, correlation_id: str, timeout: float
    ) -> None:
        await self._bus.publish_message(
            json.dumps(request, default=str).encode(),
            exchange="",
            routing_key=routing_key,
            message_id=str(request.get("message_id") or correlation_id),
            message_type="modyard.component.request",
            correlation_id=correlation_id,
            reply_to=self.reply_queue,
            headers={REPLY_EXCHANGE_HEADER: REPLIES_EXCHANGE},
            expiration=timeout,
        )

    @property
    def bus(self) -> Bus:
        return self._bus


#: Records one entry in the flow's log with the node's success (engine/worker.py SideEffects).
FlowLog = Callable[[Any], Awaitable[None]]
#: Records one flow event (type, data) with the node's success, as ``core.emit`` does.
FlowEmit = Callable[[str, Any], Awaitable[None]]


def carries_config(installed: InstalledComponent) -> bool:
    """Whether the component's request carries the installation's decrypted configuration: all
    but a Slingr package's (see ``sealed``), so the worker fetches it only for those."""
    return installed.spec.get("format") != "slingr"


def sealed(installed: InstalledComponent, request: dict[str, Any]) -> dict[str, Any]:
    """The request without the installation's decrypted configuration for a Slingr package:
    the runner reads it from the installer right before the call and hands it only to the
    package's child (docs/slingr.md, "Configuration"), so it is in no AMQP message, dead letter
    or log. Appmixer components still get ``config`` in the request (``context.auth`` of a node
    without an account)."""
    if carries_config(installed):
        return request
    return {key: value for key, value in request.items() if key != "config"}


class JsExecutor:
    """``js`` components (Appmixer's ``<Component>.js``) run by the JavaScript runner
    (services/js-runner): the request goes to the runner's queue, and only an answer published
    by the runner's broker user completes it (as for module workers)."""

    def __init__(
        self,
        amqp: AmqpExecutor,
        *,
        queue: str,
        runner_user: str,
        hooks_url: str = "",
        timeout_seconds: float | None = None,
    ) -> None:
        self._amqp = amqp
        self._queue = queue
        self._user = runner_user
        #: The runner's own deadlines end a call first (a Slingr script's limit is reported as
        #: a not retried failure): this wait outlasts them (settings.js_component_timeout_seconds).
        self._timeout = timeout_seconds
        #: Where this runtime's webhook route is reached from outside (getWebhookUrl).
        self._hooks_url = hooks_url.rstrip("/")

    async def call(
        self,
        installed: InstalledComponent,
        request: dict[str, Any],
        *,
        log: FlowLog | None = None,
        emit: FlowEmit | None = None,
    ) -> Outputs:
        outputs, _response = await self.answer(installed, request, log=log, emit=emit)
        return outputs

    async def answer(
        self,
        installed: InstalledComponent,
        request: dict[str, Any],
        *,
        log: FlowLog | None = None,
        emit: FlowEmit | None = None,
    ) -> tuple[Outputs, dict[str, Any] | None]:
        """The outputs and, from a webhook component, what it answered its caller
        (``context.response``; None when it did not). ``log`` and ``emit`` take the lines and
        events the runner says go to the flow's log and the bus with the node's success (a
        Slingr step's ``sys.logs`` and ``sys.events.triggerEvent``, docs/slingr.md)."""
        request = {**sealed(installed, request), **await self._context_of(installed, request)}
        reply = await self._amqp.reply(
            installed,
            request,
            routing_key=self._queue,
            user=self._user,
            timeout_seconds=self._timeout,
            not_listening=(
                f"the JavaScript runner is not running (no queue {self._queue!r}): "
                f"{installed.slug}.{installed.component} runs once modyard-js-runner is up"
            ),
        )
        outputs = outputs_of(installed.module, reply)
        lines = reply.get("logs") if isinstance(reply, dict) else None
        if log is not None and isinstance(lines, list):
            for line in lines:
                await log(line)
        events = reply.get("events") if isinstance(reply, dict) else None
        if emit is not None and isinstance(events, list):
            for event in events:
                if isinstance(event, dict) and isinstance(event.get("type"), str):
                    await emit(event["type"], event.get("data"))
        timers = reply.get("timeouts") if isinstance(reply, dict) else None
        if isinstance(timers, list):
            await self._park(request, timers)
        response = reply.get("response") if isinstance(reply, dict) else None
        return outputs, response if isinstance(response, dict) else None

    async def lifecycle(
        self, installed: InstalledComponent, request: dict[str, Any]
    ) -> LifecycleAnswer:
        """``start``/``stop``: what the component's own method rejected with (``refused``, None
        when it resolved or exports none), and what it sent (``context.sendJson``) and set
        (``context.setTimeout``) meanwhile: Appmixer's Timer and Scheduler send their first
        message and set their first timer in ``start()``. The caller delivers those once the
        flow runs (:meth:`deliver`). Not running it at all (the runner down, the module not
        loadable here) raises :class:`ComponentError`: that is not the component's answer."""
        request = {**sealed(installed, request), **await self._context_of(installed, request)}
        reply = await self._amqp.reply(
            installed,
            request,
            routing_key=self._queue,
            user=self._user,
            timeout_seconds=self._timeout,
            not_listening=f"the JavaScript runner is not running (no queue {self._queue!r})",
        )
        error = reply.get("error") if isinstance(reply, dict) else None
        if not isinstance(error, dict):
            outputs = outputs_of(installed.module, reply)
            timers = reply.get("timeouts") if isinstance(reply, dict) else None
            return LifecycleAnswer(
                None, outputs, [t for t in timers if isinstance(t, dict)] if timers else []
            )
        message = str(error.get("message") or "the component failed")
        # The runner classifies the component's own rejections (kind: http_status, connection,
        # cancelled, unknown, a sandbox code); "sandbox" and no kind are the runner's failures.
        if error.get("kind") and error.get("kind") != "sandbox":
            return LifecycleAnswer(message)
        raise ComponentError(message, retryable=bool(error.get("retryable", True)))

    async def deliver(
        self, request: dict[str, Any], answer: LifecycleAnswer, definition: FlowDefinition
    ) -> None:
        """What ``start()`` sent and set, once its flow runs: the outputs go to the node's
        connections (message ids derived from the start request's, as a webhook's are), the
        timers are parked as :meth:`call`'s are."""
        origin = WorkMessage(
            message_id=str(request["message_id"]),
            workspace=str(request["workspace"]),
            flow_id=str(request["flow_id"]),
            node_id=str(request["node_id"]),
            correlation_id=request.get("correlation_id"),
        )
        await forward(self._amqp.bus, definition, origin, answer.outputs)
        if answer.timers:
            await self._park(request, answer.timers)

    async def _context_of(
        self, installed: InstalledComponent, request: dict[str, Any]
    ) -> dict[str, Any]:
        """What the runner needs beyond a module worker's request: the workspace's egress
        allow-list (its httpRequest and SDK proxy apply it) and a webhook component's URL."""
        extra: dict[str, Any] = {}
        allowance = await gate.current().allowance(installed.workspace)
        if allowance is not None:
            extra["egress"] = {
                "cidrs": [str(cidr) for cidr in allowance.cidrs],
                "hosts": list(allowance.hosts),
            }
        if installed.spec.get("webhook") and self._hooks_url:
            extra["webhook_url"] = hook_url(
                self._hooks_url,
                installed.workspace,
                str(request.get("flow_id") or ""),
                str(request.get("node_id") or ""),
            )
        return extra

    async def _park(self, request: dict[str, Any], timers: list[Any]) -> None:
        """``context.setTimeout``: a ``timeout`` message for the same node, parked on the delay
        tier at most as long as the wait (the runner parks it again for what remains; it keeps
        the timer's content and whether it was cleared). Its id is derived from the timer's, so
        a node run twice for one message parks one message, deduplicated like any other."""
        for timer in timers:
            if not isinstance(timer, dict) or not timer.get("id"):
                continue
            seconds = max(0.0, float(timer.get("ms") or 0) / 1000)
            round_ = int(timer.get("round") or 0)
            digest = hashlib.sha256(f"timeout:{timer['id']}:{round_}".encode()).hexdigest()
            fitting = [tier for tier in DELAY_TIERS if tier <= seconds]
            message = WorkMessage(
                message_id=digest[:32],
                workspace=str(request["workspace"]),
                flow_id=str(request["flow_id"]),
                node_id=str(request["node_id"]),
                port="timeout",
                payload={"timerId": str(timer["id"]), "round": round_},
                correlation_id=request.get("correlation_id"),
            )
            # Under half a second (the runner fires that early) it goes straight back.
            delay = 0.0 if seconds < 0.5 else float(fitting[-1] if fitting else DELAY_TIERS[0])
            await send(self._amqp.bus, message, delay_seconds=delay)


@dataclass(frozen=True)
class LifecycleAnswer:
    """A ``js`` component's ``start``/``stop`` answer (:meth:`JsExecutor.lifecycle`)."""

    #: What the component's method rejected with; None: it resolved (or exports none).
    refused: str | None
    outputs: Outputs = field(default_factory=dict)
    #: ``context.setTimeout`` timers it set, as the runner answers them (id, ms, round).
    timers: list[dict[str, Any]] = field(default_factory=list)


async def forward(
    bus: Bus, definition: FlowDefinition, origin: WorkMessage, outputs: Outputs
) -> None:
    """``origin``'s node's outputs, one message per connection and value (ids derived from
    ``origin``'s, so a repeated delivery re-creates the same messages)."""
    for port, values in outputs.items():
        for index, connection in definition.outgoing(origin.node_id, port):
            for position, payload in enumerate(values):
                await send(
                    bus,
                    WorkMessage(
                        message_id=origin.child_id(index, position),
                        workspace=origin.workspace,
                        flow_id=origin.flow_id,
                        node_id=connection.target,
                        port=connection.target_port,
                        payload=payload,
                        correlation_id=origin.correlation_id,
                    ),
                )


def hook_url(base: str, workspace: str, flow_id: str, node_id: str) -> str:
    """The URL the runtime serves for a webhook node (api/hooks.py)."""
    return f"{base.rstrip('/')}/v1/hooks/{workspace}/{flow_id}/{node_id}"


def outputs_of(module: str, reply: Any) -> Outputs:
    """The outputs of a module's answer, or the error it reported, as a :class:`ComponentError`."""
    if not isinstance(reply, dict):
        raise ComponentError(
            f"module {module!r} answered something that is not an object", retryable=False
        )
    if "error" in reply:
        error = reply["error"] if isinstance(reply["error"], dict) else {}
        raise ComponentError(
            str(error.get("message") or "the component failed"),
            retryable=bool(error.get("retryable", True)),
            status=error.get("status"),
        )
    outputs = reply.get("outputs") or {}
    if not isinstance(outputs, dict) or not all(isinstance(v, list) for v in outputs.values()):
        raise ComponentError(
            f"module {module!r} answered outputs that are not lists per port", retryable=False
        )
    return {str(port): list(values) for port, values in outputs.items()}


class HttpExecutor:
    """POSTs to the endpoint the deployer publishes, and nowhere else: the egress policy allows
    exactly that host and port (loopback or private as it may be), never the platform's own
    endpoints, and no redirect is followed."""

    def __init__(
        self,
        deployments: DeployerClient,
        *,
        timeout_seconds: float,
        egress: gate.RuntimeEgress | None = None,
    ) -> None:
        self._deployments = deployments
        self._timeout = timeout_seconds
        self._egress = egress

    @property
    def egress(self) -> gate.RuntimeEgress:
        return self._egress or gate.current()

    async def call(self, installed: InstalledComponent, request: dict[str, Any]) -> Outputs:
        options = installed.spec.get("executor_options") or {}
        deployment = str(options.get("deployment") or installed.module)
        path = str(options.get("path") or f"/components/{installed.component}")
        if not path.startswith("/"):
            path = f"/{path}"
        endpoint = await self._deployments.endpoint(deployment)
        url = endpoint.rstrip("/") + path
        try:
            client = self.egress.clients.client(_only(endpoint, url))
            async with asyncio.timeout(self._timeout):
                async with client.request(
                    "POST",
                    url,
                    data=json.dumps(request, default=str).encode(),
                    headers={
                        "content-type": "application/json",
                        "x-modyard-message-id": str(request.get("message_id") or ""),
                    },
                    follow_redirects=False,
                ) as response:
                    body = await read_body(response, MAX_RESPONSE_BYTES, truncate=False)
                    status = response.status
        except ComponentError:
            raise
        except EgressRefused as exc:
            self._deployments.forget(deployment)
            raise gate.refused(
                exc, deployment=deployment, module=installed.module, url=url
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._deployments.forget(deployment)
            error = classify_exception(exc)
            error.message = f"deployment {deployment!r} at {url} failed: {error.message}"
            error.args = (error.message,)
            raise error from exc
        try:
            reply = json.loads(body) if body else None
        except ValueError:
            reply = None
        if not 200 <= status < 300:
            if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
                reply["error"].setdefault("status", status)
                return outputs_of(installed.module, reply)  # raises the module's own error
            raise status_error(status, f"deployment {deployment!r} answered {status} at {path}")
        if reply is None:
            raise ComponentError(
                f"deployment {deployment!r} answered at {path} with a body that is not JSON",
                retryable=False,
            )
        return outputs_of(installed.module, reply)

    async def close(self) -> None:
        await gate.release(self._egress)


def _only(endpoint: str, url: str) -> Allowance:
    """An allowance for exactly ``endpoint``'s host and port; refused when ``url`` (the
    endpoint and a module-given path) would go anywhere else."""
    try:
        base, target = URL(endpoint), URL(url)
        host, port = (base.host or "").lower(), base.port
    except (TypeError, ValueError) as exc:
        raise EgressRefused(
            "url", f"the deployer gave an endpoint that is not a URL: {exc}"
        ) from None
    if not host or port is None or ((target.host or "").lower(), target.port) != (host, port):
        raise EgressRefused(
            "executor-endpoint",
            f"{url[:200]!r} is not at the deployment's published endpoint {endpoint!r}",
        )
    return Allowance(endpoints=frozenset({(host.rstrip("."), port)}))


class ModuleExecutors:
    """Picks the executor an installed component's manifest names."""

    def __init__(
        self, amqp: AmqpExecutor, http: HttpExecutor, js: JsExecutor | None = None
    ) -> None:
        self.amqp = amqp
        self.http = http
        self.js = js

    async def call(
        self,
        installed: InstalledComponent,
        request: dict[str, Any],
        *,
        log: FlowLog | None = None,
        emit: FlowEmit | None = None,
    ) -> Outputs:
        if installed.executor == "amqp":
            return await self.amqp.call(installed, request)
        if installed.executor == "http":
            return await self.http.call(installed, request)
        if installed.executor == "js" and self.js is not None:
            return await self.js.call(installed, request, log=log, emit=emit)
        raise ComponentError(
            f"{installed.slug}.{installed.component} runs with the {installed.executor!r} "
            "executor, which the runtime cannot run; module components run with amqp, http "
            "or js",
            retryable=False,
        )
