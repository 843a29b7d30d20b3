"""Three-way notebook merges with nbdime's semantics, and the conflicts they leave open.

`merge_notebook(base, ours, theirs, config)` is pure (no I/O): nbdime decides the merge
(`decide_merge_with_diff`, with the strategies of the user's nbdime configuration, see
`load_config`); where nbdime leaves a conflict, this module settles it so that nothing is
lost and records the other side as a `Conflict`:

- a cell source both sides changed on the same lines: nbdime's line merge of the two,
  where each conflicting hunk takes `ours` (no markers in the document: the file, the
  commit and every folder stay clean), both versions recorded, and the text with
  nbdime's inline markers (`<<<<<<< local` … `>>>>>>> remote`) kept in the record as
  `marked` for whoever asks for markers (`rtc join --conflict-markers`);
- outputs, metadata, attachments, execution counts: the document keeps `ours`,
  `theirs` is recorded;
- a cell deleted on one side and edited on the other: the edited cell stays, flagged;
- different cells inserted at the same place on both sides: both kept, flagged;
- a cell moved on one side (same id at another place) and edited on the other: one
  cell, at its new place, with the edit (a move is never a delete plus a copy).

Where nbdime merges cleanly the result is nbdime's merge (the same change made on both
sides applied once). `ours` is the live document, `theirs` the diverged version.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from ..documents import nbformat_import  # noqa: F401  (before nbdime, which imports nbformat)

# isort: split
from nbdime.diff_format import op_addrange, op_removerange
from nbdime.diffing.notebooks import diff_notebooks
from nbdime.merging.decisions import apply_decisions
from nbdime.merging.generic import decide_merge_with_diff
from nbdime.merging.notebooks import notebook_merge_strategies

from ..documents.notebook_ops import normalized, sequence_script

__all__ = ["Conflict", "MergeResult", "load_config", "merge_notebook", "unmarked"]

_BASE_TAG = "__rtc_merge_base__"
_SIDE_TAG = "__rtc_merge_side__"
#: nbdime strategies that would write markers into the document's structure (marker cells,
#: marker outputs, a `nbdime-conflicts` metadata key): this module records those conflicts
#: instead, so the document stays a notebook people work in.
_RECORDED = {"inline-cells", "inline-outputs", "record-conflict", "inline-attachments", "mergetool"}
_DELETED = re.compile(r"<<<<<<< (LOCAL|REMOTE) CELL DELETED >>>>>>>")
_DEFAULT = argparse.Namespace(
    merge_strategy="inline", input_strategy=None, output_strategy=None, ignore_transients=True, log_level="INFO"
)


@dataclass(frozen=True, slots=True)
class Conflict:
    """One open conflict: where, what kind, and both sides (JSON values).

    `cell` is the index of the cell in the merged notebook (None: the notebook's own
    metadata); `kind` is `source`, `outputs`, `metadata`, `attachments`,
    `execution_count`, `deleted` (one side deleted the cell, the other edited it: `mine`
    or `theirs` is None for the side that deleted) or `inserted` (both inserted different
    cells here: `mine`/`theirs` are the cell indices each side inserted).
    """

    cell: int | None
    kind: str
    mine: Any
    theirs: Any
    #: A `source` conflict: the cell's text with nbdime's inline markers around each
    #: conflicting hunk (the document holds `mine`, this for anyone who wants markers).
    marked: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The conflict as a JSON object."""
        out = {"cell": self.cell, "kind": self.kind, "mine": self.mine, "theirs": self.theirs}
        if self.marked is not None:
            out["marked"] = self.marked
        return out


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The merged notebook (a JSON value) and the conflicts left open in it."""

    notebook: dict[str, Any]
    conflicts: tuple[Conflict, ...] = field(default=())


def load_config() -> argparse.Namespace:
    """The user's nbdime merge settings (`nbdime config-git`, `nbdime_config.json`), as
    nbdime's own `nbmerge` reads them; nbdime's defaults where none are set."""
    from nbdime.nbmergeapp import _build_arg_parser

    args: argparse.Namespace = _build_arg_parser().parse_args(["", "", ""])
    return args


def merge_notebook(
    base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any], config: Any = None
) -> MergeResult:
    """nbdime's three-way merge of `theirs` into `ours` against `base`, conflicts recorded.

    `config` is an nbdime argument namespace (`load_config`) or None for nbdime's defaults.
    """
    b, o, t = normalized(dict(base)), normalized(dict(ours)), normalized(dict(theirs))
    if b == o:
        return MergeResult(_plain(t))
    if b == t or o == t:
        return MergeResult(_plain(o))
    strategies = notebook_merge_strategies(config or _DEFAULT)
    for key, value in list(strategies.items()):
        if value in _RECORDED:
            strategies[key] = None
    local_diff, remote_diff = diff_notebooks(b, o), diff_notebooks(b, t)
    decisions = decide_merge_with_diff(b, o, t, local_diff, remote_diff, strategies)
    to_ours = _index_map(local_diff, len(b.cells), len(o.cells))
    to_theirs = _index_map(remote_diff, len(b.cells), len(t.cells))
    pending: list[_Pending] = []
    for decision in decisions:
        if decision.conflict:
            pending.extend(_settle(decision, b, o, t, to_ours, to_theirs))
    tagged = copy.deepcopy(b)
    for i, cell in enumerate(tagged.cells):
        cell.metadata[_BASE_TAG] = i
    merged = _plain(apply_decisions(tagged, decisions))
    ours_cells = {c.get("id"): _plain(c) for c in o.cells if isinstance(c.get("id"), str)}
    return _finish(merged, pending, b, ours_cells)


@dataclass(slots=True)
class _Pending:
    """A conflict found in the decisions, located by base cell or inserted-cell tag."""

    kind: str
    base_cell: int | None
    mine: Any
    theirs: Any
    tag: str | None = None  # the side tag of an inserted cell it is about


def _plain(value: Any) -> dict[str, Any]:
    return json.loads(json.dumps(value))  # type: ignore[no-any-return]


def _index_map(diff: list[Any], n_old: int, n_new: int) -> dict[int, int]:
    """Base cell index → index of the same cell on one side (kept or patched)."""
    cells: list[Any] = next((d["diff"] for d in diff if d["key"] == "cells" and d["op"] == "patch"), [])
    script = sequence_script(list(cells), n_old, n_new)
    return {s.old: s.new for s in script if s.op in ("keep", "patch") and s.old is not None and s.new is not None}


def _settle(
    decision: Any, b: Any, o: Any, t: Any, to_ours: dict[int, int], to_theirs: dict[int, int]
) -> list[_Pending]:
    """Resolve one conflicted nbdime decision in place (nothing lost); what to record."""
    path = tuple(decision.common_path)
    if path == ("cells",):
        return _settle_cells(decision, b, o, t, to_ours, to_theirs)
    if path and path[0] == "cells" and len(path) >= 2:
        i = int(path[1])
        deleter = _deletion_marker(decision)
        if deleter is not None:  # nbdime's "CELL DELETED" marker: keep the edit, flag the delete
            decision.action = "remote" if deleter == "mine" else "local"
            mine = None if deleter == "mine" else _cell_field(o, to_ours.get(i), "source")
            theirs = None if deleter == "theirs" else _cell_field(t, to_theirs.get(i), "source")
            return [_Pending("deleted", i, mine, theirs)]
        fld = str(path[2]) if len(path) > 2 else _field_of(decision)
        mine = _cell_field(o, to_ours.get(i), fld)
        theirs = _cell_field(t, to_theirs.get(i), fld)
        if decision.action != "custom":  # inline source markers stay; the rest: ours
            decision.action = "local"
        kind = fld if fld in ("source", "outputs", "metadata", "attachments", "execution_count") else "metadata"
        return [_Pending(kind, i, mine, theirs)]
    decision.action = "local"
    return [_Pending("metadata", None, o.get("metadata", {}), t.get("metadata", {}))]


def _deletion_marker(decision: Any) -> str | None:
    """Which side deleted the cell, when nbdime countered a deletion with a marker line."""
    for side, diff in (("mine", decision.local_diff), ("theirs", decision.remote_diff)):
        for entry in diff or []:
            values = entry.get("valuelist") if entry.get("op") == "addrange" else None
            if values and isinstance(values[0], str) and _DELETED.match(values[0]):
                return side
    return None


def _field_of(decision: Any) -> str:
    for diff in (decision.get("custom_diff") or [], decision.local_diff, decision.remote_diff):
        for entry in diff:
            return str(entry["key"])
    return "source"


def _cell_field(nb: Any, index: int | None, fld: str) -> Any:
    if index is None:
        return None
    return _plain({"v": nb.cells[index].get(fld)})["v"]


def _settle_cells(
    decision: Any, b: Any, o: Any, t: Any, to_ours: dict[int, int], to_theirs: dict[int, int]
) -> list[_Pending]:
    """A conflict on the cell list: keep every insert and every edited cell.

    Removals stand unless the other side edited that cell (then it stays, flagged);
    different inserts at one place are both kept (ours first), flagged.
    """
    sides = {"mine": list(decision.local_diff), "theirs": list(decision.remote_diff)}
    removed: dict[str, set[int]] = {"mine": set(), "theirs": set()}
    patched: dict[int, tuple[str, Any]] = {}
    added: dict[int, list[tuple[str, list[Any]]]] = {}
    for side, ops in sides.items():
        for op in ops:
            key = int(op["key"])
            if op["op"] == "removerange":
                removed[side].update(range(key, key + int(op["length"])))
            elif op["op"] == "patch":
                patched.setdefault(key, (side, op))
            elif op["op"] == "addrange":
                added.setdefault(key, []).append((side, list(op["valuelist"])))
    pending: list[_Pending] = []
    out: list[tuple[int, int, dict[str, Any]]] = []
    for key, inserts in added.items():
        if len(inserts) == 2 and _plain(inserts[0][1]) == _plain(inserts[1][1]):
            inserts = inserts[:1]  # the same insert on both sides: once
        tags: dict[str, list[str]] = {"mine": [], "theirs": []}
        values: list[Any] = []
        for side, cells in inserts:
            for n, cell in enumerate(cells):
                cell = copy.deepcopy(cell)
                tag = f"{side}:{key}:{n}"
                cell.setdefault("metadata", {})[_SIDE_TAG] = tag
                tags[side].append(tag)
                values.append(cell)
        out.append((key, 0, op_addrange(key, values)))
        if tags["mine"] and tags["theirs"]:
            pending.append(_Pending("inserted", None, tags["mine"], tags["theirs"], tags["theirs"][0]))
    for key, (_side, op) in patched.items():
        out.append((key, 2, op))
    for side in ("mine", "theirs"):
        other = "theirs" if side == "mine" else "mine"
        for key in sorted(removed[side]):
            if key in patched and patched[key][0] == other:
                mine = _cell_source(o, to_ours.get(key)) if side == "theirs" else None
                theirs = _cell_source(t, to_theirs.get(key)) if side == "mine" else None
                pending.append(_Pending("deleted", key, mine, theirs))
            elif key not in patched and not (side == "theirs" and key in removed["mine"]):
                out.append((key, 1, op_removerange(key, 1)))
    decision.action = "custom"
    decision.custom_diff = [op for _k, _o, op in sorted(out, key=lambda x: (x[0], x[1]))]
    return pending


def _cell_source(nb: Any, index: int | None) -> Any:
    return None if index is None else nb.cells[index].get("source", "")


def _finish(
    merged: dict[str, Any], pending: list[_Pending], base: Any, ours_cells: dict[str, dict[str, Any]]
) -> MergeResult:
    """Strip the tags, turn a moved-and-edited cell into one cell, locate the conflicts
    (`ours_cells`: the document's cells by id, to tell its side of a moved cell)."""
    cells: list[dict[str, Any]] = merged.get("cells", [])
    from_base: dict[int, dict[str, Any]] = {}
    by_tag: dict[str, dict[str, Any]] = {}
    for cell in cells:
        meta = cell.get("metadata")
        if isinstance(meta, dict):
            if _BASE_TAG in meta:
                from_base[int(meta.pop(_BASE_TAG))] = cell
            if _SIDE_TAG in meta:
                by_tag[str(meta.pop(_SIDE_TAG))] = cell
    clashes: list[tuple[dict[str, Any], str, Any, Any]] = []
    moved = _join_moves(cells, from_base, base, ours_cells, clashes)
    position = {id(cell): j for j, cell in enumerate(cells)}

    def at(cell: dict[str, Any] | None) -> int | None:
        return None if cell is None else position.get(id(cell))

    conflicts = [Conflict(at(cell), kind, mine, theirs) for cell, kind, mine, theirs in clashes]
    for p in pending:
        if p.kind == "deleted" and p.base_cell in moved:
            continue  # a move, not a delete: the moved cell carries the edit
        if p.kind == "inserted":
            mine = [j for j in (at(by_tag.get(x)) for x in p.mine) if j is not None]
            theirs = [j for j in (at(by_tag.get(x)) for x in p.theirs) if j is not None]
            conflicts.append(Conflict(theirs[0] if theirs else None, "inserted", mine, theirs))
        else:
            where = at(from_base.get(p.base_cell)) if p.base_cell is not None else None
            marked = cells[where].get("source") if where is not None and p.kind == "source" else None
            if where is not None and isinstance(marked, str) and _MARKER_START in marked:
                cells[where]["source"] = unmarked(marked)  # the document keeps its side
                conflicts.append(Conflict(where, p.kind, cells[where]["source"], p.theirs, marked))
            else:
                conflicts.append(Conflict(where, p.kind, p.mine, p.theirs))
    return MergeResult(merged, tuple(conflicts))


_MARKER_START = "<<<<<<< local\n"
_ABSENT = object()


def _merge_moved(
    copy_: dict[str, Any],
    edited: dict[str, Any],
    base: dict[str, Any],
    mine_is_copy: bool,
    clashes: list[tuple[dict[str, Any], str, Any, Any]],
) -> dict[str, Any]:
    """A moved cell (`copy_`, the mover's) and the same cell edited in place (`edited`),
    merged field by field against `base`: what one side changed is taken (every field,
    not only the source), the metadata key by key; where both changed a field differently
    the document's side (`mine_is_copy`) is kept and the other recorded in `clashes`
    (execution counts, nbdime's transients, excepted)."""
    out: dict[str, Any] = {}
    recorded: list[tuple[str, Any, Any]] = []
    for key in [*copy_, *(k for k in edited if k not in copy_)]:
        a, b, o = copy_.get(key, _ABSENT), edited.get(key, _ABSENT), base.get(key, _ABSENT)
        mine, theirs = (a, b) if mine_is_copy else (b, a)
        if a == b or a == o:
            value = b
        elif b == o:
            value = a
        elif key == "source" and isinstance(a, str) and isinstance(b, str) and isinstance(o, str):
            value = merge_lines(o, a, b)
            if value is None:  # the same lines changed differently
                value = mine
                recorded.append((key, mine, theirs))
        elif key == "metadata" and isinstance(a, dict) and isinstance(b, dict):
            value, clash = _merge_keys(a, b, o if isinstance(o, dict) else {}, mine_is_copy)
            if clash:
                recorded.append((key, {**value}, theirs))
        else:
            value = mine
            if key != "execution_count":
                recorded.append((key, mine, None if theirs is _ABSENT else theirs))
        if value is not _ABSENT:
            out[key] = value
    clashes.extend((out, kind, mine, theirs) for kind, mine, theirs in recorded)
    return out


def merge_lines(base: str, a: str, b: str) -> str | None:
    """A three-way line merge of two texts: both sides' changes where they touch different
    lines of `base`; None where they change the same lines (or next to each other) differently."""
    lines = base.splitlines(keepends=True)
    hunks: list[tuple[int, int, list[str]]] = []  # (base start, base end, new lines) of both sides
    for side in (a, b):
        new = side.splitlines(keepends=True)
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, lines, new, autojunk=False).get_opcodes():
            if tag != "equal":
                hunks.append((i1, i2, new[j1:j2]))
    hunks.sort(key=lambda h: (h[0], h[1]))
    out: list[str] = []
    at = 0
    previous: tuple[int, int, list[str]] | None = None
    for hunk in hunks:
        if hunk == previous:
            continue  # the same change on both sides: once
        i1, i2, new_lines = hunk
        if previous is not None and i1 <= previous[1]:
            return None  # overlapping or touching changes (git's rule)
        out.extend(lines[at:i1])
        out.extend(new_lines)
        at = i2
        previous = hunk
    out.extend(lines[at:])
    return "".join(out)


