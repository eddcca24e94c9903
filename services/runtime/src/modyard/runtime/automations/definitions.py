"""Automation definitions as users write them (Prisme.ai's YAML), checked once when saved.

A definition is ``{name, private, disabled, validateArguments, arguments, when, do, output}``.
Checking it compiles it: every ``{{ }}`` expression is parsed over the names the automation can
see (the read-only scopes ``payload``, ``body``, ``config``, ``run``, ``user``, ``global``, the
trigger's inputs ``query``, ``headers``, ``method``, ``pathParams``, ``source`` and ``$http``,
and the variables it declares — its arguments, the names it ``set``s or ``delete``s, the
``output`` of fetches, waits and calls, ``item``/``$index`` in loops), so that junk is a 422 with
its JSON pointer when the automation is saved, never a surprise at run time. A plain name the
automation never sets reads as undefined (``null``), as on Prisme.ai, where
``'{{installations}} > 1'`` over a variable nobody set simply takes the ``default`` branch: it is
kept in :attr:`Automation.undeclared` (a lint hint), not refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jsonschema.protocols import Validator

from modyard.common.expressions import (
    PRISMEAI,
    RESERVED_NAMES,
    ExpressionError,
    check_expression,
)
from modyard.common.json_pointer import escape_token
from modyard.common.localized_text import localized_text, plain_schema
from modyard.common.templates import TemplateError, check_template
from modyard.common.user_schemas import SchemaRefused, compile_user_schema

#: The scopes every expression sees; variables may not take these names.
SCOPES: Final = ("payload", "body", "config", "run", "user", "global")
#: What a trigger hands the automation it starts, as Prisme.ai does: an endpoint's ``query``,
#: ``headers``, ``method`` and ``pathParams`` (beside ``body``), an event's ``source``, and
#: ``$http`` (an endpoint's response status and headers, when the automation sets it). Ordinary
#: variables: undefined (``null``) when the trigger gives none, and ``set`` may change them.
INPUT_VARIABLES: Final = ("query", "headers", "method", "pathParams", "source", "$http")
#: Variables a ``repeat`` sets for each element.
LOOP_VARIABLES: Final = ("item", "$index")
INSTRUCTIONS: Final = frozenset(
    {
        "set",
        "delete",
        "emit",
        "fetch",
        "conditions",
        "repeat",
        "break",
        "wait",
        "all",
        "comment",
        "try",
    }
)
#: An endpoint name: segments of ``[A-Za-z0-9_.-]`` joined by ``/``; a segment ``:name`` is a
#: path parameter, a last ``*name`` takes the rest of the path (Prisme.ai's ``v1/users/:id``).
ENDPOINT: Final = re.compile(
    r"(?:[A-Za-z0-9_.-]+|:[A-Za-z_][A-Za-z0-9_]*)(?:/(?:[A-Za-z0-9_.-]+|:[A-Za-z_][A-Za-z0-9_]*))*"
    r"(?:/\*[A-Za-z_][A-Za-z0-9_]*)?"
)
#: More unknown names than this in one automation is junk, not forgetfulness.
MAX_UNDECLARED: Final = 256
_UNKNOWN_NAME = re.compile(r"unknown name '([A-Za-z_$][A-Za-z0-9_$]*)'")
_VARIABLE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


class DefinitionError(ValueError):
    """A definition that cannot run: ``problems`` are ``(json pointer, what to change)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{pointer or '/'}: {reason}" for pointer, reason in problems))
        self.problems = problems


