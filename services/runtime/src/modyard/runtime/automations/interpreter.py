"""Runs automations: a tree-walking interpreter over checked definitions, no user code evaluated.

Instructions (see docs/automations.md): ``set``, ``delete``, ``emit``, ``fetch``,
``conditions``, ``repeat``, ``break``, ``wait``, ``all``, ``comment``, and any other name is a
call to an automation reachable from the running program (:meth:`Program.find`) with the
instruction's arguments. Values are templates of :mod:`modyard.common.templates` over the
scopes ``payload``, ``body``, ``config``, ``run``, ``user`` and the automation's variables.

Budgets keep one run from taking the runtime down (see :mod:`.budgets`, settings
``MODYARD_AUTOMATION_*``): instructions, compute and wall-clock time, the size of the values it
builds, items per ``repeat``, branches of ``all`` at once; plus :data:`MAX_CALL_DEPTH` nested calls
and :data:`MAX_WAIT_SECONDS` per wait. A run past one fails with :class:`BudgetExceeded`, and yields
the event loop every :data:`YIELD_EVERY_STEPS` instructions so that other runs go on meanwhile.
Whatever leaves a run (events, errors, logs) has the program's secret config values masked.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from modyard.common.expressions import PRISMEAI, ExpressionError, evaluate_value, truthy
from modyard.common.json_pointer import escape_token
from modyard.common.templates import (
    TemplateError,
    json_size,
    render,
    render_text,
)
from modyard.runtime.automations.budgets import AutomationBudgets, default_budgets, setting_name
from modyard.runtime.automations.definitions import (
    INPUT_VARIABLES,
    SCOPES,
    Automation,
)
from modyard.runtime.automations.fetch import Fetcher, FetchFailed, checked_url
from modyard.runtime.automations.program import (
    AutomationNotFound,
    PrivateAutomation,
    Program,
)
from modyard.runtime.automations.redaction import Redactor

#: The defaults of the budgets (``MODYARD_AUTOMATION_MAX_REPEAT``/``_MAX_STEPS``).
MAX_REPEAT: Final = AutomationBudgets.model_fields["max_repeat"].default
MAX_STEPS: Final = AutomationBudgets.model_fields["max_steps"].default
MAX_CALL_DEPTH: Final = 16
#: A run gives the event loop to others this often (instructions, or seconds busy), however busy.
YIELD_EVERY_STEPS: Final = 64
YIELD_EVERY_SECONDS: Final = 0.02
DEFAULT_WAIT_SECONDS: Final = 30.0
MAX_WAIT_SECONDS: Final = 300.0
DEFAULT_FETCH_SECONDS: Final = 10.0
FETCH_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")
INPUTS: Final = frozenset(INPUT_VARIABLES)


class AutomationError(Exception):
    """A run failed; ``pointer`` says where in the automation, ``status`` how HTTP answers it."""

    def __init__(
        self, message: str, *, pointer: str = "", automation: str = "", status: int = 422
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer
        self.automation = automation
        self.status = status
        #: The egress rule that refused a fetch, when that is why it failed.
        self.egress_rule: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "automation": self.automation, "pointer": self.pointer}


class BudgetExceeded(AutomationError):
    """A run that went past one of its budgets; ``budget`` is its name (``max_steps``)."""

    def __init__(
        self, message: str, *, budget: str, pointer: str = "", automation: str = ""
    ) -> None:
        super().__init__(
            f"{message} (budget {budget}, setting {setting_name(budget)})",
            pointer=pointer,
            automation=automation,
        )
        self.budget = budget


class ArgumentsInvalid(AutomationError):
    """Arguments that do not fit the automation's ``arguments`` schema."""

    def __init__(self, automation: str, problems: list[tuple[str, str]]) -> None:
        text = "; ".join(f"{pointer or '/'} {reason}" for pointer, reason in problems)
        super().__init__(
            f"the arguments of {automation!r} do not fit its schema: {text}", automation=automation
        )
        self.problems = problems


