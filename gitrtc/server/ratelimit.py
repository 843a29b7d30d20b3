"""Per-connection message rate limit: a flood is slowed down, never dropped.

A token bucket; when it is empty the connection's reader waits before reading on, so
TCP backpressure reaches the flooding client while everyone else is served. Updates
are never discarded (a dropped edit is a bug).
"""

from __future__ import annotations

import asyncio
import time

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
        self.stamp = time.monotonic()
        self.waited = 0.0
        self.count = 0

    async def take(self) -> None:
        """Take one message's token, waiting while the bucket is empty."""
        self.count += 1
        if self.count % FAIR_SHARE == 0:
            await asyncio.sleep(0)
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        if self.tokens < 0:
            delay = -self.tokens / self.rate
            self.waited += delay
            await asyncio.sleep(delay)
