"""A configuration's problems: each a JSON pointer into it and what to send instead."""

from __future__ import annotations

from collections.abc import Sequence

from modyard.common.errors import InvalidParam, ValidationFailed


class ConfigError(InvalidParam):
    """One problem of a configuration: a JSON pointer into it and what to send instead."""


class ConfigInvalid(ValidationFailed):
    """A configuration with problems; ``errors`` lists every one (a 422 problem response)."""

    slug = "invalid-configuration"
    title = "The configuration is not valid"

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        shown = ", ".join(error.pointer or "(the whole configuration)" for error in errors[:10])
        more = f" and {len(errors) - 10} more" if len(errors) > 10 else ""
        super().__init__(
            f"Fix the configuration fields named in 'errors' and retry: {shown}{more}.",
            errors=errors,
        )
        self.config_errors: list[ConfigError] = list(errors)

    def under(self, prefix: str) -> ConfigInvalid:
        """The same errors with pointers into a request body (``under("/config")``)."""
        return ConfigInvalid(
            [
                ConfigError(pointer=prefix + error.pointer, detail=error.detail)
                for error in self.config_errors
            ]
        )
