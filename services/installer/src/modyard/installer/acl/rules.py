"""Access-control rules in Appmixer's shape, and who may use what.

A rule names exactly one of ``role``, ``user`` (an email) or ``domain`` (the part after ``@``), a
``resource`` (``*`` matches any run of characters), an ``action`` (``*`` for all) and optional
``attributes`` that must all equal the resource's own. Nothing is allowed unless a rule allows it;
operators are allowed everything. One rule type: ``components`` (resources are
``<module>.<component>``, or the component's own dotted name when it already starts with the module
name, as Appmixer's ``vendor.service.module.Component`` do).

There is no ``routes`` type any more: rules of that type were stored but nothing ever consulted
them, so an operator writing one believed an API path was closed when it was not. What a caller
may reach of the APIs is decided by the token's roles and workspaces, in every service.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any


class AclType(StrEnum):
    components = "components"


@dataclass(frozen=True)
class Rule:
    resource: str
    action: str
    role: str | None = None
    user: str | None = None
    domain: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """Who asks: their roles and, for people, their email."""

    roles: frozenset[str]
    email: str | None = None

    @property
    def domain(self) -> str | None:
        return self.email.rsplit("@", 1)[1].lower() if self.email and "@" in self.email else None


@lru_cache(maxsize=4096)
def _pattern(resource: str) -> re.Pattern[str]:
    # Only ``*`` is special (fnmatch would also treat ``?`` and ``[…]`` as wildcards).
    return re.compile(fnmatch.translate(resource.replace("[", "[[]").replace("?", "[?]")))


def rule_applies_to(rule: Rule, subject: Subject) -> bool:
    if rule.role is not None:
        return rule.role in subject.roles
    if rule.user is not None:
        return subject.email is not None and rule.user.lower() == subject.email.lower()
    if rule.domain is not None:
        return subject.domain == rule.domain.lower().lstrip("@")
    return False


def allows(
    rules: Iterable[Rule],
    subject: Subject,
    resource: str,
    action: str,
    attributes: Mapping[str, Any] | None = None,
) -> bool:
    if "operator" in subject.roles:
        return True
    own = attributes or {}
    return any(
        rule_applies_to(rule, subject)
        and (rule.action in ("*", action))
        and _pattern(rule.resource).fullmatch(resource) is not None
        and all(own.get(key) == value for key, value in rule.attributes.items())
        for rule in rules
    )


def component_resource(module: str, component: str) -> str:
    return component if component.startswith(module + ".") else f"{module}.{component}"


def module_resources(module: str) -> str:
    """The wildcard that covers every component of ``module``."""
    return f"{module}.*"
