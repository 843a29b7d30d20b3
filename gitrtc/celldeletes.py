"""A notebook cell deleted by someone who had not seen another's edit of it stays, flagged.

Yjs deletes a cell with everything in it, so under plain CRDT semantics an offline
client's delete (sent when it reconnects) silently drops the edits others made to that
cell meanwhile, and a live delete drops the keystrokes in flight. Issue 17 asks instead
that delete against edit keep the edit and show a conflict the deleter can confirm.

How the deleter's knowledge is read: a Yjs or yrs client deleting a cell puts every item
of that cell it knows (the cell, its source's characters, metadata and outputs entries)
in its update's delete set. So when a client's update deletes cells, each cell that is
gone afterwards is deleted once more in a scratch copy of the document as it was before
the update: the copy's delete set is every live item of the cell on the server. Items not
covered by the client's delete set are edits the deleter never saw. Such a cell is put
back with all of them, at its place (a server edit), and a `deleted` conflict is recorded
in the doc's `state` map like the merge conflicts (`mine`: the document's source;
`theirs`: None, the deletion): "keep theirs" deletes it, "keep mine"/"both" keep it.

Outputs, execution counts and states are a kernel's writes, not a person's edit: items
there do not keep a deleted cell (a running cell can be deleted). A move (the cell
deleted and a copy with its id inserted, as JupyterLab moves) carries every field's
unseen edits into the copy, a kernel's included (`cellcarry.carry_moved`).

Every cell a client's update deletes (or moves) also leaves a grave on the server, so
that an edit of it arriving *after* the delete is kept too (`lateedits`).

Two moves of one cell at the same time (by two people, or one of them offline) leave two
copies with its id, which Yjs keeps both of: an invalid notebook, and one cell shown
twice. After a structural update the server makes them one (`merge_copies`): the first
copy in the notebook stays and takes what only the other has (`cellcarry.carry_moved`,
conflicts flagged), the others are deleted, leaving graves, so that keystrokes still on
their way into a dropped copy follow into the kept one.

Only updates that delete a cell (a level-1 item of the `cells` root, from the room's
`DocumentGuard` index) pay for this: a copy of the document, like the guard's own check
of structural updates.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycrdt import Array, Doc, Map

from . import yupdate
from .cellcarry import carry_moved
from .documents.notebook import CONFLICT_PREFIX
from .documents.notebook_ops import ycell_from_dict
from .errors import ProtocolError, RejectedEditError
from .lateedits import Grave, Graves, place_after
from .origins import MovedCopies, ServerEdit

if TYPE_CHECKING:
    from .client import RoomClient
    from .documents.notebook import NotebookCodec
    from .validation import DocumentGuard

__all__ = ["DeleteWatch", "Noted", "covered", "watch_remote_deletes"]

Ranges = dict[int, list[tuple[int, int]]]  # client → [(clock, length)], as in a delete set
#: How a put-back is made: `Room.edit(fn, origin)` on the server, a local transaction on a client.
Edit = Callable[[Callable[[], None], object], object]


@dataclass(frozen=True, slots=True)
class Noted:
    """What `DeleteWatch.before` keeps of the document before a cell-deleting update."""

    state: bytes  # the whole document, as an update
    ids: list[Any]  # the cells' ids, in order
    deletes: Ranges  # the update's delete set


class DeleteWatch:
    """One notebook room's check of the cell deletions its clients send."""

    def __init__(self, doc: Doc[Any], guard: DocumentGuard, graves: bool = True) -> None:
        self.doc = doc
        self.guard = guard
        #: The cells clients' updates deleted, for edits of them that arrive later (a
        #: server's: `lateedits`); None on a client's side.
        self.graves = Graves() if graves else None

    def before(self, update: bytes) -> Noted | None:
        """Before a client's (checked, structural) update is applied: if it deletes a
        cell, what `after` needs; None otherwise (nothing to do)."""
        try:
            deletes = yupdate.decode(update, 1 << 30).deletes
        except (ProtocolError, RejectedEditError):
            return None  # the guard decided on it already
        index = self.guard.index
        if not any(
            place.root == "cells" and place.level == 1
            for client, ranges in deletes.items()
            for clock, length in ranges
            for place in index.overlapping(client, clock, length)
        ):
            return None
        cells = self.doc.get("cells", type=Array)
        ids = _ids(cells)
        return Noted(self.doc.get_update(), ids, deletes)

    def late(self, update: bytes) -> list[Grave]:
        """Before a client's (checked) update is applied: the graves of cells it edits
        although they were deleted or moved (`lateedits`); [] for most updates."""
        graves = self.graves
        return graves.hits(update) if graves else []

    def bring_back(self, hits: list[Grave], update: bytes, edit: Edit) -> int:
        """After that update was applied: its edits of those cells kept (`lateedits`)."""
        graves = self.graves
        return graves.bring_back(hits, update, self.doc, edit) if graves is not None else 0

    def merge_copies(self, edit: Edit) -> int:
        """After a client's structural update: make one cell of each set of cells sharing
        an id (moves made at the same time), through `edit` (a room's `Room.edit`, which
        leaves graves for the copies dropped). How many copies were dropped."""
        cells = self.doc.get("cells", type=Array)
        ids = [cid for cid in _ids(cells) if cid is not None]
        if len(set(ids)) == len(ids):
            return 0
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        dropped = 0

        def merge() -> None:
            nonlocal dropped
            state = self.doc.get("state", type=Map)

            def flag(record: dict[str, Any]) -> None:
                state[f"{CONFLICT_PREFIX}{secrets.token_hex(6)}"] = {**record, "at": stamp}

            first: dict[Any, Map[Any]] = {}
            extra: list[int] = []
            for j, ycell in enumerate(cells):
                cid = ycell.get("id") if isinstance(ycell, Map) else None
                if cid is None:
                    continue
                if cid in first:
                    extra.append(j)
                else:
                    first[cid] = ycell
            for j in reversed(extra):
                copy = cells[j]
                kept = first[copy.get("id")]
                value, kept_value = copy.to_py() or {}, kept.to_py() or {}
                if value != kept_value:  # edits made into either copy: both kept
                    carry_moved(kept, kept_value, value, flag, "a move of this cell made at the same time")
                del cells[j]
                dropped += 1

        edit(merge, MovedCopies())
        return dropped

    def before_server_edit(self) -> Noted | None:
        """Before a server edit that may delete cells (a save on the owner's disk merged
        in): the document as it was, so that `after(..., keep=False)` leaves graves for
        the cells it deleted (an offline client's later edit of one comes back, flagged).
        None when this room keeps no graves."""
        if self.graves is None:
            return None
        cells = self.doc.get("cells", type=Array)
        ids = _ids(cells)
        return Noted(self.doc.get_update(), ids, {})

    def after(self, noted: Noted, who: str, edit: Edit, keep: bool = True) -> int:
        """After the update was applied: put back every deleted cell that held edits its
        deleter (`who`) had not seen, each with a `deleted` conflict; a cell it moved (a
        delete and a copy with the same id, as JupyterLab moves) gets those edits in its
        new place. Through `edit` (a room's `Room.edit`). How many cells were kept.

        `keep=False` (a server edit: nbdime's merge already decided on every cell it
        deleted) only leaves the graves: edits arriving later into those cells come back."""
        cells = self.doc.get("cells", type=Array)
        now = {ycell.get("id"): j for j, ycell in enumerate(cells) if isinstance(ycell, Map)}
        scratch: Doc[Any] = Doc()
        scratch.apply_update(noted.state)
        scells = scratch.get("cells", type=Array)
        before = scells.to_py() or []
        # cells gone, cells whose neighbours changed (moved: a copy inserted elsewhere) and
        # cells whose content changed (a moved copy lacks what its mover never saw)
        ids_now = _ids(cells)
        suspects = [
            (i, cid)
            for i, cid in enumerate(noted.ids)
            if isinstance(cid, str)
            and (
                cid not in now
                or _neighbours(noted.ids, i) != _neighbours(ids_now, now[cid])
                or cells[now[cid]].to_py() != before[i]
            )
        ]
        if not suspects:
            return 0
        cell_items: Ranges = {}  # the id ranges of the cells themselves (their Map items)
        for client, start, end, place in self.guard.index.items():
            if place.root == "cells" and place.level == 1:
                cell_items.setdefault(client, []).append((start, end - start))
        restore: list[tuple[int, str, dict[str, Any]]] = []
        carry: list[tuple[str, dict[str, Any]]] = []
        for i, cid in reversed(suspects):  # from the end: the indices before stay valid
            moved = cid in now
            # a kernel's writes are not a person's edits, but a moved cell carries them too
            run = {} if moved else _deleted_by(scratch, lambda i=i: _drop_run_state(scells[i]))
            live = _deleted_by(scratch, lambda i=i: scells.__delitem__(i))
            itself = _intersection(live, cell_items)
            if not itself or not covered(itself, noted.deletes):
                continue  # not deleted by the update (a cell whose id changed)
            # an edit arriving later into this cell's items is brought back (`lateedits`)
            dead = {c: run.get(c, []) + live.get(c, []) for c in {*run, *live}}
            if self.graves is not None:
                self.graves.bury(Grave(cid, list(noted.ids[:i]), noted.state, dead, itself, who, moved))
            if keep and not covered(live, noted.deletes):  # with items it did not know
                if moved:
                    carry.append((cid, before[i]))
                else:
                    restore.append((i, cid, before[i]))
        if not restore and not carry:
            return 0
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        def keep_edits() -> None:
            state = self.doc.get("state", type=Map)

            def flag(record: dict[str, Any]) -> None:
                state[f"{CONFLICT_PREFIX}{secrets.token_hex(6)}"] = {**record, "at": stamp}

            for i, cid, value in sorted(restore, key=lambda k: k[0]):
                cells.insert(place_after(cells, noted.ids[:i]), ycell_from_dict(value, cid))
                source = value.get("source", "")
                flag({"cell": cid, "kind": "deleted", "mine": source, "theirs": None, "from": f"a delete by {who}"})
            for cid, old in carry:
                moved = _by_id(cells, cid)
                if moved is not None:  # every field's unseen edits follow the move (or are flagged)
                    carry_moved(moved, moved.to_py() or {}, old, flag, f"a move by {who}")

        edit(keep_edits, ServerEdit())
        return len(restore) + len(carry)


