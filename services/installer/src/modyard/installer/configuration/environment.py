"""Environment overrides (``APP_CONFIG_…``/``APP_SECRET_…``) and the effective configuration.

The variables name the **module** an installation runs, not the installation: as in Prisme.ai
("environment variables built using the target app slug"), an operator gives every installation of
one module its settings, in every workspace. They were keyed by the installation's slug before, and
a slug is the tenant's own choice: any workspace could name an installation of *any* module like
another workspace's and be handed its secrets. A module's name is the publisher's (publishing takes
an operator or a service), so a tenant cannot aim a variable at its own installation this way; what
one workspace's installation needs alone goes in its own (sealed) configuration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from modyard.common.json_pointer import json_pointer
from modyard.installer.configuration.declared import Path, Setting, spec_settings
from modyard.installer.configuration.description import (
    accepts_strings,
    setting_description,
    strings_only,
)
from modyard.installer.configuration.layers import default_values, layered
from modyard.installer.configuration.secrets import secret_paths, split_secrets
from modyard.modules.manifest import ConfigSpec

log = structlog.get_logger(__name__)

CONFIG_PREFIX: Final = "APP_CONFIG_"
SECRET_PREFIX: Final = "APP_SECRET_"  # noqa: S105 (a name prefix, not a password)

_NOT_ENV_CHARACTER = re.compile(r"[^A-Za-z0-9]")


def env_name_part(text: str) -> str:
    """A slug or a setting name as it appears in a variable name: upper case, ``[A-Z0-9_]``."""
    return _NOT_ENV_CHARACTER.sub("_", text).upper()


def env_variable(module: str, path: Sequence[str], *, secret: bool) -> str:
    """``APP_CONFIG_<MODULE>_<KEY>`` (``APP_SECRET_…`` for a secret), members joined by ``_``."""
    prefix = SECRET_PREFIX if secret else CONFIG_PREFIX
    return prefix + "_".join(env_name_part(part) for part in (module, *path))


@dataclass(frozen=True)
class EnvNote:
    """Why a variable was not used. Names only: never the variable's value."""

    variable: str
    pointer: str
    reason: str


@dataclass
class EnvOverrides:
    values: dict[str, Any] = field(default_factory=dict)
    #: pointer of each setting the environment set → the variable it came from.
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[EnvNote] = field(default_factory=list)


class _Environment:
    """Variables found by their normalised names (``APP_CONFIG_nlu_API_URL`` is Prisme.ai's spelling
    of ``APP_CONFIG_NLU_API_URL``)."""

    def __init__(self, environ: Mapping[str, str], result: EnvOverrides) -> None:
        self._result = result
        self._by_name: dict[str, list[tuple[str, str]]] = {}
        for name, value in environ.items():
            canonical = env_name_part(name)
            if canonical.startswith((CONFIG_PREFIX, SECRET_PREFIX)):
                self._by_name.setdefault(canonical, []).append((name, value))

    def get(self, canonical: str, pointer: str) -> tuple[str, str] | None:
        found = sorted(self._by_name.get(canonical, []))
        if not found:
            return None
        exact = [item for item in found if item[0] == canonical]
        if exact or len({value for _, value in found}) == 1:
            return (exact or found)[0]
        self._result.notes.append(
            EnvNote(
                ", ".join(name for name, _ in found),
                pointer,
                f"these variables all spell {canonical} and disagree; keep one",
            )
        )
        return None


def _parse_env_value(raw: str, setting: Setting) -> tuple[bool, Any]:
    schema = setting.schema
    if not setting.multiple and not setting.is_group:
        if schema is not None and strings_only(schema):
            return True, raw
        if schema is None and setting.ui is not None and setting.ui.type in (
            "text", "password", "dropDown", "buttonsGroup",
        ):  # fmt: skip
            return True, raw
        kinds = {schema.get("type")} if schema is not None else set()
        toggle = (setting.ui is not None and setting.ui.type == "toggle") or "boolean" in kinds
        if toggle and raw.strip().lower() in ("true", "false"):
            return True, raw.strip().lower() == "true"
    try:
        value = json.loads(raw)
    except ValueError:
        accepts_raw = (
            not setting.multiple
            and not setting.is_group
            and (schema is None or accepts_strings(schema))
        )
        return (True, raw) if accepts_raw else (False, None)
    if setting.is_group and not setting.multiple and not isinstance(value, dict):
        return False, None
    return True, value


