"""API models of automations."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AutomationIn(BaseModel):
    """Prisme.ai's automation document (unknown keys are kept out, not refused)."""

    model_config = ConfigDict(extra="ignore")

    name: str | dict[str, str] | None = Field(
        default=None, description="Text, or Prisme.ai's localized {fr: …, en: …}"
    )
    description: str | dict[str, str] | None = None
    private: bool = False
    disabled: bool = Field(
        default=False, description="Kept but never run by any trigger, endpoint or call"
    )
    validateArguments: bool = Field(
        default=False, description="Check calls and triggers against the arguments' schemas"
    )
    arguments: dict[str, Any] = Field(default_factory=dict)
    when: dict[str, Any] = Field(default_factory=dict)
    do: list[Any] = Field(description="The instructions (an empty list is fine)")
    output: Any = None


class AutomationOut(BaseModel):
    slug: str
    name: str
    description: str | None
    private: bool
    disabled: bool = False
    validateArguments: bool = False
    arguments: dict[str, Any]
    when: dict[str, Any]
    do: list[Any]
    output: Any


class AutomationPage(BaseModel):
    items: list[AutomationOut]


class RunIn(_Body):
    """A direct run: ``payload`` is also checked against the automation's arguments."""

    payload: dict[str, Any] = Field(default_factory=dict)
    body: Any = None


class RunOut(BaseModel):
    automation: str
    app_instance: str | None = Field(description="Full slug of the instance it ran in")
    output: Any
    emitted: list[dict[str, Any]] = Field(description="Events it emitted (full names)")
    duration_ms: float


class ConfigIn(_Body):
    #: Prisme.ai's ``config.schema``: field name → JSON Schema (``secret: true`` for secrets).
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    value: dict[str, Any] = Field(default_factory=dict)


class SettingsIn(_Body):
    """What a publish carries besides automations: label, description, photo, config."""

    label: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=10_000)
    photo: str | None = Field(default=None, max_length=2048)
    config: ConfigIn = Field(default_factory=ConfigIn)


class SettingsOut(BaseModel):
    workspace: str
    label: str | None
    description: str | None
    photo: str | None
    config: dict[str, Any] = Field(description="schema, and value with secrets masked")
    app_name: str | None
    published_version: str | None


class SourceIn(BaseModel):
    """A Prisme.ai workspace document ("Edit source code"): other keys are ignored."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    description: Any = None
    photo: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    automations: dict[str, Any] = Field(default_factory=dict)


class SourceOut(BaseModel):
    workspace: str
    automations: list[str]
