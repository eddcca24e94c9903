"""Workspaces and the app instances inside them, and the isolation rules between them.

A :class:`Program` is a workspace, or an app instance installed in one (recursively: an app is a
workspace and installs apps too). What a running automation can reach follows from where its
program sits in that tree (seed 002, "AppInstances execution"):

- calls go **down** only: a program calls its own automations by slug and an instance's as
  ``<instance>.<automation>`` (``nlu.french.embed`` two levels down). Nothing names a parent or a
  sibling, so nothing reaches them. An automation marked ``private`` answers calls from its own
  program only.
- ``config`` is the program's own (see :func:`instance_config`).
- names of events and endpoints are prefixed with the instance's path from the workspace:
  ``executed`` emitted inside ``toolbox`` is ``toolbox.executed``; inside ``french`` installed
  by ``nlu`` it is ``nlu.french.processed``. A trigger listens to its prefixed name, so the
  workspace sees (and can emit) the full name while an instance never hears its parent's events.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from modyard.runtime.automations.definitions import Automation


class AutomationNotFound(LookupError):
    """No automation by that name is reachable from the caller."""


class PrivateAutomation(PermissionError):
    """The automation exists but is ``private`` to its app."""


@dataclass
class Program:
    workspace: str
    automations: dict[str, Automation] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    #: Values of the config fields marked secret (masked in events and logs).
    secrets: frozenset[str] = frozenset()
    instances: dict[str, Program] = field(default_factory=dict)
    #: Instance slugs from the workspace down to this program; ``()`` for the workspace itself.
    path: tuple[str, ...] = ()
    #: The app this instance runs (module name) and its version; ``None`` for the workspace.
    app: str | None = None
    app_version: str | None = None
    #: Whether the instance stays on its version (``imports`` with ``appVersion``).
    pinned: bool = False
    #: The app's own slug (Prisme.ai's ``appSlug``, e.g. ``Collection``), for an instance.
    app_slug: str | None = None
    #: Automations of the app version that cannot run here, by slug: ``(pointer, reason)``
    #: problems. Shown on the instance (``GET /v1/workspaces/{ws}/apps``) and logged.
    unusable: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def is_instance(self) -> bool:
        return bool(self.path)

    @property
    def slug(self) -> str | None:
        return self.path[-1] if self.path else None

    def full_name(self, name: str) -> str:
        """An event or endpoint name as the workspace sees it."""
        return ".".join((*self.path, name))

    def instance(self, path: tuple[str, ...]) -> Program:
        program = self
        for slug in path:
            program = program.instances[slug]
        return program

    def find(self, name: str, *, caller: Program | None = None) -> tuple[Program, Automation]:
        """The automation ``name`` names, as seen from this program.

        ``caller`` is the program asking (``None``: this one). Raises :class:`AutomationNotFound`
        or :class:`PrivateAutomation`.
        """
        caller = caller or self
        automation = self.automations.get(name)
        if automation is not None:
            if automation.private and caller is not self:
                raise PrivateAutomation(
                    f"automation {name!r} of app instance {'.'.join(self.path)!r} is private: "
                    "only automations of that app can call it"
                )
            return self, automation
        # Longest instance slug first: slugs may contain spaces ("Custom Code") but not dots.
        for slug in sorted(self.instances, key=len, reverse=True):
            if name.startswith(f"{slug}."):
                return self.instances[slug].find(name[len(slug) + 1 :], caller=caller)
        raise AutomationNotFound(f"no automation {name!r} is reachable from here")

    def programs(self) -> Iterator[Program]:
        """This program and every instance below it."""
        yield self
        for instance in self.instances.values():
            yield from instance.programs()

    def listeners(self, event: str) -> Iterator[tuple[Program, Automation]]:
        """Automations of this program and its instances triggered by the workspace's event
        ``event`` (a full name, as the workspace sees it)."""
        full = event
        for program in self.programs():
            for automation in program.automations.values():
                if automation.disabled:
                    continue  # registered, never run (Prisme.ai's ``disabled: true``)
                if any(program.full_name(name) == full for name in automation.events):
                    yield program, automation

    def endpoint(self, name: str) -> tuple[Program, Automation, dict[str, str]] | None:
        """The automation served as endpoint ``name`` (full name, from the workspace) and its
        path parameters: an exact name first, else the first endpoint with parameters
        (``v1/users/:id``) that matches."""
        templated: tuple[Program, Automation, dict[str, str]] | None = None
        for program in self.programs():
            prefix = program.full_name("")
            for automation in program.automations.values():
                params = automation.match_endpoint(name, prefix)
                if params is None:
                    continue
                if not params and program.full_name(automation.endpoint or "") == name:
                    return program, automation, {}
                if templated is None:
                    templated = (program, automation, params)
        return templated

    def global_context(self, api_url: str | None) -> dict[str, Any]:
        """Prisme.ai's read-only ``global``: the facts of the workspace the run is in.

        ``workspaceId``/``workspaceSlug`` are the workspace's name (modyard has one name for
        both); ``apiUrl`` this runtime's public base URL + ``/v1`` (``None`` when not known);
        ``endpoints`` maps each endpoint of this program (its own name, as the automation
        writes it) to its URL; ``endpointsUrl`` is their base.
        """
        base = api_url.rstrip("/") + "/v1" if api_url else None
        endpoints_url = f"{base}/workspaces/{self.workspace}/endpoints" if base else None
        endpoints = {
            automation.endpoint: f"{endpoints_url}/{self.full_name(automation.endpoint)}"
            for automation in self.automations.values()
            if automation.endpoint is not None and endpoints_url
        }
        return {
            "workspaceId": self.workspace,
            "workspaceSlug": self.workspace,
            "apiUrl": base,
            "endpointsUrl": endpoints_url,
            "endpoints": endpoints,
        }

    def run_context(self) -> dict[str, Any]:
        """What ``run.appInstance`` says: ``None`` in the workspace itself."""
        if not self.path:
            return {"workspace": self.workspace, "appInstance": None}
        return {
            "workspace": self.workspace,
            "appInstance": {
                "slug": self.path[-1],
                "fullSlug": ".".join(self.path),
                "app": self.app,
                "appVersion": self.app_version,
                "parents": list(self.path[:-1]),
            },
        }


def _env_value(text: str) -> Any:
    # Environment values are text; JSON in them (numbers, objects) is read as JSON.
    try:
        return json.loads(text)
    except ValueError:
        return text


def instance_config(
    app_slug: str,
    app_config: Mapping[str, Any],
    own_config: Mapping[str, Any],
    env: Mapping[str, str],
) -> dict[str, Any]:
    """An app instance's ``config``, most important last:

    the app's own config (its ``config.value``) for fields the instance leaves undefined,
    ``APP_CONFIG_<appSlug>_<FIELD>`` environment variables, the instance's own config.
    """
    config = copy.deepcopy(dict(app_config))
    prefix = f"APP_CONFIG_{app_slug}_"
    for name, value in env.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            config[name[len(prefix) :]] = _env_value(value)
    for name, value in own_config.items():
        if value is not None:
            config[name] = copy.deepcopy(value)
    return config


__all__ = [
    "AutomationNotFound",
    "PrivateAutomation",
    "Program",
    "instance_config",
]
