"""How long one ``js`` component call may take, as the runtime and the JavaScript runner agree.

The runtime gives up on a call it sent the runner after its own wait (and retries it, or answers
a webhook's caller ``504``); the runner must have answered before that, with the classified,
not retried failure of a script past its limit. Neither service sees the other's settings, so
each holds its own to this one figure in its settings validator: the runner's deadline of a
Slingr call stays at or under it, the runtime's waits for the runner at or over it, and no pair
of valid configurations lets the runtime give up first (docs/slingr.md, "Limits").
"""

from __future__ import annotations

#: The runner answers a Slingr call within this (its script limit, 30 s like Slingr's, and a
#: margin); the runtime waits at least this long for any ``js`` call.
JS_CALL_ANSWER_SECONDS: float = 38.0
