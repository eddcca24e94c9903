"""How a flow node names the component it uses: the grammar the installer and the runtime share.

Installation slugs may contain dots (a module's name is its default slug, and Appmixer modules are
named ``vendor.service`` or ``vendor.service.module``), and so may component names (Appmixer's are
``vendor.service.module.Component``). A reference is therefore not cut at a fixed dot; it is matched
against what the workspace has installed:

- ``core.<name>``: a built-in component of the runtime (the slug ``core`` is reserved for it).
- ``<slug>.<local name>``: the canonical form. The local name is the component's name without its
  module's name in front, so an Appmixer component installed under its default slug is referred
  to by its own Appmixer name (``appmixer.github.list.GetUser``), and under another slug as
  ``gh.list.GetUser``. Components whose names do not start with the module's are unchanged
  (``echo.Echo``).
- ``<slug>.<component name>``: the full name after the slug, which is what references were before
  (``gh.appmixer.github.list.GetUser``); still read, so existing flows keep working.
- ``<slug>:<component name>``: explicit, never ambiguous (a slug has no colon); the installer hands
  it out only when the dotted form would match two components of the workspace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

CORE_SLUG: Final = "core"
EXPLICIT_SEPARATOR: Final = ":"


@dataclass(frozen=True)
class Candidate:
    """One installed component a reference might name."""

    slug: str
    module: str
    component: str


def is_core(reference: str) -> bool:
    return reference.startswith(CORE_SLUG + ".")


def is_reserved_slug(slug: str) -> bool:
    """Slugs a flow could not reach: ``core`` and ``core.…`` name the built-in components."""
    return slug == CORE_SLUG or slug.startswith(CORE_SLUG + ".")


def local_name(module: str, component: str) -> str:
    prefix = module + "."
    return component[len(prefix) :] if component.startswith(prefix) else component


def canonical_ref(slug: str, module: str, component: str) -> str:
    return f"{slug}.{local_name(module, component)}"


def explicit_ref(slug: str, component: str) -> str:
    return f"{slug}{EXPLICIT_SEPARATOR}{component}"


def syntax_problem(reference: str) -> str | None:
    """Why ``reference`` cannot name any component, or ``None`` when it might."""
    if candidate_slugs(reference):
        return None
    return (
        f"{reference!r} is not '<installation>.<component>', '<installation>:<component>' or "
        "'core.<name>'; GET /v1/workspaces/{ws}/components gives each component's ref"
    )


def candidate_slugs(reference: str) -> list[str]:
    """Every slug ``reference`` could start with: one per dot (longest first), then the one
    before the first colon. Each leaves a non-empty component name; none holds a colon."""
    slugs = [
        reference[:index]
        for index in range(len(reference) - 2, 0, -1)
        if reference[index] == "." and EXPLICIT_SEPARATOR not in reference[:index]
    ]
    explicit, colon, rest = reference.partition(EXPLICIT_SEPARATOR)
    if colon and explicit and rest and explicit not in slugs:
        slugs.append(explicit)
    return slugs


def _forms(candidate: Candidate) -> set[str]:
    """Every reference that names ``candidate``."""
    slug, component = candidate.slug, candidate.component
    local = local_name(candidate.module, component)
    return {
        f"{slug}.{component}",
        f"{slug}.{local}",
        explicit_ref(slug, component),
        explicit_ref(slug, local),
    }


def accepts(reference: str, candidate: Candidate) -> bool:
    """Whether ``reference`` names ``candidate`` in any of the forms above."""
    return reference in _forms(candidate)


def matching(reference: str, candidates: Iterable[Candidate]) -> list[Candidate]:
    return [candidate for candidate in candidates if accepts(reference, candidate)]


def refs(workspace: Iterable[Candidate]) -> dict[Candidate, str]:
    """The ref to hand out for each component of a workspace: canonical, or explicit where the
    canonical one would also name another component."""
    items = list(workspace)
    uses = Counter(form for candidate in items for form in _forms(candidate))
    result: dict[Candidate, str] = {}
    for candidate in items:
        canonical = canonical_ref(candidate.slug, candidate.module, candidate.component)
        result[candidate] = (
            canonical if uses[canonical] == 1 else explicit_ref(candidate.slug, candidate.component)
        )
    return result


def ambiguity_detail(reference: str, found: Sequence[Candidate]) -> str:
    choices = ", ".join(repr(explicit_ref(item.slug, item.component)) for item in found)
    return (
        f"{reference!r} names {len(found)} installed components; "
        f"write one of {choices} to say which"
    )


__all__ = [
    "CORE_SLUG",
    "EXPLICIT_SEPARATOR",
    "Candidate",
    "accepts",
    "ambiguity_detail",
    "candidate_slugs",
    "canonical_ref",
    "explicit_ref",
    "is_core",
    "is_reserved_slug",
    "local_name",
    "matching",
    "refs",
    "syntax_problem",
]