def _merge_keys(
    a: dict[str, Any], b: dict[str, Any], base: dict[str, Any], a_is_mine: bool
) -> tuple[dict[str, Any], bool]:
    """Two dicts merged key by key against `base`; where both changed a key differently,
    the mine side's value. (The merge, whether any key clashed.)"""
    out: dict[str, Any] = {}
    clash = False
    for key in [*a, *(k for k in b if k not in a), *(k for k in base if k not in a and k not in b)]:
        x, y, o = a.get(key, _ABSENT), b.get(key, _ABSENT), base.get(key, _ABSENT)
        if x == y or x == o:
            value = y
        elif y == o:
            value = x
        else:
            value, clash = (x if a_is_mine else y), True
        if value is not _ABSENT:
            out[key] = value
    return out, clash


def unmarked(text: str) -> str:
    """nbdime's inline-marked text with each conflicting hunk resolved to the local side."""
    out: list[str] = []
    side = None  # None: outside a hunk; "local"; "remote"
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if side is None and bare == "<<<<<<< local":
            side = "local"
        elif side == "local" and bare == "=======":
            side = "remote"
        elif side == "remote" and bare == ">>>>>>> remote":
            side = None
        elif side != "remote":
            out.append(line)
    return "".join(out)


def _join_moves(
    cells: list[dict[str, Any]],
    from_base: dict[int, dict[str, Any]],
    base: Any,
    ours_cells: dict[str, dict[str, Any]],
    clashes: list[tuple[dict[str, Any], str, Any, Any]],
) -> set[int]:
    """Where a cell id appears twice (kept and edited in place on one side, moved on the
    other), keep one cell, at the moved place, with the edit: each field merged against
    the base (`_merge_moved`), a field both sides changed differently added to `clashes`
    as (cell, kind, mine, theirs). The base indices joined."""
    origin = {id(cell): i for i, cell in from_base.items()}
    first_at: dict[str, int] = {}
    dupes: list[tuple[int, int]] = []
    for j, cell in enumerate(cells):
        cid = cell.get("id")
        if isinstance(cid, str) and cid:
            if cid in first_at:
                dupes.append((first_at[cid], j))
            else:
                first_at[cid] = j
    joined: set[int] = set()
    drop: list[int] = []
    for a, b in dupes:
        stay, moved_to = (a, b) if id(cells[a]) in origin else (b, a)
        if id(cells[stay]) not in origin or id(cells[moved_to]) in origin:
            continue  # not a move of a base cell: both kept, as nbdime merged them
        i = origin[id(cells[stay])]
        edited, copy_ = cells[stay], cells[moved_to]
        mine_is_copy = ours_cells.get(str(copy_.get("id"))) == copy_
        cells[moved_to] = _merge_moved(copy_, edited, _plain(base.cells[i]), mine_is_copy, clashes)
        from_base[i] = cells[moved_to]
        drop.append(stay)
        joined.add(i)
    for j in sorted(drop, reverse=True):
        del cells[j]
    return joined
