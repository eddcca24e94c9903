"""A workspace's :class:`Program` tree, built from the database and cached for a short while.

Reading the tables on every endpoint call would cost more than running the automation; a
workspace's tree is kept until an ``automations.changed`` event drops it in every runtime process
(a saved automation, the app settings, an app instance: recorded with the change, heard once it
committed, replica_news.py), and at most :data:`CACHE_SECONDS` for what no event announces.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.db.database import Database
from modyard.common.secrets import SecretBox
from modyard.common.single_flight import SingleFlight
from modyard.common.templates import TemplateError, is_template, render
from modyard.runtime.automations.definitions import (
    Automation,
    DefinitionError,
    compile_automation,
)
from modyard.runtime.automations.models import (
    AppInstance,
    AutomationWorkspace,
    StoredAutomation,
)
from modyard.runtime.automations.program import Program, instance_config
from modyard.runtime.automations.secret_config import secret_fields, unsealed_config

log = structlog.get_logger(__name__)

CACHE_SECONDS: Final = 1.0


def _compiled(
    owner: str, definitions: Iterable[tuple[str, Any]]
) -> tuple[dict[str, Automation], dict[str, list[tuple[str, str]]]]:
    """The automations that compile, and the problems of those that do not.

    An app version published before a check existed (or by a registry that does not run the
    runtime's checks) may hold an automation this runtime cannot run: its other automations
    still run, and the unusable one is logged and shown on the instance
    (``GET /v1/workspaces/{ws}/apps``, ``unusable``), never dropped silently.
    """
    automations: dict[str, Automation] = {}
    unusable: dict[str, list[tuple[str, str]]] = {}
    for slug, definition in definitions:
        try:
            automations[slug] = compile_automation(slug, definition)
        except DefinitionError as exc:
            unusable[slug] = exc.problems
            log.warning("automation.unusable", owner=owner, automation=slug, problems=str(exc))
    return automations, unusable


_MANIFEST_KEYS: Final = ("name", "description", "private", "arguments", "when", "do", "output")
#: Prisme.ai keys the ``prismeai`` format keeps in an automation's ``extra``.
_EXTRA_KEYS: Final = ("disabled", "validateArguments")


def app_definitions(manifest: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """An app version's automations (the registry's canonical manifest) as definitions."""
    definitions: list[tuple[str, dict[str, Any]]] = []
    for item in manifest.get("automations") or []:
        definition = {key: item[key] for key in _MANIFEST_KEYS if item.get(key) is not None}
        extra = item.get("extra") or {}
        definition.update({key: extra[key] for key in _EXTRA_KEYS if extra.get(key) is not None})
        definitions.append((str(item["slug"]), definition))
    return definitions


def app_config_value(manifest: Mapping[str, Any]) -> dict[str, Any]:
    prismeai = (manifest.get("extra") or {}).get("prismeai") or {}
    return dict(prismeai.get("config_value") or {})


def app_slug(manifest: Mapping[str, Any]) -> str:
    prismeai = (manifest.get("extra") or {}).get("prismeai") or {}
    return str(prismeai.get("slug") or manifest.get("name") or "")


def app_secret_fields(manifest: Mapping[str, Any]) -> set[str]:
    fields = (manifest.get("config") or {}).get("fields") or []
    return {str(field["name"]) for field in fields if field.get("secret")}


def _render_config(config: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Config values written as templates (``'{{config.API_KEY}}'`` in an import) read ``over``."""
    out = dict(config)
    for key, value in config.items():
        if isinstance(value, str) and is_template(value):
            try:
                out[key] = render(value, {"config": over})
            except TemplateError:
                log.warning("automation.config_template_unusable", field=key)
    return out


