"""Per-connection message rate limit: a flood is slowed down, never dropped.

A token bucket; when it is empty the connection's reader waits before reading on, so
TCP backpressure reaches the flooding client while everyone else is served. Updates
are never discarded (a dropped edit is a bug).
"""

from __future__ import annotations

import asyncio
import time

#: Sustained messages per second per connection (typing is ~10/s, a busy kernel ~100/s,
#: a program replaying a whole editing history a few 10,000/s).
RATE = 50_000.0
#: Messages a connection may send at once before it is slowed (a large paste, a resync).
BURST = 100_000.0
#: Presence (awareness) messages per second per connection, and at once: a cursor moving
#: as fast as one types, and the renewal every 15 s. Every one is relayed to the whole room.
AWARENESS_RATE = 30.0
AWARENESS_BURST = 120.0
#: A reader yields to the other connections after this many messages in a row, so one
#: busy connection cannot starve the rest between its rate-limit waits.
FAIR_SHARE = 32


class RateLimit:
    """A token bucket of `burst` messages refilled at `rate` per second."""

    def __init__(self, rate: float = RATE, burst: float = BURST) -> None:
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
