"""Verified tokens, remembered briefly: a billing system sends the same token with many requests,
and verifying a JWT costs more than the rest of the gateway's own work on a request.

A token is remembered for at most ``REMEMBER_SECONDS`` after it was verified. That stays within
the 30 s of leeway ``decode_token`` already grants on expiry, so no token is accepted that
``decode_token`` would refuse for longer than it would have anyway; tokens are stateless (there is
no revocation to miss).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from modyard.common.auth import Principal, TokenError, decode_token
from modyard.common.settings import CommonSettings

REMEMBER_SECONDS = 30.0
MAX_REMEMBERED = 10_000


class VerifiedTokens:
    def __init__(self, settings: CommonSettings) -> None:
        self._settings = settings
        self._known: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def principal(self, token: str) -> Principal:
        """The token's principal; raises :class:`TokenError` like ``decode_token``."""
        now = time.monotonic()
        known = self._known.get(token)
        if known is not None and known[0] > now:
            return known[1]
        principal = decode_token(self._settings, token)
        self._known[token] = (now + REMEMBER_SECONDS, principal)
        self._known.move_to_end(token)
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)
        return principal


__all__ = ["TokenError", "VerifiedTokens"]
