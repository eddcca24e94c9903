"""Automation definitions as users write them (Prisme.ai's YAML), checked once when saved.

A definition is ``{name, private, arguments, when, do, output}``. Checking it compiles it: every
``{{ }}`` expression is parsed over the names the automation can see (the scopes ``payload``,
``body``, ``config``, ``run``, ``user`` and the variables it declares — its arguments, the names it
``set``s or ``delete``s, the ``output`` of fetches, waits and calls, ``item``/``$index`` in
loops), so that an unknown name or junk is a 422 with its JSON pointer when the automation is
saved, never a surprise at run time. A variable declared but not yet set reads as ``null``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jsonschema.protocols import Validator

from modyard.common.expressions import MAX_EXPRESSION_LENGTH, ExpressionError, check_expression
from modyard.common.json_pointer import escape_token
from modyard.common.templates import TemplateError, check_template
from modyard.common.user_schemas import SchemaRefused, compile_user_schema

#: The scopes every expression sees; variables may not take these names.
SCOPES: Final = ("payload", "body", "config", "run", "user")
#: Variables a ``repeat`` sets for each element.
LOOP_VARIABLES: Final = ("item", "$index")
INSTRUCTIONS: Final = frozenset(
    {"set", "delete", "emit", "fetch", "conditions", "repeat", "break", "wait", "all", "comment"}
)
_VARIABLE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


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

    @property
    def schedules(self) -> list[str]:
        return [str(cron) for cron in self.when.get("schedules") or []]

    def source(self) -> dict[str, Any]:
        """The definition as it was saved."""
        out: dict[str, Any] = {"name": self.name, "do": self.do}
        if self.description:
            out["description"] = self.description
        if self.private:
            out["private"] = True
        if self.arguments:
            out["arguments"] = self.arguments
        if self.when:
            out["when"] = self.when
        if self.output is not None:
            out["output"] = self.output
        return out


def condition_expression(text: str) -> str:
    """A ``conditions`` key as one expression: ``{{a}} < {{b}}`` reads ``(a) < (b)``.

    Prisme.ai writes conditions with placeholders around references; the operators between them
    are the expression grammar's own.
    """
    # The lazy pattern rescans the rest of the text for each unclosed "{{": quadratic in the
    # length, so a text longer than any expression may be is refused before it is searched.
    if len(text) > 2 * MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"the condition is longer than {2 * MAX_EXPRESSION_LENGTH} characters",
            text=text,
            position=2 * MAX_EXPRESSION_LENGTH,
        )
    return _PLACEHOLDER.sub(lambda match: f"({match.group(1)})", text).strip()


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
                    check_expression(condition_expression(str(condition)), names=names)
                except ExpressionError as exc:
                    yield where, f"the condition cannot be read: {exc}"
            yield from _problems(branch, where, names, depth + 1)
        return
    if name == "repeat":
        if "on" not in args and "until" not in args:
            yield at, "repeat needs 'on' (a list) or 'until' (a number of iterations)"
        yield from _problems(args.get("do"), f"{at}/do", names, depth + 1)
        templated = {key: value for key, value in args.items() if key != "do"}
    elif name == "wait":
        events = args.get("oneOf")
        if not isinstance(events, list) or not events:
            yield f"{at}/oneOf", "is required by wait: a list of {event: name}"
        templated = dict(args)
    else:
        templated = dict(args)
    try:
        check_template(templated, names=names, pointer=at)
    except TemplateError as exc:
        yield exc.pointer, exc.reason


def _arguments_validator(arguments: Any) -> tuple[Validator | None, list[tuple[str, str]]]:
    """The validator of ``arguments`` and its problems as ``(pointer below arguments, reason)``."""
    if not arguments:
        return None, []
    if not isinstance(arguments, Mapping):
        return None, [("", "must map argument names to JSON Schemas")]
    schema = {"type": "object", "properties": dict(arguments)}
    try:
        return compile_user_schema(schema), []
    except SchemaRefused as exc:
        # Pointers into the wrapper schema: "/properties/<name>/..." is "/<name>/..." here.
        return None, [
            (pointer.removeprefix("/properties"), reason) for pointer, reason in exc.problems
        ]


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
                        "argument names are identifiers other than payload/body/config/run/user",
                    )
                )
    private = document.get("private", False)
    if not isinstance(private, bool):
        problems.append((f"{at}/private", "must be true or false"))
    when = document.get("when") or {}
    if not isinstance(when, Mapping):
        problems.append((f"{at}/when", "must be a mapping of events, endpoint and schedules"))
        when = {}
    events = when.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
        problems.append((f"{at}/when/events", "must be a list of event names"))
    endpoint = when.get("endpoint", False)
    if not isinstance(endpoint, bool) and not (
        isinstance(endpoint, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", endpoint)
    ):
        problems.append((f"{at}/when/endpoint", "must be true, false or a name of [A-Za-z0-9_.-]"))
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
    _declared(do, declared)
    declared -= set(SCOPES)
    names = tuple(sorted({*SCOPES, *(n for n in declared if _VARIABLE.match(n))}))
    problems += list(_problems(do, f"{at}/do", names))
    output = document.get("output")
    if output is not None:
        try:
            check_template(output, names=names, pointer=f"{at}/output")
        except TemplateError as exc:
            problems.append((exc.pointer, exc.reason))
    if problems:
        raise DefinitionError(problems)
    name = document.get("name")
    description = document.get("description")
    return Automation(
        slug=slug,
        name=name if isinstance(name, str) and name else slug,
        do=list(do),
        private=private,
        arguments=dict(arguments),
        when=dict(when),
        output=output,
        description=description if isinstance(description, str) else None,
        variables=frozenset(declared),
        validator=validator,
    )


__all__ = [
    "INSTRUCTIONS",
    "SCOPES",
    "Automation",
    "DefinitionError",
    "compile_automation",
    "condition_expression",
]