class Host(Protocol):
    """What a run does outside itself."""

    async def emit(
        self, program: Program, event: str, payload: Any, run: Mapping[str, Any]
    ) -> None:
        """Publish ``event`` (already prefixed: the workspace's full name)."""

    async def wait(
        self, program: Program, events: list[str], filters: list[dict[str, Any]], timeout: float
    ) -> dict[str, Any] | None:
        """The first of ``events`` (full names) whose payload matches its filters, or ``None``."""


class _Break(Exception):
    """``break``: ``scope`` is ``loop`` (the innermost repeat), ``automation`` or ``all``."""

    def __init__(self, scope: str) -> None:
        self.scope = scope


@dataclass
class _Frame:
    program: Program
    automation: Automation
    variables: dict[str, Any]
    payload: Any
    body: Any
    run: dict[str, Any]
    depth: int
    #: The run it belongs to (its budgets).
    state: _Run
    loops: int = 0
    _scope: dict[str, Any] | None = None

    def scope(self) -> dict[str, Any]:
        # Built once and kept until a variable is (re)bound: values are shared, so writes inside
        # a variable's value are seen without rebuilding.
        if self._scope is None:
            scope: dict[str, Any] = dict.fromkeys(self.automation.variables)
            scope.update(self.variables)
            scope["payload"] = self.payload
            scope["body"] = self.body
            scope["config"] = self.program.config
            scope["run"] = self.run
            scope["user"] = self.run.get("user")
            globals_ = self.state.globals
            if id(self.program) not in globals_:
                globals_[id(self.program)] = self.program.global_context(self.state.api_url)
            scope["global"] = globals_[id(self.program)]
            self._scope = scope
        return self._scope

    def bind(self, name: str, value: Any) -> None:
        self.variables[name] = value
        self._scope = None

    def changed(self) -> None:
        self._scope = None


@dataclass
class RunResult:
    output: Any
    emitted: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: float = 0.0
    #: What the automation set in ``$http`` (``status``, ``headers``): an endpoint's response.
    http: dict[str, Any] | None = None


@dataclass
class _Run:
    host: Host
    fetcher: Fetcher
    redactor: Redactor
    correlation_id: str
    trigger: dict[str, Any]
    user: Any
    budgets: AutomationBudgets
    #: The public base URL of this runtime (``global.apiUrl``), when known.
    api_url: str | None = None
    #: ``global`` of each program of the run, built once.
    globals: dict[int, dict[str, Any]] = field(default_factory=dict)
    steps: int = 0
    emitted: list[dict[str, Any]] = field(default_factory=list)
    #: Seconds spent evaluating so far, and since when the current evaluation runs (or None).
    compute_seconds: float = 0.0
    computing_since: float | None = None
    #: ``all`` branches running now.
    parallel: int = 0
    #: When the run last gave the event loop to others.
    yielded: float = field(default_factory=time.perf_counter)


class _Computing:
    """``with _Computing(state):`` adds the block's time to the run's compute time (outermost
    block only: a render inside a set is counted once)."""

    __slots__ = ("outer", "state")

    def __init__(self, state: _Run) -> None:
        self.state = state
        self.outer = False

    def __enter__(self) -> None:
        if self.state.computing_since is None:
            self.outer = True
            self.state.computing_since = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.outer and self.state.computing_since is not None:
            self.state.compute_seconds += time.perf_counter() - self.state.computing_since
            self.state.computing_since = None


def validate_arguments(automation: Automation, arguments: Mapping[str, Any]) -> None:
    """Check ``arguments`` against the automation's schemas when it says
    ``validateArguments: true``. Prisme.ai's docs: "when true, the runtime rejects calls whose
    inputs do not match" (and its guide keeps it for entry points): without it the schemas only
    describe the arguments, and a call passing ``3`` for a string argument runs."""
    if automation.validator is None or not automation.validate_arguments:
        return
    errors = sorted(automation.validator.iter_errors(dict(arguments)), key=lambda e: e.path)
    if errors:
        problems = [
            ("/" + "/".join(escape_token(part) for part in error.path), error.message)
            for error in errors
        ]
        raise ArgumentsInvalid(automation.slug, problems)


