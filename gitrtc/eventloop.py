"""The event loop the CLI runs on: uvloop (libuv's loop, as node's) where it is installed.

At a keystroke's pace every event finds the CPU's caches cold, and asyncio's loop runs
in Python: its select, its handles and its transports were a third of the server's
Python per keystroke (W2 at N = 1). uvloop runs that machinery in C, and aiohttp
supports it. Without it (Windows, or not installed) asyncio's own loop serves the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")

uvloop: ModuleType | None
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency where it is available
    uvloop = None


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A function making the loop `run` uses."""
    return uvloop.new_event_loop if uvloop is not None else asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop of `loop_factory`."""
    if uvloop is not None:
        result: T = uvloop.run(main)
        return result
    return asyncio.run(main)
