"""An edit that reaches a notebook cell after someone deleted (or moved) it is not lost.

Yjs integrates an item whose parent is deleted as deleted: a client that edited a cell
while offline (a browser, the y-websocket client, pycrdt) and reconnects after someone
else deleted that cell loses the edit, silently; so do keystrokes in flight while a cell
is deleted or moved live. The server cannot read such an edit from the document (the
deleted cell's content is collected), so a notebook room keeps a *grave* for each cell a
client's update deleted (`celldeletes.DeleteWatch.after`): the document as it was before
(an update), the id ranges of the cell's items, who deleted it, where it stood.

Each later client update is looked at (only while graves exist: a decode, or for a
keystroke its origin and right neighbour): an item placed next to a dead cell's content or
inside the cell is a late edit (a cell inserted next to the dead cell is not). Its grave's
copy of the document takes the update, so the cell is read with the edit; then, as a
server edit:

- the cell is gone: it is put back at its place with the edit, and a `deleted` conflict
  is recorded (`mine`: the source, `theirs`: None, `from`: "a delete by NAME"), as
  `celldeletes` does the other way round: the deleter confirms with "keep theirs";
- a cell with its id is there (the moved copy, or the cell put back by an earlier late
  edit): the change is carried into it (`cellcarry.carry_three_way`), conflicts recorded.

The grave's own copy grows by each late edit, so further keystrokes in flight merge in
the same way. Graves are bounded (`MAX_GRAVES`, `MAX_GRAVE_BYTES`: the oldest go first)
and live in memory: a notebook room holding graves younger than `Limits.graves_hold` is
not unloaded while idle (`idle.py`), so a client that comes back hours later is still
covered; after a restart of the server an edit to a cell deleted before it is lost as in
Yjs. `rtc join` checks this on its own side (`celldeletes.watch_remote_deletes`),
so its connections are not looked at here (the cell would come back twice).
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map

from . import yupdate
from .cellcarry import carry_three_way
from .documents.notebook import CONFLICT_PREFIX
from .documents.notebook_ops import ycell_from_dict
from .errors import ProtocolError, RejectedEditError
from .origins import ServerEdit

__all__ = ["MAX_GRAVES", "MAX_GRAVE_BYTES", "Grave", "Graves", "place_after"]

Ranges = dict[int, list[tuple[int, int]]]  # client → [(clock, length)]
#: How the server edit is made: `Room.edit(fn, origin)`.
Edit = Callable[[Callable[[], None], object], object]

#: Graves kept per notebook room, and the bytes of their documents in all.
MAX_GRAVES = 64
MAX_GRAVE_BYTES = 128 * 1024 * 1024


@dataclass(slots=True)
class Grave:
    """A cell a client's update deleted: enough to bring an edit of it back."""

    cell: str  # the cell's id
    before: list[Any]  # the ids of the cells that preceded it (where it goes back)
    state: bytes  # the document before the delete, then with every late edit of the cell
    dead: Ranges  # the id ranges of the cell's items, and of late edits into it
    itself: Ranges  # the cell's own item (a neighbour of the cells around it, not its content)
    deleter: str  # who deleted it
    moved: bool  # the delete was a move (a copy with its id inserted elsewhere)


