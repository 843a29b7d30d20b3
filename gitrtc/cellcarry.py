"""Carry another version's edits of one notebook cell into the live cell, or flag a conflict.

Two places need it, both where Yjs alone would lose an edit (issue 17):

- a *move* (JupyterLab deletes the cell and inserts a copy with its id): edits others made
  to the original that the mover had not seen must follow into the copy (`carry_moved`);
- an edit that reached a cell after it was deleted or moved (`lateedits`): the live cell
  (put back, or the moved copy) takes it, merged against the version it was made on
  (`carry_three_way`).

Every field of the cell is carried, not only its source: metadata, outputs, execution
count, attachments. Where both sides changed a field differently, the live cell keeps
its value and the other is recorded as a conflict of that kind (`conflicts.resolve`
applies the choice), never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycrdt import Array, Map, Text

from .documents.notebook_ops import youtput_from_dict
from .documents.text_ops import apply_text, rebase_text

__all__ = ["Flag", "carry_moved", "carry_three_way"]

#: Records one conflict (`{cell, kind, mine, theirs, from}`) in the document's `state` map.
Flag = Callable[[dict[str, Any]], None]


def carry_moved(ycell: Map[Any], copy: dict[str, Any], was: dict[str, Any], flag: Flag, label: str) -> None:
    """A move: `copy` is the moved cell as its mover made it (the mover's view of the cell),
    `was` the original as the document held it, with edits the mover had not seen. There
    is no common base: what only one side has is kept (text only added, keys only on one
    side, outputs only appended); what both changed differently stays the mover's and the
    other version is recorded (`label`: e.g. "a move by Bob")."""
    cid = copy.get("id")
    source, old = str(copy.get("source", "")), str(was.get("source", ""))
    if source != old:
        ysource = ycell.get("source")
        if _subsequence(source, old) and isinstance(ysource, Text):
            apply_text(ysource, old)  # the unseen edits only added text: carried
        else:
            flag({"cell": cid, "kind": "source", "mine": source, "theirs": old, "from": label})
    meta, old_meta = dict(copy.get("metadata") or {}), dict(was.get("metadata") or {})
    ymeta = ycell.get("metadata")
    if meta != old_meta and isinstance(ymeta, Map):
        for key, value in old_meta.items():
            if key not in meta:
                ymeta[key] = value  # a key the mover never saw
        if any(key in meta and meta[key] != value for key, value in old_meta.items()):
            flag({"cell": cid, "kind": "metadata", "mine": {**old_meta, **meta}, "theirs": old_meta, "from": label})
    outputs, old_outputs = list(copy.get("outputs") or []), list(was.get("outputs") or [])
    if outputs != old_outputs and "outputs" in was:
        if old_outputs[: len(outputs)] == outputs:  # a kernel's outputs arrived meanwhile
            _set_outputs(ycell, old_outputs)
            if was.get("execution_count") is not None:
                ycell["execution_count"] = was["execution_count"]
        else:
            flag({"cell": cid, "kind": "outputs", "mine": outputs, "theirs": old_outputs, "from": label})
    elif copy.get("execution_count") is None and was.get("execution_count") is not None:
        ycell["execution_count"] = was["execution_count"]
    attachments, old_attachments = copy.get("attachments"), was.get("attachments")
    if attachments != old_attachments and old_attachments is not None:
        if not attachments:
            ycell["attachments"] = old_attachments
        else:
            flag({"cell": cid, "kind": "attachments", "mine": attachments, "theirs": old_attachments, "from": label})


def carry_three_way(ycell: Map[Any], base: dict[str, Any], edited: dict[str, Any], flag: Flag, label: str) -> None:
    """Bring the change `base` → `edited` (another version of this cell) into `ycell`,
    keeping what the live cell changed since `base`: the source merged the CRDT way (both
    sides' text kept), each other field taken where the live cell still has `base`'s
    value, recorded as a conflict (`label`) where both changed it differently."""
    cid = ycell.get("id")
    current = ycell.to_py() or {}
    ysource = ycell.get("source")
    base_source, new_source = str(base.get("source", "")), str(edited.get("source", ""))
    if base_source != new_source and isinstance(ysource, Text):
        rebase_text(ysource, base_source, new_source)
    base_meta, new_meta = dict(base.get("metadata") or {}), dict(edited.get("metadata") or {})
    cur_meta = dict(current.get("metadata") or {})
    ymeta = ycell.get("metadata")
    if base_meta != new_meta and isinstance(ymeta, Map):
        clash = False
        for key in set(base_meta) | set(new_meta):
            theirs, ancestor = new_meta.get(key, _ABSENT), base_meta.get(key, _ABSENT)
            if theirs == ancestor:
                continue
            mine = cur_meta.get(key, _ABSENT)
            if mine == ancestor:
                if theirs is _ABSENT:
                    del ymeta[key]
                else:
                    ymeta[key] = theirs
            elif mine != theirs:
                clash = True
        if clash:
            flag({"cell": cid, "kind": "metadata", "mine": cur_meta, "theirs": new_meta, "from": label})
    for key, kind in (("outputs", "outputs"), ("attachments", "attachments"), ("execution_count", None)):
        theirs, ancestor = edited.get(key), base.get(key)
        if theirs == ancestor:
            continue
        mine = current.get(key)
        if mine == ancestor:
            if key == "outputs":
                _set_outputs(ycell, list(theirs or []))
            else:
                ycell[key] = theirs
        elif mine != theirs and kind is not None:
            flag({"cell": cid, "kind": kind, "mine": mine, "theirs": theirs, "from": label})


_ABSENT = object()


def _set_outputs(ycell: Map[Any], outputs: list[Any]) -> None:
    youtputs = ycell.get("outputs")
    if isinstance(youtputs, Array):
        youtputs.clear()
        youtputs.extend([youtput_from_dict(o) for o in outputs])
    else:
        ycell["outputs"] = Array([youtput_from_dict(o) for o in outputs])


def _subsequence(short: str, long: str) -> bool:
    """Whether `long` is `short` with text inserted (nothing of `short` removed)."""
    it = iter(long)
    return all(ch in it for ch in short)