@dataclass(frozen=True)
class Automation:
    """A checked automation, ready to run."""

    slug: str
    name: str
    do: list[dict[str, Any]]
    private: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    when: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    description: str | None = None
    #: Every variable name it declares (read as null until set).
    variables: frozenset[str] = frozenset()
    #: Checks the arguments: nothing fetched, patterns on RE2 (see ``modyard.common.user_schemas``).
    validator: Validator | None = None
    #: ``disabled: true``: kept (listed, saved, published) but never run by any trigger or call.
    disabled: bool = False
    #: ``validateArguments: true``: calls and triggers are checked against ``arguments``;
    #: otherwise the schemas only document them, as on Prisme.ai.
    validate_arguments: bool = False
    #: Plain names it reads but never sets or receives (undefined when read; a lint hint).
    undeclared: frozenset[str] = frozenset()
    #: A localized ``name`` as written (``{fr, en}``); ``name`` is its English text.
    localized_name: dict[str, str] | None = None

    @property
    def events(self) -> list[str]:
        return [str(event) for event in self.when.get("events") or []]

    @property
    def endpoint(self) -> str | None:
        """The endpoint name (relative to its program) when ``when.endpoint`` is set."""
        endpoint = self.when.get("endpoint")
        if endpoint is True:
            return self.slug
        return endpoint if isinstance(endpoint, str) and endpoint else None

    def match_endpoint(self, path: str, prefix: str) -> dict[str, str] | None:
        """The path parameters when ``path`` (from the workspace) is this automation's endpoint
        below ``prefix`` (its instance's ``a.b.``); ``None`` when it is not."""
        endpoint = self.endpoint
        if endpoint is None or not path.startswith(prefix):
            return None
        rest = path[len(prefix) :]
        if rest == endpoint:
            return {}
        if ":" not in endpoint and "*" not in endpoint:
            return None
        wanted, given = endpoint.split("/"), rest.split("/")
        params: dict[str, str] = {}
        for index, segment in enumerate(wanted):
            if segment.startswith("*"):
                tail = given[index:]
                if not tail or not all(tail):
                    return None
                params[segment[1:]] = "/".join(tail)
                return params
            if index >= len(given) or not given[index]:
                return None
            if segment.startswith(":"):
                params[segment[1:]] = given[index]
            elif segment != given[index]:
                return None
        return params if len(given) == len(wanted) else None

    @property
    def schedules(self) -> list[str]:
        return [str(cron) for cron in self.when.get("schedules") or []]

    def source(self) -> dict[str, Any]:
        """The definition as it was saved."""
        out: dict[str, Any] = {"name": self.localized_name or self.name, "do": self.do}
        if self.description:
            out["description"] = self.description
        if self.private:
            out["private"] = True
        if self.disabled:
            out["disabled"] = True
        if self.validate_arguments:
            out["validateArguments"] = True
        if self.arguments:
            out["arguments"] = self.arguments
        if self.when:
            out["when"] = self.when
        if self.output is not None:
            out["output"] = self.output
        return out


def _declared(instructions: Any, names: set[str]) -> None:
    """Collect the variable names ``instructions`` may set."""
    if not isinstance(instructions, list):
        return
    for instruction in instructions:
        if not isinstance(instruction, Mapping) or len(instruction) != 1:
            continue
        ((name, args),) = instruction.items()
        if not isinstance(args, Mapping):
            if name == "all":
                _declared(args, names)
            continue
        if name in ("set", "delete"):
            target = args.get("name")
            if isinstance(target, str):
                root = re.split(r"[.\[]", target, maxsplit=1)[0]
                if _VARIABLE.match(root):
                    names.add(root)
        elif isinstance(args.get("output"), str) and _VARIABLE.match(args["output"]):
            names.add(args["output"])
        if name == "conditions":
            for branch in args.values():
                _declared(branch, names)
        elif name == "repeat":
            names.update(LOOP_VARIABLES)
            _declared(args.get("do"), names)
        elif name == "try":
            names.add("$error")
            _declared(args.get("do"), names)
            _declared(args.get("catch"), names)


def _problems(
    instructions: Any, at: str, names: tuple[str, ...], depth: int = 0
) -> Iterator[tuple[str, str]]:
    if depth > 32:
        yield at, "instructions nest deeper than 32 levels"
        return
    if not isinstance(instructions, list):
        yield at, "must be a list of instructions"
        return
    for index, instruction in enumerate(instructions):
        where = f"{at}/{index}"
        if not isinstance(instruction, Mapping) or len(instruction) != 1:
            yield where, "must be one instruction: a mapping with a single key such as set or emit"
            continue
        ((name, args),) = instruction.items()
        inner = f"{where}/{escape_token(name)}"
        if name == "break":
            continue
        if name == "all":
            yield from _problems(args, inner, names, depth + 1)
            continue
        if not isinstance(args, Mapping):
            yield inner, f"the arguments of {name!r} must be a mapping"
            continue
        yield from _instruction_problems(str(name), args, inner, names, depth)