def _set(target: dict[str, Any], path: Path, value: Any) -> None:
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _read_settings(
    env: _Environment,
    result: EnvOverrides,
    module: str,
    settings: Mapping[str, Setting],
    secrets: frozenset[Path],
    prefix: Path,
) -> None:
    for name, setting in settings.items():
        path = (*prefix, name)
        pointer = json_pointer(*path)
        secret = any(path[:length] in secrets for length in range(1, len(path) + 1))
        wanted = env_variable(module, path, secret=secret)
        unwanted = env_variable(module, path, secret=not secret)
        wrong = env.get(unwanted, pointer)
        if wrong is not None:
            reason = (
                f"{pointer} is a secret: set it with {wanted}, never an {CONFIG_PREFIX}… variable"
                if secret
                else f"{pointer} is not a secret: set it with {wanted}"
            )
            result.notes.append(EnvNote(wrong[0], pointer, reason))
        found = env.get(wanted, pointer)
        if found is not None:
            ok, value = _parse_env_value(found[1], setting)
            if not ok:
                result.notes.append(
                    EnvNote(
                        found[0],
                        pointer,
                        f"is not valid JSON for {setting_description(setting)}; ignored",
                    )
                )
            else:
                if isinstance(value, dict) and not secret:
                    # A group's JSON from APP_CONFIG_… cannot carry its secret members.
                    below = frozenset(p[len(path) :] for p in secrets if p[: len(path)] == path)
                    value, dropped = split_secrets(value, below)
                    if dropped:
                        result.notes.append(
                            EnvNote(
                                found[0],
                                pointer,
                                f"its secret members are set with {SECRET_PREFIX}… only; ignored",
                            )
                        )
                _set(result.values, path, value)
                result.sources[pointer] = found[0]
        if setting.is_group and not setting.multiple:
            _read_settings(env, result, module, setting.members, secrets, path)


def read_env_overrides(module: str, spec: ConfigSpec, environ: Mapping[str, str]) -> EnvOverrides:
    """The settings the environment gives every installation of ``module`` (its name), with notes
    on what was ignored (the module's docstring says why the module and not the installation).

    Each setting has exactly one variable: ``APP_CONFIG_<MODULE>_<KEY>``, or
    ``APP_SECRET_<MODULE>_<KEY>`` for a secret. MODULE and KEY are upper-cased with every character
    outside ``[A-Za-z0-9]`` turned into ``_`` (module ``acme.crm`` is ``ACME_CRM``); a group
    member's KEY is the group's and the member's joined by ``_``
    (``APP_CONFIG_CRM_ADVANCED_APIURL`` for ``advanced.apiUrl``), and the group itself can be set
    whole as a JSON object (``APP_CONFIG_CRM_ADVANCED='{"apiUrl": …}'``; its members' own variables
    win over it). Members of multiple groups have no variables of their own (set the list whole).
    Variable names match case-insensitively after that normalisation, so Prisme.ai's
    ``APP_CONFIG_<appSlug>_<field>`` spelling works.

    A secret set through ``APP_CONFIG_…`` (or a plain setting through ``APP_SECRET_…``) is ignored
    with a note: operators keep secrets in variables named as secrets (and sourced from a secret
    store), and a plain variable that tools may print must not be a way in. Values are taken as
    they are for settings whose schema allows strings only, else parsed as JSON (numbers,
    booleans — also ``True``/``FALSE`` —, lists, objects); text that is not JSON is kept as a string
    where the setting accepts strings, else ignored with a note.

    Names can collide (module ``a`` setting ``b_c`` and module ``a-b`` setting ``c`` both read
    ``APP_CONFIG_A_B_C``); operators publish modules and keep such names apart.
    """
    if not module:
        raise ValueError("a module name is needed to read its environment overrides")
    result = EnvOverrides()
    env = _Environment(environ, result)
    _read_settings(env, result, module, spec_settings(spec), secret_paths(spec), ())
    return result


def env_overrides(module: str, spec: ConfigSpec, environ: Mapping[str, str]) -> dict[str, Any]:
    """:func:`read_env_overrides`' values; its notes are logged (variable names, never values)."""
    result = read_env_overrides(module, spec, environ)
    for note in result.notes:
        log.warning(
            "config.env_variable_ignored",
            module=module,
            variable=note.variable,
            pointer=note.pointer,
            reason=note.reason,
        )
    return result.values


def effective_config(
    spec: ConfigSpec,
    instance: Mapping[str, Any],
    module: str,
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """What the runtime runs an installation of ``module`` with: instance > environment >
    defaults.

    Not validated (the environment may have changed since the configuration was): call
    :func:`config_errors` on the result to find out.
    """
    settings = spec_settings(spec)
    return layered(
        settings, [default_values(settings), env_overrides(module, spec, environ), instance]
    )