#: Cell fields a kernel run writes: items there that a deleter had not seen are outputs
#: arriving, not someone's edit, and do not keep a deleted cell.
RUN_FIELDS = ("outputs", "execution_count", "execution_state")


def _ids(cells: Array[Any]) -> list[Any]:
    return [ycell.get("id") if isinstance(ycell, Map) else None for ycell in cells]


def _neighbours(ids: list[Any], i: int) -> tuple[Any, Any]:
    return (ids[i - 1] if i > 0 else None, ids[i + 1] if i + 1 < len(ids) else None)


def _drop_run_state(ycell: Any) -> None:
    if isinstance(ycell, Map):
        for key in RUN_FIELDS:
            if key in ycell:
                del ycell[key]


def _by_id(cells: Array[Any], cid: str) -> Map[Any] | None:
    for ycell in cells:
        if isinstance(ycell, Map) and ycell.get("id") == cid:
            return ycell
    return None


def watch_remote_deletes(client: RoomClient, codec: NotebookCodec, who: str) -> None:
    """The same check on a client's side (`rtc join`): a remote update that deletes a cell
    holding local edits the deleter had not seen (made while this client was offline)
    puts the cell back with them, flagged, as this client's edit (sent to the session)."""
    from .validation import DocumentGuard

    doc = client.doc
    guard = DocumentGuard(doc, codec, codec.path)
    guard.learn(doc.get_update())
    unplaced: list[bytes] = []  # placed later: an observer must not read the doc it observes
    doc.observe(lambda event: unplaced.append(event.update))
    watch = DeleteWatch(doc, guard, graves=False)

    def place() -> None:
        while unplaced:
            guard.learn(unplaced.pop(0))

    def local_edit(fn: Callable[[], None], _origin: object) -> None:
        with doc.transaction():
            fn()

    def around(update: bytes) -> Callable[[], None] | None:
        place()
        noted = watch.before(update)
        if noted is None:
            return None

        def after() -> None:
            place()
            watch.after(noted, who, local_edit)

        return after

    client.around_remote = around


