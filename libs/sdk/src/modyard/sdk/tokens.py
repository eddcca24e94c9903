"""Which bearer token the CLI sends."""

from __future__ import annotations

from modyard.common.settings import CommonSettings
from modyard.common.tokens import Role, mint_token


def operator_token(settings: CommonSettings) -> str:
    """``MODYARD_TOKEN`` when set; otherwise a short-lived operator token minted from
    ``MODYARD_JWT_SECRET`` (development setups, where the CLI holds the secret)."""
    if settings.token is not None:
        return settings.token.get_secret_value()
    return mint_token(settings, subject="modyard-cli", roles=[Role.operator], ttl_seconds=600)
