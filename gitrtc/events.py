"""The owner's event log: the few lines the panel and `rtc status` show."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator

log = logging.getLogger("gitrtc.session")


class EventLog:
    """Recent things the owner should see (bounded; the panel shows the latest)."""

    def __init__(self, keep: int = 50) -> None:
        self.lines: deque[str] = deque(maxlen=keep)

    def __call__(self, message: str) -> None:
        """Record `message` (also logged)."""
        log.info("%s", message)
        self.lines.append(f"{time.strftime('%H:%M:%S')}  {message}")

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)