class Graves:
    """One notebook room's graves."""

    def __init__(self) -> None:
        self._graves: deque[Grave] = deque()
        #: When a grave was last made or took a late edit (`time.monotonic`).
        self.newest = 0.0

    def __bool__(self) -> bool:
        return bool(self._graves)

    def bury(self, grave: Grave) -> None:
        """Keep `grave`; drop the oldest beyond the bounds."""
        self._graves.append(grave)
        self.newest = time.monotonic()
        while len(self._graves) > MAX_GRAVES or (
            len(self._graves) > 1
            and sum(len(s) for s in {id(g.state): g.state for g in self._graves}.values()) > MAX_GRAVE_BYTES
        ):
            self._graves.popleft()

    def hits(self, update: bytes) -> list[Grave]:
        """The graves whose cell a client's (checked) update edits: items next to or in a
        dead cell's items. Their ranges take the update's items, so the next keystroke
        after them is recognised too."""
        structs = _refs(update)
        if not structs:
            return []
        found: list[Grave] = []
        for grave in self._graves:
            added = True
            hit = False
            while added:  # an item next to a late item of this update is late too
                added = False
                for client, clock, length, near, parent in structs:
                    if _inside(grave.dead, client, clock):
                        continue
                    # next to the dead cell's content, or inside the cell: not a cell next to it
                    if (parent is not None and _inside(grave.dead, *parent)) or any(
                        ref is not None and _inside(grave.dead, *ref) and not _inside(grave.itself, *ref)
                        for ref in near
                    ):
                        _add(grave.dead, client, clock, length)
                        added = hit = True
            if hit:
                found.append(grave)
        if found:
            self.newest = time.monotonic()
        return found

    def bring_back(self, hits: list[Grave], update: bytes, doc: Doc[Any], edit: Edit) -> int:
        """After `update` was applied: put each hit cell back with its late edit, or carry the
        edit into the cell with its id, as one server edit. How many cells changed."""
        jobs: list[tuple[Grave, dict[str, Any], dict[str, Any]]] = []
        for grave in hits:
            scratch: Doc[Any] = Doc()
            scratch.apply_update(grave.state)
            before = _cell_value(scratch, grave.cell)
            scratch.apply_update(update)
            after = _cell_value(scratch, grave.cell)
            grave.state = scratch.get_update()
            if before is not None and after is not None and before != after:
                jobs.append((grave, before, after))
        if not jobs:
            return 0
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        def keep_edits() -> None:
            state = doc.get("state", type=Map)
            cells = doc.get("cells", type=Array)

            def flag(record: dict[str, Any]) -> None:
                state[f"{CONFLICT_PREFIX}{secrets.token_hex(6)}"] = {**record, "at": stamp}

            for grave, before, after in jobs:
                ycell = next((c for c in cells if isinstance(c, Map) and c.get("id") == grave.cell), None)
                what = "a move" if grave.moved else "a delete"
                if ycell is None:
                    cells.insert(place_after(cells, grave.before), ycell_from_dict(after, grave.cell))
                    source = str(after.get("source", ""))
                    flag(
                        {
                            "cell": grave.cell,
                            "kind": "deleted",
                            "mine": source,
                            "theirs": None,
                            "from": f"{what} by {grave.deleter}",
                        }
                    )
                else:
                    carry_three_way(ycell, before, after, flag, f"an edit made before {what} by {grave.deleter}")

        edit(keep_edits, ServerEdit())
        return len(jobs)


def _refs(
    update: bytes,
) -> list[tuple[int, int, int, tuple[yupdate.ID | None, yupdate.ID | None], yupdate.ID | None]]:
    """Each item of `update`: (client, clock, length, (origin, right), parent id)."""
    try:
        typed = yupdate.typed_characters(update)  # a keystroke: no full decode
    except (IndexError, UnicodeDecodeError):
        typed = None
    if typed is not None:
        client, clock, length, origin, right, _size = typed
        return [(client, clock, length, (origin, right), None)]
    try:
        decoded = yupdate.decode(update, 1 << 30)
    except (ProtocolError, RejectedEditError):
        return []  # the guard decided on it already
    return [
        (s.client, s.clock, s.length, (s.origin, s.right), s.parent if isinstance(s.parent, tuple) else None)
        for s in decoded.structs
    ]


def _add(ranges: Ranges, client: int, clock: int, length: int) -> None:
    spans = ranges.setdefault(client, [])
    if spans and spans[-1][0] + spans[-1][1] == clock:  # a typist's next keystroke: one range
        spans[-1] = (spans[-1][0], spans[-1][1] + length)
    else:
        spans.append((clock, length))


def _inside(ranges: Ranges, client: int, clock: int) -> bool:
    return any(start <= clock < start + length for start, length in ranges.get(client, ()))


def _cell_value(doc: Doc[Any], cid: str) -> dict[str, Any] | None:
    for ycell in doc.get("cells", type=Array):
        if isinstance(ycell, Map) and ycell.get("id") == cid:
            value = ycell.to_py()
            return value if isinstance(value, dict) else None
    return None


def place_after(cells: Array[Any], before: list[Any]) -> int:
    """Where a cell goes back: after the nearest cell that preceded it and is still here."""
    position = {ycell.get("id"): j for j, ycell in enumerate(cells) if isinstance(ycell, Map)}
    for cid in reversed(before):
        if cid in position:
            return position[cid] + 1
    return 0
