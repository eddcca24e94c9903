"""What the core components share: the template scope, checked properties, template errors.

A core component validates its properties against its own schema on every run (a compiled
validator, cheap) although the flow was checked when it started: a component must not fail with a
``KeyError`` (an unknown failure, retried 30 times) on a definition that slipped past the check.
A property that does not fit, or a template that does not render, is a ``ComponentError`` that is
not retried: the same message would fail the same way every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from jsonschema import Draft202012Validator

from modyard.common.templates import (
    TemplateError,
    check_template,
    render,
    render_text,
)
from modyard.runtime.components.base import ComponentError, Delay, ExecutionContext, Outputs
from modyard.runtime.failures import KIND_UNKNOWN, KIND_VALIDATION

#: The input port of every core component (they take one kind of message).
IN_PORT = "in"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


#: The names a runtime template may use (the keys of :func:`scope_for`).
SCOPE_NAMES: Final = ("payload", "properties", "config", "flow", "message")


def scope_for(context: ExecutionContext, payload: Any) -> dict[str, Any]:
    """The names a core component's templates see (:data:`SCOPE_NAMES`)."""
    return {
        "payload": payload,
        "properties": context.properties,
        "config": context.config,
        "flow": {"id": context.flow_id, "workspace": context.workspace},
        "message": {"id": context.message_id},
    }


def template_failure(exc: TemplateError) -> ComponentError:
    return ComponentError(
        str(exc),
        retryable=False,
        details={"kind": KIND_VALIDATION, "pointer": exc.pointer, "position": exc.position},
    )


def missing_callback(what: str) -> ComponentError:
    # The engine always wires its callbacks: a context without one is the runtime's bug, not the
    # message's, and may be gone after a redeploy, so it is retried like any unknown failure.
    return ComponentError(
        f"the runtime gave this node no {what} callback",
        retryable=True,
        details={"kind": KIND_UNKNOWN},
    )


#: One compiled validator per component class (schemas are class constants).
_VALIDATORS: dict[type[CoreComponent], Draft202012Validator] = {}
#: Properties objects that passed their component's schema, by identity: a node's properties are
#: the same object for every message while its flow stays cached, and validating them again cost
#: about 4 % of a node execution under load. The entry holds the object, so its id cannot be
#: reused while the entry lives; definitions are never mutated after they are loaded.
_CHECKED: dict[tuple[type[CoreComponent], int], Mapping[str, Any]] = {}
_CHECKED_MAX = 4096


class CoreComponent:
    """Base of the built-in components (they satisfy the ``Component`` protocol)."""

    name: ClassVar[str]
    properties_schema: ClassVar[dict[str, Any]]
    out_ports: ClassVar[tuple[str, ...]]
    #: Properties whose values are templates, checked by :meth:`check`.
    template_properties: ClassVar[tuple[str, ...]] = ()

    def check(self, properties: Mapping[str, Any]) -> None:
        """What the properties' schema cannot say, for flow start (run it after the schema).

        Raises :class:`~modyard.common.templates.TemplateError` (a ``ValueError``) whose
        ``pointer`` is relative to the properties (``/mapping/total``).
        """
        for name in self.template_properties:
            if name in properties:
                check_template(properties[name], names=SCOPE_NAMES, pointer=f"/{name}")

    def properties(self, context: ExecutionContext) -> Mapping[str, Any]:
        """The node's properties, checked against the schema (a ``ComponentError`` if not)."""
        key = (type(self), id(context.properties))
        if _CHECKED.get(key) is context.properties:
            return context.properties
        validator = _VALIDATORS.get(type(self))
        if validator is None:
            validator = _VALIDATORS[type(self)] = Draft202012Validator(self.properties_schema)
        errors = sorted(validator.iter_errors(context.properties), key=lambda error: error.path)
        if errors:
            problems = [
                {
                    "pointer": "".join(f"/{part}" for part in error.absolute_path),
                    "detail": error.message,
                }
                for error in errors
            ]
            raise ComponentError(
                f"the node's properties do not fit {self.name}: {problems[0]['pointer'] or '/'} "
                f"{problems[0]['detail']}",
                retryable=False,
                details={"kind": KIND_VALIDATION, "errors": problems},
            )
        if len(_CHECKED) >= _CHECKED_MAX:  # flows come and go: forget them all now and then
            _CHECKED.clear()
        _CHECKED[key] = context.properties
        return context.properties

    @staticmethod
    def render(template: Any, scope: Mapping[str, Any], pointer: str) -> Any:
        try:
            return render(template, scope, pointer=pointer)
        except TemplateError as exc:
            raise template_failure(exc) from None

    @staticmethod
    def render_text(template: str, scope: Mapping[str, Any], pointer: str) -> str:
        try:
            return render_text(template, scope, pointer=pointer)
        except TemplateError as exc:
            raise template_failure(exc) from None

    async def run(self, context: ExecutionContext, port: str, payload: Any) -> Outputs | Delay:
        raise NotImplementedError


__all__ = [
    "IN_PORT",
    "JSON_SCHEMA_DIALECT",
    "SCOPE_NAMES",
    "CoreComponent",
    "missing_callback",
    "scope_for",
    "template_failure",
]