def _instruction_problems(
    name: str, args: Mapping[str, Any], at: str, names: tuple[str, ...], depth: int
) -> Iterator[tuple[str, str]]:
    required = {"set": ("name",), "delete": ("name",), "emit": ("event",), "fetch": ("url",)}
    for key in required.get(name, ()):
        if not isinstance(args.get(key), str) or not args[key]:
            yield f"{at}/{key}", f"is required by {name}: a string"
    if name in ("set", "delete") and isinstance(args.get("name"), str):
        root = re.split(r"[.\[]", args["name"], maxsplit=1)[0]
        if root in SCOPES:
            yield f"{at}/name", f"{root} is read-only; set a variable of your own instead"
    if name == "conditions":
        for condition, branch in args.items():
            where = f"{at}/{escape_token(condition)}"
            if condition != "default":
                try:
                    check_expression(str(condition), names=names, dialect=PRISMEAI)
                except ExpressionError as exc:
                    yield where, f"the condition cannot be read: {exc}"
            yield from _problems(branch, where, names, depth + 1)
        return
    if name == "try":
        unknown = sorted(str(key) for key in args if key not in ("do", "catch"))
        if unknown:
            yield at, f"try takes do and catch (instruction lists), not {', '.join(unknown)}"
        if "do" not in args:
            yield f"{at}/do", "is required by try: the instructions to try"
        else:
            yield from _problems(args.get("do"), f"{at}/do", names, depth + 1)
        if args.get("catch") is not None:
            yield from _problems(args["catch"], f"{at}/catch", names, depth + 1)
        return
    if name == "repeat":
        if "on" not in args and "until" not in args:
            yield at, "repeat needs 'on' (a list) or 'until' (a number of iterations)"
        yield from _problems(args.get("do"), f"{at}/do", names, depth + 1)
        templated = {key: value for key, value in args.items() if key != "do"}
    elif name == "wait":
        events = args.get("oneOf")
        # Without oneOf, a wait is a pause of ``timeout`` seconds (Prisme.ai's
        # ``wait: {timeout: 120}``).
        if ("oneOf" in args or "timeout" not in args) and (
            not isinstance(events, list) or not events
        ):
            yield f"{at}/oneOf", "is required by wait (or a timeout alone): a list of {event: name}"
        templated = dict(args)
    else:
        templated = dict(args)
    try:
        check_template(templated, names=names, pointer=at, dialect=PRISMEAI)
    except TemplateError as exc:
        yield exc.pointer, exc.reason


def _arguments_validator(arguments: Any) -> tuple[Validator | None, list[tuple[str, str]]]:
    """The validator of ``arguments`` and its problems as ``(pointer below arguments, reason)``."""
    if not arguments:
        return None, []
    if not isinstance(arguments, Mapping):
        return None, [("", "must map argument names to JSON Schemas")]
    schema = {
        "type": "object",
        "properties": {
            name: plain_schema(value) if isinstance(value, Mapping) else value
            for name, value in arguments.items()
        },
    }
    try:
        return compile_user_schema(schema), []
    except SchemaRefused as exc:
        # Pointers into the wrapper schema: "/properties/<name>/..." is "/<name>/..." here.
        return None, [
            (pointer.removeprefix("/properties"), reason) for pointer, reason in exc.problems
        ]


def _expression_problems(
    do: Any, output: Any, at: str, declared: set[str]
) -> tuple[list[tuple[str, str]], frozenset[str]]:
    """The problems of the expressions, and the plain names read but never declared.

    Prisme.ai reads such a name as undefined; so does modyard: each unknown name the grammar
    reports is added to what the automation sees and the check runs again (one name per
    expression per round), up to :data:`MAX_UNDECLARED` names. Other junk stays a problem.
    """
    undeclared: set[str] = set()
    while True:
        names = tuple(sorted({*SCOPES, *declared, *undeclared}))
        problems = list(_problems(do, f"{at}/do", names))
        if output is not None:
            try:
                check_template(output, names=names, pointer=f"{at}/output", dialect=PRISMEAI)
            except TemplateError as exc:
                problems.append((exc.pointer, exc.reason))
        unknown = {
            match.group(1)
            for _, reason in problems
            if (match := _UNKNOWN_NAME.search(reason)) is not None
        } - {*names, *RESERVED_NAMES}
        if not unknown or len(undeclared) + len(unknown) > MAX_UNDECLARED:
            return problems, frozenset(undeclared)
        undeclared |= unknown


