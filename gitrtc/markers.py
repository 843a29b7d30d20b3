"""nbdime's inline conflict markers in an `rtc join` folder, for those who ask for them.

A notebook's document never holds markers: a source conflict leaves the document's side
in the cell and the marked text (`<<<<<<< local` … `=======` … `>>>>>>> remote`) in the
conflict's record (`merge.notebooks`, `conflicts`). `rtc join --conflict-markers` writes
that marked text into the conflicted cells of the folder's file (`mark`), as `nbdime
merge` would, so the conflict can be resolved in any editor; the markers never travel
back: a save is unmarked first (`unmark`: a cell still holding the markers as written
is the document's side again), and a cell whose markers the user replaced by their own
text is that person's resolution, after which the conflict is closed (`close`).
"""

from __future__ import annotations

import json
from typing import Any

from pycrdt import Array, Doc, Map

from .conflicts import open_conflicts
from .documents.notebook import CONFLICT_PREFIX, NotebookCodec

__all__ = ["close", "mark", "unmark"]

_START = "<<<<<<< local"


def _marked(doc: Doc[Any]) -> dict[str, dict[str, Any]]:
    """Cell id → its open source conflict that has a marked text (the first per cell)."""
    out: dict[str, dict[str, Any]] = {}
    for c in open_conflicts(doc):
        if c.get("kind") == "source" and isinstance(c.get("marked"), str) and isinstance(c.get("cell"), str):
            out.setdefault(c["cell"], c)
    return out


def mark(codec: NotebookCodec, doc: Doc[Any]) -> bytes | None:
    """The file bytes with nbdime's markers in each cell with an open source conflict
    (while the cell still holds the document's side as merged: a cell edited since shows
    its text); None when there is nothing to mark."""
    records = _marked(doc)
    if not records:
        return None
    value = codec.file_value(doc)
    ids = [ycell.get("id") if isinstance(ycell, Map) else None for ycell in doc.get("cells", type=Array)]
    changed = False
    for j, cid in enumerate(ids):
        record = records.get(cid) if isinstance(cid, str) else None
        if record is None or j >= len(value["cells"]):
            continue
        cell = value["cells"][j]
        if _joined(cell.get("source")) != record.get("mine"):
            continue
        text = record["marked"]
        cell["source"] = text.splitlines(keepends=True) if isinstance(cell.get("source"), list) else text
        changed = True
    return codec.dump_value(value) if changed else None


def unmark(doc: Doc[Any], data: bytes, written: bytes | None) -> tuple[bytes, list[str]]:
    """A save of the folder's file as the document's side: cells still holding the
    markers as written get the document's text back; a marked cell the user rewrote
    without markers is a resolution. (the bytes to merge, the conflict ids resolved)."""
    records = _marked(doc)
    if not records:
        return data, []
    try:
        saved = json.loads(data)
        cells = saved["cells"]
        before = json.loads(written)["cells"] if written is not None else None
    except (ValueError, KeyError, TypeError):
        return data, []  # not a notebook: the merge says so
    if not isinstance(cells, list):
        return data, []
    by_text = {record["marked"]: record for record in records.values()}
    resolved: list[str] = []
    changed = False
    for j, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        text = _joined(cell.get("source"))
        if text in by_text:  # untouched: the document's side
            cell["source"] = by_text[text]["mine"]
            changed = True
            continue
        was = _joined(before[j].get("source")) if before is not None and len(before) == len(cells) else None
        if was in by_text and _START not in text.splitlines():
            resolved.append(by_text[was]["id"])  # the user replaced the markers by their choice
    if not changed:
        return data, resolved
    return (json.dumps(saved, indent=1, ensure_ascii=False) + "\n").encode(), resolved


def close(doc: Doc[Any], conflict_ids: list[str]) -> None:
    """Close conflicts the user resolved in the folder (one edit of the local document)."""
    state = doc.get("state", type=Map)
    with doc.transaction():
        for conflict_id in conflict_ids:
            key = f"{CONFLICT_PREFIX}{conflict_id}"
            if key in state:
                del state[key]


def _joined(source: Any) -> Any:
    return "".join(source) if isinstance(source, list) else source
