"""Per-connection message rate limit: a flood is slowed down, never dropped.

A token bucket; when it is empty the connection's reader waits before reading on, so
TCP backpressure reaches the flooding client while everyone else is served. Updates
are never discarded (a dropped edit is a bug).
"""

from __future__ import annotations

import asyncio
from time import monotonic

#: A reader yields to the other connections after this many messages in a row, so one
#: busy connection cannot starve the rest between its rate-limit waits.
FAIR_SHARE = 32


class RateLimit:
    """A token bucket of `burst` messages refilled at `rate` per second."""

    def __init__(self, rate: float, burst: float) -> None:
        """`rate` and `burst` come from the session's `Limits`."""
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = monotonic()
        self.waited = 0.0
        self.count = 0

    def spend(self) -> float | None:
        """Take one message's token; None if the reader may go on at once, else the seconds
        to wait first (0: yield to the other connections, `FAIR_SHARE`).

        Synchronous, so the read loop pays no coroutine per message (it awaits only when
        this returns a delay)."""
        self.count += 1
        now = monotonic()
        tokens = self.tokens + (now - self.stamp) * self.rate - 1
        burst_left = self.burst - 1
        self.tokens = tokens if tokens < burst_left else burst_left
        self.stamp = now
        if self.tokens < 0:
            delay = -self.tokens / self.rate
            self.waited += delay
            return delay
        return 0.0 if self.count % FAIR_SHARE == 0 else None

    async def take(self) -> None:
        """Take one message's token, waiting while the bucket is empty."""
        delay = self.spend()
        if delay is not None:
            await asyncio.sleep(delay)
