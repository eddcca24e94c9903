"""Secrets' defaults never leave the registry: not in the manifest, not in the stored upload.

The adapters leave a secret's default out of the canonical manifest, but the registry also serves
what was uploaded (``GET …/archive``, ``GET …/files/{path}``) to anyone who can read the module.
Refusing such a module would be explicit, but a module valid on its home platform must publish
unedited (a Slingr password field or a container's ``API_TOKEN`` may well carry a default there),
so the registry stores a copy without those values instead:

* each JSON or YAML document that holds one is stored re-serialised without it (JSON indented by
  two spaces; YAML loses its comments and layout, not its content); every other file is kept byte
  for byte, with its name, order, timestamp and compression;
* the manifest is built from that copy, so digests of files pinned in it match what is served;
* a container module sent as a JSON body is stored re-serialised the same way.

What counts as a secret's default:

* anywhere in a JSON/YAML document, the ``default``/``defaultValue`` of an object that says it is
  secret: ``secret: true``, ``type: password`` (Slingr fields and step inputs), ``ui:widget:
  password`` (Prisme.ai), ``writeOnly: true`` (JSON Schema);
* the values the manifest marks secret by name, in a top-level document: a container's ``env``
  (list or mapping form), a native ``config.schema``'s properties, Prisme.ai's ``config.value``,
  AppCell's ``settings.json`` ``settings`` (kept as ``""``, which AppCell reads as "not set", so
  the setting is still asked for);
* Prisme.ai's ``repositories`` (git credentials).

Code (``.js``) is stored as written: modyard cannot reliably edit it, and the code formats
(Appmixer ``auth.js``) declare fields the user fills in at connect time, not values.
"""

from __future__ import annotations

import io
import json
import posixpath
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from modyard.common.json_pointer import json_pointer, tokens
from modyard.modules.formats import safe_yaml
from modyard.modules.manifest import ConfigField, Manifest, ModuleFormat

#: Keys under which a field or schema keeps its default value.
_DEFAULT_KEYS = ("default", "defaultValue")
_JSON_SUFFIXES = (".json", ".schema")
_YAML_SUFFIXES = (".yml", ".yaml")


class _Delete:
    """The value is removed with its key."""


DELETE = _Delete()


@dataclass(frozen=True)
class SecretDefault:
    """A secret's value found in an uploaded file: ``pointer`` (RFC 6901) into ``file``."""

    file: str
    pointer: str
    #: ``DELETE`` or the value written in its place.
    replacement: Any = DELETE


def declares_secret(node: Mapping[str, Any]) -> bool:
    """Whether a field, input or schema object says that its value is a secret."""
    return (
        node.get("secret") is True
        or node.get("type") == "password"
        or node.get("ui:widget") == "password"
        or node.get("writeOnly") is True
    )


def find_in_document(
    document: Any, file: str, manifest: Manifest, *, top_level: bool
) -> list[SecretDefault]:
    """Every secret's default in one parsed document of the upload."""
    found = list(_self_declared(document, file, ""))
    if top_level and isinstance(document, dict):
        found += _named(document, file, manifest)
    # A value may be reached by two rules; each pointer is removed once.
    unique = {item.pointer: item for item in found}
    return _drop_nested(list(unique.values()))


