"""API models of apps and app instances."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_name: str = Field(
        min_length=1, max_length=128, description="Fixed by the first publish, for ever"
    )


class PublishOut(BaseModel):
    workspace: str
    app: str = Field(description="The registry module name")
    version: str
    created: bool
    notified_instances: int = Field(description="Instances sent apps.published")


class UnpublishOut(BaseModel):
    workspace: str
    notified_instances: int = Field(description="Instances sent apps.deleted")


class PublishedApp(BaseModel):
    app: str
    workspace: str
    version: str | None
    label: str | None
    description: str | None
    photo: str | None


class PublishedAppPage(BaseModel):
    items: list[PublishedApp]


class InstanceAutomation(BaseModel):
    slug: str
    private: bool
    disabled: bool = Field(default=False, description="disabled: true: never run")
    endpoint: str | None = Field(description="Full endpoint name, e.g. functions.execute")
    events: list[str] = Field(description="Full names of the events it listens to")


class Problem(BaseModel):
    pointer: str = Field(description="JSON pointer into the automation")
    detail: str


class UnusableAutomation(BaseModel):
    slug: str
    problems: list[Problem]


class AppInstanceOut(BaseModel):
    slug: str = Field(description="Full slug: nlu.french for french inside nlu")
    app: str
    version: str
    pinned: bool
    parent: str | None
    config: dict[str, Any] = Field(description="Effective config, secrets masked")
    automations: list[InstanceAutomation]
    unusable: list[UnusableAutomation] = Field(
        default_factory=list,
        description="Automations of the app version this runtime cannot run, and why",
    )


class AppInstancePage(BaseModel):
    items: list[AppInstanceOut]