def _deleted_by(doc: Doc[Any], fn: Any) -> Ranges:
    """The delete set of running `fn` in one transaction of `doc`."""
    captured: list[bytes] = []
    subscription = doc.observe(lambda event: captured.append(event.update))
    try:
        with doc.transaction():
            fn()
    finally:
        doc.unobserve(subscription)
    out: Ranges = {}
    for update in captured:
        for client, ranges in yupdate.decode(update, 1 << 30).deletes.items():
            out.setdefault(client, []).extend(ranges)
    return out


def covered(items: Ranges, by: Ranges) -> bool:
    """Whether every id range of `items` lies within the union of `by`'s ranges."""
    for client, ranges in items.items():
        spans = sorted(by.get(client, []))
        for clock, length in ranges:
            start, end = clock, clock + length
            for s, n in spans:
                if s > start:
                    break
                if s + n > start:
                    start = s + n
                if start >= end:
                    break
            if start < end:
                return False
    return True


def _intersection(a: Ranges, b: Ranges) -> Ranges:
    """The id ranges in both `a` and `b`."""
    out: Ranges = {}
    for client, ranges in a.items():
        for clock, length in ranges:
            for s, n in b.get(client, []):
                start, end = max(clock, s), min(clock + length, s + n)
                if start < end:
                    out.setdefault(client, []).append((start, end - start))
    return out