def _import_config(
    parent: AppInstance | None, name: str, over: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The config the parent app's import ``name`` writes as an expression, evaluated now.

    Prisme.ai takes any value as an import's ``config``; ``'{{config}}'`` (the importing app's
    whole config passed on) is the common one. The registry keeps such a value as the import's
    ``config_expression``; it is rendered over the parent instance's config each time the
    program is built, so a reconfigured parent reconfigures its import too. ``None`` when the
    import has none or it does not give a mapping (a config is a mapping of fields).
    """
    if parent is None:
        return None
    for item in (parent.manifest or {}).get("imports") or []:
        if item.get("slug") != name or item.get("config_expression") is None:
            continue
        try:
            value = render(item["config_expression"], {"config": over})
        except TemplateError:
            value = None
        if isinstance(value, Mapping):
            return dict(value)
        log.warning("automation.import_config_unusable", instance=parent.slug, import_=name)
    return None


def build_program(
    workspace: str,
    settings: AutomationWorkspace | None,
    automations: Iterable[StoredAutomation],
    instances: Iterable[AppInstance],
    box: SecretBox | None,
    env: Mapping[str, str] | None = None,
) -> Program:
    config = unsealed_config(
        settings.config_schema if settings else {}, settings.config_value if settings else {}, box
    )
    own_automations, own_unusable = _compiled(
        workspace, ((row.slug, row.definition) for row in automations)
    )
    root = Program(
        workspace=workspace,
        automations=own_automations,
        unusable=own_unusable,
        config=config,
        secrets=frozenset(
            str(config[name])
            for name in secret_fields(settings.config_schema if settings else {})
            if config.get(name)
        ),
    )
    rows = {row.slug: row for row in instances}
    # Parents before children: "nlu" is built before "nlu.french".
    for row in sorted(rows.values(), key=lambda item: item.slug.count(".")):
        path = tuple(row.slug.split("."))
        try:
            parent = root.instance(path[:-1])
        except KeyError:
            log.warning("automation.orphan_instance", workspace=workspace, instance=row.slug)
            continue
        own = dict(row.config)
        if row.secrets and box is not None:
            own.update(box.decrypt_json(row.secrets))
        own = _render_config(own, parent.config)
        passed = _import_config(rows.get(".".join(path[:-1])), path[-1], parent.config)
        if passed is not None:
            # What the importing app writes is the import's config: over the app's defaults,
            # as a mapping written in the import is.
            own.update(passed)
        merged = instance_config(
            app_slug(row.manifest), app_config_value(row.manifest), own, env or {}
        )
        merged = _render_config(merged, merged)
        secrets = app_secret_fields(row.manifest)
        secret_values = {str(merged[name]) for name in secrets if merged.get(name)}
        if passed is not None:
            # The parent's secrets may now be in this config: they stay masked here too.
            secret_values |= parent.secrets
        compiled, unusable = _compiled(row.slug, app_definitions(row.manifest))
        parent.instances[path[-1]] = Program(
            workspace=workspace,
            automations=compiled,
            unusable=unusable,
            app_slug=app_slug(row.manifest) or None,
            config=merged,
            secrets=frozenset(secret_values),
            path=path,
            app=row.module,
            app_version=row.version,
            pinned=row.pinned,
        )
    return root


async def load_program(session: AsyncSession, workspace: str, box: SecretBox | None) -> Program:
    settings = await session.get(AutomationWorkspace, workspace)
    automations = await session.scalars(
        select(StoredAutomation).where(StoredAutomation.workspace == workspace)
    )
    instances = await session.scalars(select(AppInstance).where(AppInstance.workspace == workspace))
    return build_program(workspace, settings, list(automations), list(instances), box)


class ProgramCache:
    """Programs by workspace. An expired program is served while one task rebuilds it: under
    load, every request of that second would otherwise wait for the same reload."""

    def __init__(self, database: Database, box: SecretBox | None, ttl: float = CACHE_SECONDS):
        self.database = database
        self.box = box
        self.ttl = ttl
        self._programs: dict[str, tuple[float, Program]] = {}
        #: One rebuild per workspace at a time; one in flight when the workspace changes answers
        #: its waiters but is not kept (SingleFlight), so the next call rebuilds after the change.
        self._loading: SingleFlight[str, Program] = SingleFlight("program")

    async def _load(self, workspace: str) -> Program:
        async with self.database.transaction() as session:
            return await load_program(session, workspace, self.box)

    def _reload(self, workspace: str) -> asyncio.Task[Program]:
        def keep(program: Program) -> None:
            self._programs[workspace] = (time.monotonic() + self.ttl, program)

        return self._loading.start(workspace, lambda: self._load(workspace), keep)

    async def get(self, workspace: str, session: AsyncSession | None = None) -> Program:
        """The workspace's program; with ``session``, always read within it (fresh)."""
        if session is not None:
            # Not kept: the session may hold changes of its own not yet committed (or never),
            # and a change announced during this read would not stop it being kept.
            return await load_program(session, workspace, self.box)
        cached = self._programs.get(workspace)
        if cached is None:
            return await asyncio.shield(self._reload(workspace))
        if cached[0] <= time.monotonic():
            self._reload(workspace)  # stale for the moment it takes to rebuild
        return cached[1]

    def forget(self, workspace: str) -> None:
        self._programs.pop(workspace, None)
        self._loading.forget(workspace)

    def forget_all(self) -> None:
        self._programs.clear()
        self._loading.forget_all()
