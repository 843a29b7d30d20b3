"""Unloading idle rooms (a background task): on a large tree people open many files over
a long session; a room nobody is connected to, with nothing unsaved and nothing pending,
for two looks in a row (`Limits.unload_idle_after` apart) leaves memory. Its log holds
everything, so opening it again replays the same CRDT history. The session room, and
notebooks while running code is allowed (a kernel may write outputs), stay loaded, and so
does a notebook whose cells were deleted or moved less than `Limits.graves_hold` ago (its
graves, kept in memory, bring back an offline participant's edit of those cells).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .disk import DiskSync
from .registry import RoomRegistry
from .rooms import Room
from .store import Store


def _idle(room: Room, disk: DiskSync, keep_notebooks: bool, graves_hold: float) -> bool:
    if room.connections or room.path is None or (keep_notebooks and room.kind == "notebook"):
        return False
    graves = room.cell_deletes.graves if room.cell_deletes is not None else None
    if graves and time.monotonic() - graves.newest < graves_hold:
        return False
    state = disk.files.get(room.path)
    if state is None:
        return False
    busy = state.task is not None and not state.task.done()
    return not (state.dirty or busy or state.timer is not None or state.linked or state.error)


async def unload_idle(
    registry: RoomRegistry,
    disk: DiskSync,
    store: Store,
    every: float,
    keep_notebooks: Callable[[], bool],
    live: Callable[[], bool],
    graves_hold: float,
) -> None:
    """Unload rooms idle for two looks in a row, forever, while the session is live (run
    as a task; an ending session reads its rooms)."""
    idle_before: set[str] = set()
    while True:
        await asyncio.sleep(every)
        if not live():
            idle_before = set()
            continue
        keep = keep_notebooks()
        idle_now = {name for name, room in registry.rooms.items() if _idle(room, disk, keep, graves_hold)}
        due = idle_now & idle_before
        if due:
            await store.flush()  # everything they hold is durable before they go
            for name in due:
                room = registry.rooms.get(name)
                if room is not None and live() and _idle(room, disk, keep, graves_hold):
                    registry.unload(name)
        idle_before = idle_now - due