def _flag(document: Mapping[str, Any], key: str, at: str, problems: list[tuple[str, str]]) -> bool:
    value = document.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        problems.append((f"{at}/{key}", "must be true or false"))
        return False
    return value


def compile_automation(slug: str, document: Any, *, at: str = "") -> Automation:
    """Check ``document`` and return it ready to run; :class:`DefinitionError` says what to fix."""
    if not isinstance(document, Mapping):
        raise DefinitionError([(at, "an automation is a mapping with name, when, do, output")])
    problems: list[tuple[str, str]] = []
    arguments = document.get("arguments") or {}
    validator, argument_problems = _arguments_validator(arguments)
    problems += [(f"{at}/arguments{pointer}", reason) for pointer, reason in argument_problems]
    if isinstance(arguments, Mapping):
        for argument in arguments:
            if not _VARIABLE.match(str(argument)) or argument in SCOPES:
                problems.append(
                    (
                        f"{at}/arguments/{escape_token(argument)}",
                        "argument names are identifiers other than " + "/".join(SCOPES),
                    )
                )
    private = _flag(document, "private", at, problems)
    disabled = _flag(document, "disabled", at, problems)
    validate = _flag(document, "validateArguments", at, problems)
    raw_name = document.get("name")
    name = localized_text(raw_name)
    if raw_name is not None and name is None:
        problems.append((f"{at}/name", "must be a string or a map of language → text"))
    when = document.get("when") or {}
    if not isinstance(when, Mapping):
        problems.append((f"{at}/when", "must be a mapping of events, endpoint and schedules"))
        when = {}
    events = when.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
        problems.append((f"{at}/when/events", "must be a list of event names"))
    endpoint = when.get("endpoint", False)
    if not isinstance(endpoint, bool) and not (
        isinstance(endpoint, str) and len(endpoint) <= 128 and ENDPOINT.fullmatch(endpoint)
    ):
        problems.append(
            (
                f"{at}/when/endpoint",
                "must be true, false or a name of [A-Za-z0-9_.-] segments joined by '/', where "
                "a segment ':id' or a last '*rest' is a path parameter (v1/users/:id)",
            )
        )
    schedules = when.get("schedules", [])
    if not isinstance(schedules, list) or not all(
        isinstance(s, str) and len(s.split()) == 5 for s in schedules
    ):
        problems.append(
            (f"{at}/when/schedules", "must be a list of 5-field cron expressions (UTC)")
        )
    do = document.get("do")
    if do is None:
        problems.append((f"{at}/do", "is required: the instructions (write 'do: []' for none)"))
        do = []
    declared: set[str] = set(arguments) if isinstance(arguments, Mapping) else set()
    declared.update(INPUT_VARIABLES)
    _declared(do, declared)
    declared = {n for n in declared if n not in SCOPES and _VARIABLE.match(n)}
    output = document.get("output")
    expression_problems, undeclared = _expression_problems(do, output, at, declared)
    problems += expression_problems
    if problems:
        raise DefinitionError(problems)
    description = document.get("description")
    return Automation(
        slug=slug,
        name=name or slug,
        do=list(do),
        private=private,
        arguments=dict(arguments),
        when=dict(when),
        output=output,
        description=localized_text(description),
        variables=frozenset(declared | undeclared),
        validator=validator,
        disabled=disabled,
        validate_arguments=validate,
        undeclared=undeclared,
        localized_name=dict(raw_name) if isinstance(raw_name, Mapping) else None,
    )


__all__ = [
    "ENDPOINT",
    "INPUT_VARIABLES",
    "INSTRUCTIONS",
    "SCOPES",
    "Automation",
    "DefinitionError",
    "compile_automation",
]
