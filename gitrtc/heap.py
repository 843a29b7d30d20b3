"""Short garbage-collector pauses for a server holding many long-lived objects.

CPython's full (generation 2) collection walks every tracked object. A server with
hundreds of rooms holds a quarter of a million of them for as long as it serves (the
rooms' documents, connections, awareness states), and each full collection stalled
every room for 110–230 ms on a quiet machine (73–121 ms of CPU): the p99 of W3 at
400 rooms × 5 clients (`benchmarks/README.md`).

`steady` freezes (`gc.freeze`) whatever survives a full collection: frozen objects are
in the permanent generation, which later collections skip, so a full collection only
walks what became long-lived since the last one. A garbage cycle among frozen objects
is not found by those collections, so every `sweep_every` seconds everything is
unfrozen and collected once (one long pause, then frozen again): memory a cycle holds
is reclaimed late, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from typing import Any

#: The oldest generation: a collection of it is a full one.
OLDEST = len(gc.get_count()) - 1


def freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """(gc callback) After a full collection, freeze its survivors."""
    if phase == "stop" and info["generation"] == OLDEST:
        gc.freeze()


def sweep() -> int:
    """Unfreeze everything and run one full collection (its survivors are frozen again
    while `steady` is in force); how many unreachable objects it found."""
    gc.unfreeze()
    return gc.collect()


@contextlib.contextmanager
def steady(sweep_every: float) -> Iterator[None]:
    """While inside (on a running loop): freeze each full collection's survivors, and
    sweep every `sweep_every` seconds. On the way out everything is unfrozen again."""
    loop = asyncio.get_running_loop()
    timer: asyncio.TimerHandle | None = None

    def periodic() -> None:
        nonlocal timer
        sweep()
        timer = loop.call_later(sweep_every, periodic)

    gc.callbacks.append(freeze_survivors)
    timer = loop.call_later(sweep_every, periodic)
    try:
        yield
    finally:
        timer.cancel()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(freeze_survivors)
        gc.unfreeze()
