"""Incremental rendering of a notebook document: write-back pays for what changed.

A kernel flooding one cell must not make every write-back of the notebook cost the whole
notebook (a 2 MB notebook: ~30 ms of `file_value` on the event loop, then ~100 ms of
checking and formatting in a thread that holds the GIL the loop needs). `NotebookRender`
is the seam between a notebook's document and its file bytes for write-back
(`validation.DocumentGuard.render_later`):

- it watches the document's `cells`, `meta` and each cell, and notes which cells changed
  (by cell id; inside a cell, which outputs: an output appended leaves the others alone);
  texts (a cell's source) are not watched but compared at each snapshot, so typing costs
  the hot path nothing;
- `snapshot` (on the event loop) builds the notebook value `NotebookCodec.file_value`
  builds, reading only the changed cells (and outputs) from the document and giving the
  very same Python objects as last time for the rest;
- `dump` (any thread) formats it with `jsonformat.dumps_like_bytes` and a `jsonformat.Memo`
  of the previous call, so unchanged cells and outputs are not formatted (nor encoded, nor
  copied level by level) again: the file's bytes are one join of cached pieces;
- `problem` checks it as the full check does, cell by cell and, in a code cell, output by
  output: a cell checked once is not checked again, and a changed code cell is checked
  without its outputs, then with each output it did not have before (an image appended
  to a cell of ten images costs one image's check, not eleven: the cost of a write-back
  in a flood grew with the cell); only a failure runs the full check (for its message).

The bytes and the verdict are those of the full render, always (the property test in
`tests/test_notebookcache.py` holds them equal over random edit sequences on the corpus).
When in doubt (a cell that is not a map, ids missing or repeated) a snapshot is the full
`file_value`, uncached.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pycrdt
from pycrdt._base import BaseType  # what `Map.to_py` converts (not exported by pycrdt)

from .jsonformat import Memo, dumps_like, dumps_like_bytes
from .notebook import NotebookCodec, _version

__all__ = ["NotebookRender", "RenderStats", "Snapshot"]

#: Depths (as `jsonformat` counts them) memoized: a cell, and an output of a cell.
_CELL_DEPTH, _OUTPUT_DEPTH = 3, 5
_ALL = 1 << 62  # `_Dirty.since` for "every output"


#: A cell's own verdict: the cell value, the top it was checked with, whether it passed,
#: and its outputs found fine.
_Checked = tuple[dict[str, Any], dict[str, Any], bool, list[Any]]


@dataclass(slots=True)
class _Dirty:
    """What changed in one cell since its last snapshot: some of its own fields (always
    re-read), and the outputs from index `since` on plus those in `outputs`."""

    since: int = _ALL
    outputs: set[int] = field(default_factory=set)

    def output_clean(self, index: int) -> bool:
        return index < self.since and index not in self.outputs


@dataclass(slots=True)
class _Cell:
    """A cell's last value as the file has it, its outputs as read and as written, its
    texts as read (compared again at each snapshot: typing is never observed) and what
    watches the rest of it."""

    value: dict[str, Any]
    raw_outputs: list[Any] | None
    file_outputs: list[Any] | None
    texts: list[tuple[pycrdt.Text, str]]
    watches: list[tuple[Any, Any]]


@dataclass(slots=True)
class RenderStats:
    """What the renders since the start cost (what the tests count)."""

    #: Cells read from the document again (a full render reads every cell).
    cells_read: int = 0
    #: Outputs read from the document again.
    outputs_read: int = 0
    #: Cells checked (`problem`) again.
    cells_checked: int = 0
    #: Outputs checked (`problem`) again: those of a changed cell that are new objects.
    outputs_checked: int = 0
    #: Snapshots that fell back to the full `file_value`.
    full: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The notebook value at one moment (`NotebookCodec.file_value`'s), and how to write it."""

    value: dict[str, Any]
    reference: object
    #: The value without its cells (shared by snapshots until `meta` changes); None when
    #: the snapshot is the full, uncached `file_value`.
    top: dict[str, Any] | None