def _self_declared(node: Any, file: str, at: str) -> Iterator[SecretDefault]:
    if isinstance(node, dict):
        if declares_secret(node):
            for key in _DEFAULT_KEYS:
                if node.get(key) is not None:
                    yield SecretDefault(file, at + json_pointer(key))
        for key, value in node.items():
            yield from _self_declared(value, file, at + json_pointer(str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _self_declared(value, file, at + json_pointer(index))


def _secret_names(fields: list[ConfigField]) -> set[str]:
    return {field.name for field in fields if field.secret}


def _named(document: dict[str, Any], file: str, manifest: Manifest) -> Iterator[SecretDefault]:
    """Values the manifest marks secret by their name (the document does not say so itself)."""
    if manifest.container is not None and "env" in document and "image" in document:
        secrets = {variable.name for variable in manifest.container.env if variable.secret}
        yield from _env(document["env"], file, secrets)
    config = document.get("config")
    names = _secret_names(manifest.config.fields)
    if manifest.format == ModuleFormat.native and isinstance(config, dict):
        schema = config.get("schema")
        properties = schema.get("properties") if isinstance(schema, dict) else None
        for name in names & set(properties if isinstance(properties, dict) else ()):
            prop = properties[name]  # type: ignore[index]
            if isinstance(prop, dict) and prop.get("default") is not None:
                yield SecretDefault(
                    file, json_pointer("config", "schema", "properties", name, "default")
                )
    if manifest.format == ModuleFormat.prismeai:
        if isinstance(config, dict) and isinstance(config.get("value"), dict):
            for name in names & set(config["value"]):
                yield SecretDefault(file, json_pointer("config", "value", name))
        if "repositories" in document:
            yield SecretDefault(file, json_pointer("repositories"))
    settings = document.get("settings")
    if (
        manifest.format == ModuleFormat.appcell
        and posixpath.basename(file).casefold() == "settings.json"
        and isinstance(settings, dict)
    ):
        for name in names & set(settings):
            if settings[name] not in ("", None):
                yield SecretDefault(file, json_pointer("settings", name), replacement="")


def _env(env: Any, file: str, secrets: set[str]) -> Iterator[SecretDefault]:
    if isinstance(env, dict):
        for name, value in env.items():
            if name not in secrets:
                continue
            if isinstance(value, dict):
                if value.get("default") is not None:
                    yield SecretDefault(file, json_pointer("env", name, "default"))
            elif value is not None:
                # The mapping form's value *is* the default: the variable stays, without it.
                yield SecretDefault(file, json_pointer("env", name), replacement=None)
    elif isinstance(env, list):
        for index, entry in enumerate(env):
            if (
                isinstance(entry, dict)
                and entry.get("name") in secrets
                and entry.get("default") is not None
            ):
                yield SecretDefault(file, json_pointer("env", index, "default"))


def _drop_nested(found: list[SecretDefault]) -> list[SecretDefault]:
    """Leave out removals inside a value another removal takes away as a whole."""
    pointers = {item.pointer for item in found if item.replacement is DELETE}
    return [
        item
        for item in found
        if not any(item.pointer.startswith(other + "/") for other in pointers)
    ]


def without(document: Any, found: list[SecretDefault]) -> Any:
    """``document`` (changed in place) with every value of ``found`` removed or replaced."""
    for item in _drop_nested(found):
        keys = tokens(item.pointer)
        parent = document
        for token in keys[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last: Any = int(keys[-1]) if isinstance(parent, list) else keys[-1]
        if item.replacement is DELETE:
            del parent[last]
        else:
            parent[last] = item.replacement
    return document


def _documents(files: Mapping[str, bytes]) -> Iterator[tuple[str, Any, bool]]:
    """Each JSON or YAML file of the upload, parsed; files that do not parse are skipped (an
    adapter that needed them has refused the upload already)."""
    for path, data in files.items():
        lowered = path.casefold()
        if not lowered.endswith(_JSON_SUFFIXES + _YAML_SUFFIXES):
            continue
        try:
            text = data.decode("utf-8")
            is_json = lowered.endswith(_JSON_SUFFIXES)
            document = json.loads(text) if is_json else safe_yaml.load(text)
        except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError, RecursionError):
            continue
        yield path, document, is_json


def serialise_json(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def strip_files(
    files: Mapping[str, bytes], manifest: Manifest
) -> tuple[dict[str, bytes], list[SecretDefault]]:
    """The files whose content changes (path → new bytes) and what was taken out of them."""
    changed: dict[str, bytes] = {}
    removed: list[SecretDefault] = []
    for path, document, is_json in _documents(files):
        found = find_in_document(document, path, manifest, top_level="/" not in path)
        if not found:
            continue
        kept = without(document, found)
        changed[path] = (
            serialise_json(kept)
            if is_json
            else yaml.safe_dump(kept, sort_keys=False, allow_unicode=True).encode("utf-8")
        )
        removed += found
    return changed, removed


def rewrite_zip(data: bytes, changed: Mapping[str, bytes]) -> bytes:
    """``data`` (an archive ``read_archive`` accepted) with the files of ``changed`` replaced.

    Paths in ``changed`` are those the adapters saw: cleaned of ``./`` and of a single top
    folder. Entries keep their order, names, timestamps, modes and compression, so the same upload
    always gives the same bytes (and a retried publish stays idempotent).
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    entries = source.infolist()
    cleaned = {
        entry.filename: "/".join(
            p for p in PurePosixPath(entry.filename).parts if p not in (".", "")
        )
        for entry in entries
    }
    names = [cleaned[entry.filename] for entry in entries if not entry.is_dir()]
    tops = {name.split("/", 1)[0] for name in names}
    prefix = next(iter(tops)) + "/" if len(tops) == 1 and all("/" in n for n in names) else ""
    output = io.BytesIO()
    written = set()
    with source, zipfile.ZipFile(output, "w") as target:
        for entry in entries:
            logical = cleaned[entry.filename].removeprefix(prefix)
            content = b""
            if not entry.is_dir():
                content = changed.get(logical) or source.read(entry)
                written.update({logical} & set(changed))
            info = zipfile.ZipInfo(entry.filename, date_time=entry.date_time)
            info.compress_type = entry.compress_type
            info.external_attr = entry.external_attr
            info.create_system = entry.create_system
            target.writestr(info, content)
    missing = set(changed) - written
    if missing:  # pragma: no cover - read_archive and this walk name entries the same way
        raise RuntimeError(f"could not place {sorted(missing)} back into the archive")
    return output.getvalue()


__all__ = [
    "DELETE",
    "SecretDefault",
    "declares_secret",
    "find_in_document",
    "rewrite_zip",
    "serialise_json",
    "strip_files",
    "without",
]