def _secrets_of(program: Program) -> set[str]:
    return {secret for each in program.programs() for secret in each.secrets}


def disabled(automation: Automation, pointer: str = "") -> AutomationError:
    return AutomationError(
        f"automation {automation.slug!r} is disabled (disabled: true): no trigger or call runs "
        "it; remove 'disabled' to run it",
        pointer=pointer,
        automation=automation.slug,
        status=404,
    )


class Interpreter:
    def __init__(
        self,
        host: Host,
        fetcher: Fetcher | None = None,
        budgets: AutomationBudgets | None = None,
        *,
        api_url: str | None = None,
    ) -> None:
        self.host = host
        self.fetcher = fetcher or Fetcher()
        self.budgets = budgets or default_budgets()
        self.api_url = api_url

    async def run(
        self,
        program: Program,
        automation: Automation,
        *,
        arguments: Mapping[str, Any] | None = None,
        payload: Any = None,
        body: Any = None,
        user: Any = None,
        trigger: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        secrets_from: Program | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run ``automation`` of ``program`` (already resolved, its caller allowed to).

        ``arguments`` are checked against its schema (``validateArguments: true``) and become
        variables; ``inputs`` are the trigger's (:data:`INPUT_VARIABLES`: an endpoint's
        ``query``, ``headers``…, an event's ``source``); ``secrets_from`` is the workspace's
        program, whose secrets (its instances' too) are masked.
        """
        if automation.disabled:
            raise disabled(automation)
        started = time.perf_counter()
        arguments = dict(arguments or {})
        validate_arguments(automation, arguments)
        variables = {**arguments, **{k: v for k, v in (inputs or {}).items() if k in INPUTS}}
        state = _Run(
            host=self.host,
            fetcher=self.fetcher,
            redactor=Redactor(_secrets_of(secrets_from or program)),
            correlation_id=correlation_id or uuid.uuid4().hex,
            trigger=dict(trigger or {"type": "direct"}),
            user=user,
            budgets=self.budgets,
            api_url=self.api_url,
        )
        http: dict[str, Any] = {}
        try:
            # The wall-clock budget also ends a run sitting in a wait or a fetch.
            async with asyncio.timeout(self.budgets.max_run_seconds):
                output = await self._automation(
                    state, program, automation, variables, payload, body, 0, http
                )
        except _Break:
            output = {}
        except TimeoutError:
            exc = BudgetExceeded(
                f"the run took longer than {self.budgets.max_run_seconds:g} s",
                budget="max_run_seconds",
                automation=automation.slug,
            )
            exc.message = state.redactor.text(exc.message)
            raise exc from None
        except AutomationError as exc:
            exc.message = state.redactor.text(exc.message)
            exc.args = (exc.message,)
            raise
        return RunResult(
            output=state.redactor(output),
            emitted=state.emitted,
            duration_ms=(time.perf_counter() - started) * 1000,
            http=state.redactor(http.get("$http")) if isinstance(http.get("$http"), dict) else None,
        )

    async def _automation(
        self,
        state: _Run,
        program: Program,
        automation: Automation,
        arguments: dict[str, Any],
        payload: Any,
        body: Any,
        depth: int,
        http: dict[str, Any] | None = None,
    ) -> Any:
        context = program.run_context()
        run = {
            **context,
            "automation": automation.slug,
            # Prisme.ai's names of the same facts.
            "automationSlug": automation.slug,
            "appSlug": program.app_slug,
            "appInstanceSlug": program.slug,
            "appInstanceFullSlug": ".".join(program.path) or None,
            "correlationId": state.correlation_id,
            "date": datetime.now(UTC).isoformat(),
            "depth": depth,
            "trigger": state.trigger,
            "user": state.user,
        }
        frame = _Frame(program, automation, arguments, payload, body, run, depth, state)
        try:
            await self._block(state, frame, automation.do, "/do")
        except _Break as stop:
            if stop.scope == "all":
                raise
        finally:
            if http is not None and "$http" in frame.variables:
                http["$http"] = frame.variables["$http"]
        if automation.output is None:
            # Prisme.ai: ``automation.output ? interpolate(output) : {}``.
            return {}
        return self._sized(frame, self._render(frame, automation.output, "/output"), "/output")

    # -- helpers -----------------------------------------------------------------------------

    def _fail(
        self, frame: _Frame, message: str, pointer: str, status: int = 422
    ) -> AutomationError:
        return AutomationError(
            message, pointer=pointer, automation=frame.automation.slug, status=status
        )

    def _over(self, frame: _Frame, message: str, budget: str, pointer: str) -> BudgetExceeded:
        return BudgetExceeded(
            message, budget=budget, pointer=pointer, automation=frame.automation.slug
        )

    def _sized(self, frame: _Frame, value: Any, pointer: str) -> Any:
        """``value``, unless it is larger than a value may be (measured up to the limit only)."""
        limit = frame.state.budgets.max_value_bytes
        if isinstance(value, dict | list) and json_size(value, limit) > limit:
            raise self._over(
                frame, f"the value is larger than {limit} bytes as JSON", "max_value_bytes", pointer
            )
        return value

    def _render(self, frame: _Frame, template: Any, pointer: str) -> Any:
        if template is None or isinstance(template, bool | int | float):
            return template
        if isinstance(template, str) and "{{" not in template and "{%" not in template:
            return template
        try:
            with _Computing(frame.state):
                return render(template, frame.scope(), pointer=pointer, dialect=PRISMEAI)
        except TemplateError as exc:
            raise self._fail(frame, exc.reason, exc.pointer) from None

    def _text(self, frame: _Frame, template: Any, pointer: str) -> str:
        if not isinstance(template, str):
            return "" if template is None else str(template)
        if "{{" not in template and "{%" not in template:
            return template
        try:
            with _Computing(frame.state):
                return render_text(template, frame.scope(), pointer=pointer, dialect=PRISMEAI)
        except TemplateError as exc:
            raise self._fail(frame, exc.reason, exc.pointer) from None

    def _check_budgets(self, state: _Run, frame: _Frame, pointer: str) -> None:
        budgets = state.budgets
        if state.steps > budgets.max_steps:
            raise self._over(
                frame, f"the run went past {budgets.max_steps} instructions", "max_steps", pointer
            )
        if state.compute_seconds > budgets.max_compute_seconds:
            raise self._over(
                frame,
                f"the run spent more than {budgets.max_compute_seconds:g} s evaluating",
                "max_compute_seconds",
                pointer,
            )

    async def _block(
        self, state: _Run, frame: _Frame, instructions: list[Any], pointer: str, start: int = 0
    ) -> None:
        for index, instruction in enumerate(instructions, start):
            state.steps += 1
            self._check_budgets(state, frame, f"{pointer}/{index}")
            if (
                state.steps % YIELD_EVERY_STEPS == 0
                or time.perf_counter() - state.yielded > YIELD_EVERY_SECONDS
            ):
                state.yielded = time.perf_counter()
                # A busy run must not hold the event loop: other runs (other workspaces' too),
                # requests and the broker's heartbeats go on between its instructions.
                await asyncio.sleep(0)
            ((name, args),) = instruction.items()
            at = f"{pointer}/{index}/{escape_token(name)}"
            if name in ("set", "delete"):
                with _Computing(state):
                    await self._instruction(state, frame, str(name), args, at)
            else:
                await self._instruction(state, frame, str(name), args, at)
            self._check_budgets(state, frame, at)

    async def _instruction(self, state: _Run, frame: _Frame, name: str, args: Any, at: str) -> None:
        if name == "set":
            self._set(frame, args, at)
        elif name == "delete":
            self._delete(frame, args, at)
        elif name == "emit":
            await self._emit(state, frame, args, at)
        elif name == "fetch":
            await self._fetch(state, frame, args, at)
        elif name == "conditions":
            await self._conditions(state, frame, args, at)
        elif name == "repeat":
            await self._repeat(state, frame, args, at)
        elif name == "break":
            scope = args.get("scope") if isinstance(args, Mapping) else None
            if scope in ("automation", "all"):
                raise _Break(scope)
            raise _Break("loop" if frame.loops else "automation")
        elif name == "wait":
            await self._wait(state, frame, args, at)
        elif name == "all":
            # Concurrently, as Prisme.ai does (waits and fetches overlap); a failure or a break
            # in one cancels the others and goes on as if it happened alone.
            branches = list(args or [])
            limit = state.budgets.max_parallel
            if state.parallel + len(branches) > limit:
                raise self._over(
                    frame,
                    f"all would run {state.parallel + len(branches)} branches at once in this "
                    f"run: at most {limit}",
                    "max_parallel",
                    at,
                )
            state.parallel += len(branches)
            try:
                async with asyncio.TaskGroup() as group:
                    for index, instruction in enumerate(branches):
                        group.create_task(self._block(state, frame, [instruction], at, start=index))
            except ExceptionGroup as failures:
                first = failures.exceptions[0]
                while isinstance(first, ExceptionGroup):
                    first = first.exceptions[0]
                raise first from None
            finally:
                state.parallel -= len(branches)
        elif name == "comment":
            return
        elif name == "try":
            await self._try(state, frame, args, at)
        else:
            await self._call(state, frame, name, args or {}, at)

    # -- variables -----------------------------------------------------------------------------

    def _path(self, frame: _Frame, args: Mapping[str, Any], at: str) -> list[str | int]:
        text = self._text(frame, args.get("name"), f"{at}/name").removesuffix("[]")
        parts: list[str | int] = [
            int(part[1:-1]) if part.startswith("[") else part for part in _PATH_PART.findall(text)
        ]
        if not parts or not isinstance(parts[0], str) or parts[0] in SCOPES:
            raise self._fail(frame, f"{text!r} is not a variable this automation can set", at)
        return parts

    def _set(self, frame: _Frame, args: Mapping[str, Any], at: str) -> None:
        parts = self._path(frame, args, at)
        value = self._render(frame, args.get("value"), f"{at}/value")
        # A new or replaced top-level variable needs a new scope; a write inside one does not.
        rebinds = len(parts) == 1 or not isinstance(frame.variables.get(str(parts[0])), dict | list)
        container: Any = frame.variables
        for part, following in itertools.pairwise(parts):
            child = _get(container, part)
            if not isinstance(child, dict | list):
                child = [] if isinstance(following, int) else {}
                _put(container, part, child)
            container = child
        last = parts[-1]
        mode = args.get("type")
        name = args.get("name")
        if isinstance(name, str) and name.rstrip().endswith("[]") and mode != "merge":
            # Prisme.ai's ``name: users[]``: append the value to the list.
            mode = "push"
        current = _get(container, last)
        built = not _is_placeholder(args.get("value"))
        if mode in ("push", "merge"):
            # Counted before the copy is made: doubling a list by merging it with itself would
            # otherwise reach gigabytes in thirty steps.
            grown = (len(current) if isinstance(current, list | dict) else 0) + (
                len(value) if isinstance(value, list | dict) and mode == "merge" else 1
            )
            limit = frame.state.budgets.max_collection_items
            if grown > limit:
                raise self._over(
                    frame,
                    f"set type:{mode} would make {args.get('name')!r} {grown} items long: at "
                    f"most {limit}",
                    "max_collection_items",
                    at,
                )
            built = True
        if mode == "push":
            value = [*(current if isinstance(current, list) else []), value]
        elif mode == "merge":
            if isinstance(current, dict) and isinstance(value, dict):
                value = {**current, **value}
            elif isinstance(current, list):
                value = [*current, *(value if isinstance(value, list) else [value])]
        if built:
            # A value picked as it is ("{{ payload }}") was measured when it was made, or came
            # from outside within the caller's size cap; a value built here is measured.
            self._sized(frame, value, f"{at}/value")
        if not _put(container, last, value):
            raise self._fail(frame, f"cannot set {args.get('name')!r}: no such list index", at)
        if rebinds:
            frame.changed()

    def _delete(self, frame: _Frame, args: Mapping[str, Any], at: str) -> None:
        parts = self._path(frame, args, at)
        container: Any = frame.variables
        for part in parts[:-1]:
            container = _get(container, part)
        last = parts[-1]
        frame.changed()
        if isinstance(container, dict):
            container.pop(last, None)
        elif isinstance(container, list) and isinstance(last, int) and last < len(container):
            del container[last]

    # -- events ----------------------------------------------------------------------------------

    async def _emit(self, state: _Run, frame: _Frame, args: Mapping[str, Any], at: str) -> None:
        event = self._text(frame, args.get("event"), f"{at}/event")
        if not event or len(event) > 200:
            raise self._fail(frame, "an event name is 1 to 200 characters", f"{at}/event")
        payload = self._sized(
            frame, self._render(frame, args.get("payload"), f"{at}/payload"), f"{at}/payload"
        )
        payload = state.redactor(payload)
        full = frame.program.full_name(event)
        state.emitted.append({"type": full, "payload": payload})
        await state.host.emit(frame.program, full, payload, frame.run)

    async def _wait(self, state: _Run, frame: _Frame, args: Mapping[str, Any], at: str) -> None:
        if "oneOf" not in args:
            # A pause: ``wait: {timeout: 2}`` (bounded as any wait, and by the run's budget).
            pause = self._render(frame, args.get("timeout"), f"{at}/timeout")
            if not isinstance(pause, int | float) or isinstance(pause, bool) or pause <= 0:
                raise self._fail(frame, "timeout is a number of seconds", f"{at}/timeout")
            await asyncio.sleep(min(float(pause), MAX_WAIT_SECONDS))
            return
        rendered = self._render(frame, {"oneOf": args.get("oneOf")}, at)["oneOf"]
        events: list[str] = []
        filters: list[dict[str, Any]] = []
        for index, item in enumerate(rendered or []):
            if not isinstance(item, Mapping) or not isinstance(item.get("event"), str):
                raise self._fail(
                    frame, "each oneOf item is {event, filters}", f"{at}/oneOf/{index}"
                )
            events.append(frame.program.full_name(item["event"]))
            item_filters = item.get("filters")
            filters.append(dict(item_filters) if isinstance(item_filters, Mapping) else {})
        timeout = self._render(frame, args.get("timeout", DEFAULT_WAIT_SECONDS), f"{at}/timeout")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise self._fail(frame, "timeout is a number of seconds", f"{at}/timeout")
        event = await state.host.wait(
            frame.program, events, filters, min(float(timeout), MAX_WAIT_SECONDS)
        )
        if event is not None and frame.program.path:
            # The instance sees its own naming, as when it emitted the event.
            prefix = ".".join(frame.program.path) + "."
            event = {**event, "type": str(event.get("type", "")).removeprefix(prefix)}
        output = args.get("output")
        if isinstance(output, str) and output:
            frame.bind(output, event)

    # -- fetch -----------------------------------------------------------------------------------

    async def _fetch(self, state: _Run, frame: _Frame, args: Mapping[str, Any], at: str) -> None:
        method = self._text(frame, args.get("method", "GET"), f"{at}/method").upper()
        if method not in FETCH_METHODS:
            raise self._fail(frame, f"method is one of {', '.join(FETCH_METHODS)}", f"{at}/method")
        try:
            url = checked_url(self._text(frame, args.get("url"), f"{at}/url"))
        except FetchFailed as exc:
            raise self._fail(frame, str(exc), f"{at}/url") from None
        query = args.get("query")
        if isinstance(query, Mapping):
            rendered = self._render(frame, dict(query), f"{at}/query")
            url = url.extend_query(
                {
                    k: v if isinstance(v, str) else str(v)
                    for k, v in rendered.items()
                    if v is not None
                }
            )
        headers: dict[str, str] = {}
        if isinstance(args.get("headers"), Mapping):
            for name, value in args["headers"].items():
                text = self._text(frame, value, f"{at}/headers/{escape_token(name)}")
                if any(char in text or char in str(name) for char in "\r\n\0"):
                    raise self._fail(frame, f"header {name!r} has a line break", f"{at}/headers")
                headers[str(name)] = text
        body = self._sized(frame, self._render(frame, args.get("body"), f"{at}/body"), f"{at}/body")
        timeout = args.get("timeout", DEFAULT_FETCH_SECONDS)
        if not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise self._fail(frame, "timeout is 0 to 300 seconds", f"{at}/timeout")
        try:
            answer = await state.fetcher(
                method,
                url,
                headers=headers,
                body=body,
                timeout=float(timeout),
                workspace=frame.program.workspace,
                automation=frame.automation.slug,
            )
        except FetchFailed as exc:
            failure = self._fail(frame, str(exc), at, status=exc.status)
            failure.egress_rule = exc.rule
            raise failure from None
        output = args.get("output")
        if isinstance(output, str) and output:
            if args.get("outputMode") == "detailed_response":
                frame.bind(
                    output,
                    {"status": answer.status, "headers": answer.headers, "body": answer.body},
                )
            else:
                frame.bind(output, answer.body)

    # -- control flow ----------------------------------------------------------------------------

    async def _conditions(
        self, state: _Run, frame: _Frame, args: Mapping[str, Any], at: str
    ) -> None:
        for condition, branch in args.items():
            if condition == "default":
                continue
            where = f"{at}/{escape_token(condition)}"
            try:
                with _Computing(state):
                    value = evaluate_value(str(condition), frame.scope(), dialect=PRISMEAI)
            except ExpressionError as exc:
                raise self._fail(frame, str(exc), where) from None
            if truthy(value):
                await self._block(state, frame, list(branch or []), where)
                return
        if "default" in args:
            await self._block(state, frame, list(args["default"] or []), f"{at}/default")

    async def _repeat(self, state: _Run, frame: _Frame, args: Mapping[str, Any], at: str) -> None:
        items: Sequence[Any]
        if "on" in args:
            items = self._render(frame, args["on"], f"{at}/on")
            if items is None:
                items = []
            if isinstance(items, dict):
                items = list(items.values())
            if not isinstance(items, list):
                raise self._fail(frame, "repeat.on must give a list", f"{at}/on")
        else:
            count = self._render(frame, args.get("until"), f"{at}/until")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise self._fail(frame, "repeat.until must give a whole number", f"{at}/until")
            # A range, not a list: until: 1000000000000 must be refused, not allocated first.
            items = range(count)
        limit = state.budgets.max_repeat
        if len(items) > limit:
            raise self._over(
                frame,
                f"repeat over {len(items)} items: at most {limit} are allowed",
                "max_repeat",
                at,
            )
        frame.loops += 1
        try:
            for index, item in enumerate(items):
                frame.variables["item"] = item
                frame.bind("$index", index)
                try:
                    await self._block(state, frame, list(args.get("do") or []), f"{at}/do")
                except _Break as stop:
                    if stop.scope != "loop":
                        raise
                    break
        finally:
            frame.loops -= 1

    async def _try(self, state: _Run, frame: _Frame, args: Mapping[str, Any], at: str) -> None:
        """``try: {do, catch}``: a failure in ``do`` runs ``catch`` with ``$error`` (its
        ``message``, ``automation`` and ``pointer``; Prisme.ai's docs: "catch: instructions
        executed if an error occurs, with access to $error"). Budgets are not caught: a run past
        one ends, whatever it tries."""
        try:
            await self._block(state, frame, list(args.get("do") or []), f"{at}/do")
        except BudgetExceeded:
            raise
        except AutomationError as exc:
            frame.bind(
                "$error",
                {
                    "message": state.redactor.text(exc.message),
                    "automation": exc.automation,
                    "pointer": exc.pointer,
                    "status": exc.status,
                },
            )
            await self._block(state, frame, list(args.get("catch") or []), f"{at}/catch")

    # -- calls -----------------------------------------------------------------------------------

    async def _call(
        self, state: _Run, frame: _Frame, name: str, args: Mapping[str, Any], at: str
    ) -> None:
        if not isinstance(args, Mapping):
            raise self._fail(frame, f"the arguments of {name!r} must be a mapping", at)
        try:
            program, automation = frame.program.find(name)
        except PrivateAutomation as exc:
            raise self._fail(frame, str(exc), at, status=403) from None
        except AutomationNotFound:
            raise self._fail(
                frame,
                f"{name!r} is neither an instruction nor an automation reachable from here "
                "(call instances' automations as <instance>.<automation>)",
                at,
                status=404,
            ) from None
        if automation.disabled:
            raise disabled(automation, at)
        if frame.depth + 1 > MAX_CALL_DEPTH:
            raise self._fail(frame, f"calls nest deeper than {MAX_CALL_DEPTH}", at)
        written = {k: v for k, v in args.items() if k != "output"}
        arguments = self._sized(frame, self._render(frame, written, at), at)
        # An argument computed to undefined (``'{{config.apiVersion}}'`` unset) is left out, as
        # Prisme.ai's JSON serialisation of the call leaves it out: the callee reads it as
        # undefined, and a schema's ``type: string`` does not refuse it. (The templates give
        # undefined as null: a computed null is left out too; a literal ``null`` is passed.)
        arguments = {
            key: value
            for key, value in arguments.items()
            if value is not None or not (isinstance(written[key], str) and "{{" in written[key])
        }
        # Prisme.ai lets a call set the callee's body and payload (``parse: {body: {...}}``);
        # otherwise the callee sees the caller's.
        body = arguments.pop("body", frame.body)
        payload = arguments.pop("payload", frame.payload)
        try:
            validate_arguments(automation, arguments)
        except ArgumentsInvalid as exc:
            exc.pointer = at
            raise
        output = await self._automation(
            state, program, automation, arguments, payload, body, frame.depth + 1
        )
        target = args.get("output")
        if isinstance(target, str) and target:
            frame.bind(target, output)


def _is_placeholder(template: Any) -> bool:
    """Whether ``template`` is one placeholder and nothing else: its value is picked, not built."""
    if not isinstance(template, str):
        return False
    text = template.strip()
    return text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1


def _get(container: Any, key: str | int) -> Any:
    if isinstance(container, dict):
        return container.get(key) if isinstance(key, str) else container.get(str(key))
    if isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container):
        return container[key]
    return None


def _put(container: Any, key: str | int, value: Any) -> bool:
    if isinstance(container, dict):
        container[str(key) if isinstance(key, int) else key] = value
        return True
    if isinstance(container, list) and isinstance(key, int):
        if key == len(container):
            container.append(value)
            return True
        if 0 <= key < len(container):
            container[key] = value
            return True
    return False


__all__ = [
    "MAX_CALL_DEPTH",
    "MAX_REPEAT",
    "MAX_STEPS",
    "ArgumentsInvalid",
    "AutomationError",
    "BudgetExceeded",
    "Host",
    "Interpreter",
    "RunResult",
    "validate_arguments",
]
