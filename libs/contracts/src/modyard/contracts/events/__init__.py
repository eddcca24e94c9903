"""Event types (``modyard.<service>.<entity>.<verb>``) and the models of their ``data``, one module
per producing service. :func:`payload` is what a producer puts in ``data``; :func:`parse` is how a
consumer reads it back."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["EventData", "parse", "payload"]


class EventData(BaseModel):
    """The ``data`` of one event type. Unknown fields are ignored, so a producer may add one
    before its consumers read it (a rename or a removal is what the models catch)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Data = TypeVar("Data", bound=EventData)


def payload(data: EventData) -> dict[str, Any]:
    """``data`` as JSON, without the optional fields the producer left unset (an upgrade that is
    not breaking carries no ``reason``), so the wire shape is what the producer chose."""
    return data.model_dump(mode="json", exclude_unset=True)


def parse(model: type[Data], data: Any) -> Data | None:
    """``data`` read as ``model``; ``None`` when it does not fit (an event of another shape on a
    shared pattern, or one written by an older producer): the consumer skips it."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return None