class NotebookRender:
    """A notebook document's file value and bytes, kept up to date cell by cell."""

    def __init__(self, doc: pycrdt.Doc[Any], codec: NotebookCodec) -> None:
        self.doc = doc
        self.codec = codec
        self.stats = RenderStats()
        self._cells: pycrdt.Array[Any] = doc.get("cells", type=pycrdt.Array)
        self._meta: pycrdt.Map[Any] = doc.get("meta", type=pycrdt.Map)
        self._reference: object = None
        self._ids_allowed = False
        self._top: dict[str, Any] | None = None
        self._order: list[str] | None = None
        self._entries: dict[str, _Cell] = {}
        self._dirty: dict[str, _Dirty] = {}
        self._lock = threading.Lock()  # the memo and the checks' cache: one render at a time
        self._memo: Memo | None = None
        self._memo_reference: object = None
        # id(cell value) → (cell value, top, verdict, its outputs found fine): a cell's own
        # check, by identity
        self._checked: dict[int, _Checked] = {}
        self._top_checked: tuple[dict[str, Any], bool] | None = None
        # id(output) → output, for the outputs of code cells found fine (by identity: an
        # output unchanged since the last snapshot is the same object)
        self._fine_outputs: dict[int, Any] = {}
        # Watched: the cells list (shallow: cells added, removed, moved), `meta`, and per
        # cell its own keys (shallow), its outputs and other maps or lists (deep). Never
        # a text: pycrdt makes an event of every keystroke for a text's watchers, which
        # cost the hot path 0.1-0.3 ms per update; texts are compared at `snapshot`.
        self._watches: list[tuple[Any, Any]] = [
            (self._cells, self._cells.observe(self._on_cells)),
            (self._meta, self._meta.observe_deep(self._on_meta)),
        ]

    def close(self) -> None:
        """Stop watching the document."""
        for entry in self._entries.values():
            _unwatch(entry.watches)
        self._entries.clear()
        _unwatch(self._watches)

    # --- the document's changes (inside its transactions: only note them) -------------

    def _on_meta(self, _events: list[Any]) -> None:
        self._top = None

    def _on_cells(self, event: Any) -> None:
        """Cells added, removed or moved: the order is read again, new cells afresh."""
        self._order = None
        for op in event.delta:
            for cell in op.get("insert") or ():
                inserted = self._dirty_cell(cell.get("id") if isinstance(cell, pycrdt.Map) else None)
                if inserted is not None:  # a new map (a moved cell too): nothing of it is known
                    inserted.since = 0

    def _on_cell(self, cid: str, event: Any) -> None:
        """Keys of cell `cid` set or removed."""
        keys = event.keys
        dirty = self._dirty_cell(cid)
        if dirty is not None and ("outputs" in keys or "id" in keys):
            dirty.since = 0
        if "id" in keys:
            self._order = None
            renamed = self._dirty_cell(keys["id"].get("newValue"))  # whatever had that id before
            if renamed is not None:
                renamed.since = 0

    def _on_outputs(self, cid: str, events: list[Any]) -> None:
        """Outputs of cell `cid` changed: from the first inserted or deleted one on, and
        each one changed inside."""
        dirty = self._dirty_cell(cid)
        if dirty is None:
            return
        for event in events:
            path = event.path
            if not path:  # the list itself: unchanged up to its first insert or delete
                since = 0
                for op in getattr(event, "delta", None) or () if isinstance(event, pycrdt.ArrayEvent) else ():
                    if "retain" not in op:
                        break
                    since += op["retain"]
                dirty.since = min(dirty.since, since)
            elif isinstance(path[0], int):
                dirty.outputs.add(path[0])
            else:
                dirty.since = 0

    def _on_field(self, cid: str, _events: list[Any]) -> None:
        """Something inside a map or list of cell `cid` (its metadata) changed."""
        self._dirty_cell(cid)

    def _dirty_cell(self, cid: Any) -> _Dirty | None:
        if not isinstance(cid, str):
            self._order = None  # a cell without a usable id: the next snapshot is full
            return None
        dirty = self._dirty.get(cid)
        if dirty is None:
            dirty = self._dirty[cid] = _Dirty()
        return dirty

    # --- on the event loop --------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The notebook's file value now (equal to `codec.file_value(doc)`), reading only
        what changed since the last snapshot. Call where the document lives."""
        with self.doc.transaction():  # one for all the reads (each read makes its own otherwise)
            return self._snapshot()

    def _snapshot(self) -> Snapshot:
        codec = self.codec
        reference = codec.reference
        if self._top is None or reference is not self._reference:
            meta = self._meta.to_py() or {}
            ids_allowed = _version(meta) >= (4, 5)
            if reference is not self._reference or ids_allowed != self._ids_allowed:
                self._forget()  # every cell is written differently now
            self._reference, self._ids_allowed = reference, ids_allowed
            self._top = codec.file_top(meta)
        order = self._order if self._order is not None else self._read_order()
        if order is None:
            self.stats.full += 1
            self._forget()
            return Snapshot(codec.file_value(self.doc), reference, None)
        entries: dict[str, _Cell] = {}
        old = self._entries
        dirty = self._dirty
        cells = self._cells
        for index, cid in enumerate(order):
            entry = old.pop(cid, None)
            change = dirty.get(cid)
            if change is None and entry is not None and any(str(text) != was for text, was in entry.texts):
                change = _Dirty()  # typed into: its own fields again, its outputs kept
            if entry is None or change is not None:
                entry = self._read(cid, cells[index], entry, change)
            entries[cid] = entry
        for gone in old.values():
            _unwatch(gone.watches)
        self._entries = entries
        dirty.clear()
        value = dict(self._top)
        value["cells"] = [entries[cid].value for cid in order]
        return Snapshot(value, reference, self._top)

    def _forget(self) -> None:
        for entry in self._entries.values():
            _unwatch(entry.watches)
        self._entries.clear()
        self._dirty.clear()

    def _read_order(self) -> list[str] | None:
        """The cells' ids in order, or None if some cell has none or repeats one."""
        order: list[str] = []
        for cell in self._cells:
            cid = cell.get("id") if isinstance(cell, pycrdt.Map) else None
            if not isinstance(cid, str):
                return None
            order.append(cid)
        if len(set(order)) != len(order):
            return None
        self._order = order
        return order

    def _read(self, cid: str, ycell: pycrdt.Map[Any], before: _Cell | None, change: _Dirty | None) -> _Cell:
        """A changed cell's file value (outputs unchanged since `before` are its objects),
        watched from now on."""
        self.stats.cells_read += 1
        if before is not None:
            _unwatch(before.watches)
        reuse = before is not None and before.raw_outputs is not None and change is not None
        watches: list[tuple[Any, Any]] = [(ycell, ycell.observe(lambda event: self._on_cell(cid, event)))]
        texts: list[tuple[pycrdt.Text, str]] = []
        raw: dict[str, Any] = {}
        for key, item in ycell.items():
            if isinstance(item, pycrdt.Text):
                raw[key] = str(item)
                texts.append((item, raw[key]))
                continue
            if key == "outputs" and isinstance(item, pycrdt.Array):
                watches.append((item, item.observe_deep(lambda events: self._on_outputs(cid, events))))
            elif isinstance(item, (pycrdt.Map, pycrdt.Array)):
                watches.append((item, item.observe_deep(lambda events: self._on_field(cid, events))))
            if key == "outputs" and reuse and isinstance(item, pycrdt.Array):
                assert before is not None and before.raw_outputs is not None and change is not None
                kept = before.raw_outputs
                outputs = []
                for j, output in enumerate(item):
                    if j < len(kept) and change.output_clean(j):
                        outputs.append(kept[j])
                    else:
                        self.stats.outputs_read += 1
                        outputs.append(output.to_py() if isinstance(output, BaseType) else output)
                raw[key] = outputs
            else:
                raw[key] = item.to_py() if isinstance(item, BaseType) else item
        value = self.codec._file_cell(raw, self._ids_allowed)
        raw_outputs = raw.get("outputs")
        file_outputs = value.get("outputs")
        if not isinstance(raw_outputs, list) or not isinstance(file_outputs, list):
            return _Cell(value, None, None, texts, watches)
        if reuse and len(file_outputs) == len(raw_outputs):
            assert before is not None and before.raw_outputs is not None and before.file_outputs is not None
            for j, output in enumerate(raw_outputs):
                if j < len(before.raw_outputs) and output is before.raw_outputs[j]:
                    file_outputs[j] = before.file_outputs[j]  # written alike: same place, same reference
        return _Cell(value, raw_outputs, file_outputs, texts, watches)

    # --- any thread ---------------------------------------------------------------------

    def dump(self, snap: Snapshot) -> bytes:
        """The file bytes of a snapshot: `codec.dump_value(snap.value)`, byte for byte."""
        parsed = snap.reference.parsed  # type: ignore[attr-defined]
        if snap.top is None or not self._lock.acquire(blocking=False):
            return dumps_like(parsed, snap.value).encode("utf-8")  # busy (a render on the loop): no memo
        try:
            if self._memo is None or self._memo_reference is not snap.reference:
                self._memo = Memo(frozenset({_CELL_DEPTH, _OUTPUT_DEPTH}))
                self._memo_reference = snap.reference
            return dumps_like_bytes(parsed, snap.value, self._memo)
        finally:
            self._lock.release()

    @property
    def cells_written(self) -> int:
        """Cells (and outputs) formatted afresh by `dump` so far."""
        return self._memo.misses if self._memo is not None else 0

    def problem(self, snap: Snapshot, check: Callable[[dict[str, Any]], str | None]) -> str | None:
        """`check(snap.value)`, where `check` looks at the top-level keys, at each cell on
        its own and at each output of a code cell on its own (a conjunction, as
        `DocumentGuard`'s checks are: nbformat's schema checks an output alone, at the same
        depth in any code cell): each cell is checked in a notebook of its own, once, a
        code cell without its outputs and then with each output not found fine before;
        only if one fails is the whole value checked, for the message. The check must be
        the same function on every call."""
        top = snap.top
        if top is None or not self._lock.acquire(blocking=False):
            return check(snap.value)
        try:
            if self._top_checked is None or self._top_checked[0] is not top:
                self._checked.clear()
                self._fine_outputs.clear()
                self._top_checked = (top, check({**top, "cells": []}) is None)
            fine = self._top_checked[1]
            checked: dict[int, _Checked] = {}
            fine_outputs: dict[int, Any] = {}
            for cell in snap.value["cells"]:
                hit = self._checked.get(id(cell))
                if hit is None or hit[0] is not cell:
                    self.stats.cells_checked += 1
                    hit = (cell, top, *self._cell_fine(cell, top, check))
                checked[id(cell)] = hit
                fine = fine and hit[2]
                for output in hit[3]:
                    fine_outputs[id(output)] = output
            self._checked = checked
            self._fine_outputs = fine_outputs
        finally:
            self._lock.release()
        return None if fine else check(snap.value)

    def _cell_fine(
        self, cell: dict[str, Any], top: dict[str, Any], check: Callable[[dict[str, Any]], str | None]
    ) -> tuple[bool, list[Any]]:
        """Whether `cell` passes `check` in a notebook of its own: a code cell without its
        outputs, then with each output not already found fine (`_fine_outputs`), alone;
        and its outputs found fine (kept when the cell fails: one bad output removed, the
        others are not checked again)."""
        outputs = cell.get("outputs")
        if cell.get("cell_type") != "code" or not isinstance(outputs, list):
            return check({**top, "cells": [cell]}) is None, []
        known = self._fine_outputs
        fine = [output for output in outputs if known.get(id(output)) is output]
        shell = dict(cell)
        shell["outputs"] = []
        probe = {**top, "cells": [shell]}
        if check(probe) is not None:
            return False, fine
        fine = []
        for output in outputs:
            if known.get(id(output)) is not output:
                self.stats.outputs_checked += 1
                shell["outputs"] = [output]
                if check(probe) is not None:
                    return False, fine
            fine.append(output)
        return True, fine


def _unwatch(watches: list[tuple[Any, Any]]) -> None:
    for shared, subscription in watches:
        shared.unobserve(subscription)
    watches.clear()
