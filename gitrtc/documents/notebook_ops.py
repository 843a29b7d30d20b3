"""A new notebook file → the fewest YNotebook operations, using nbdime's alignment.

Cells are first anchored where they are identical; each changed block between anchors
is aligned by nbdime's cell differ (by id when both sides have ids, else by similar
source and outputs), or by position when the block is too big for nbdime's quadratic
comparison. The result is a script of `Step`s (keep, patch, remove, insert) applied to
the cells Array: inserted/removed cells are Array inserts/deletes, a patched cell's
source is a text diff on its `Text`, metadata is set key by key, other fields are set,
and outputs are aligned (nbdime again) and patched the same way. Yjs 13 has no move: a
moved cell is a delete plus an insert, and keeps its id (never two cells with one id).

Everything is decided (`normalized`, `cell_script`, `output_script`, the ids) before
`apply_notebook` changes the doc.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from ..documents.nbformat_import import nbformat  # before nbdime, which imports nbformat

# isort: split
from nbdime.diffing.notebooks import diff_cells, diff_item_at_path
from nbdime.merging.notebooks import merge_notebooks
from nbformat.v4.rwbase import rejoin_lines
from pycrdt import Array, Map, Text

from .jsonformat import intify, sem_equal
from .text_ops import apply_text, rebased

__all__ = [
    "Step",
    "apply_notebook",
    "cell_script",
    "normalized",
    "output_script",
    "three_way",
    "ycell_from_dict",
    "youtput_from_dict",
]

_MISSING: Any = object()
_LAYOUT_KEYS = ("source", "metadata", "outputs")
_CELL_TYPES = ("code", "markdown", "raw")


# --- the YNotebook layout --------------------------------------------------------------


def joined(value: Any) -> str:
    """A multiline field (string or list of lines) as one string."""
    if isinstance(value, list):
        return "".join(value)
    return value if isinstance(value, str) else ""


def youtput_from_dict(output: dict[str, Any]) -> Map[Any]:
    """An output as jupyter_ydoc lays it out: a Map, a stream's `text` as Text."""
    fields = dict(output)
    if fields.get("output_type") == "stream" and "text" in fields:
        fields["text"] = Text(joined(fields["text"]))
    return Map(fields)


def ycell_from_dict(cell: dict[str, Any], cell_id: str) -> Map[Any]:
    """A cell as jupyter_ydoc's `YNotebook.create_ycell` lays it out, but keeping every field.

    `id`, `cell_type`, `source` (Text), `metadata` (Map), code cells' `outputs` (Array of
    Maps) and `execution_state`; a cell_type editors do not know becomes `raw`
    (the codec writes the file's own type back); every other field (attachments, execution_count,
    unknown keys) as a plain value.
    """
    fields = {key: value for key, value in cell.items() if key not in _LAYOUT_KEYS}
    fields["id"] = cell_id
    if fields.get("cell_type") not in _CELL_TYPES:
        fields["cell_type"] = "raw"  # editors cannot show other types; the file keeps its own
    fields["source"] = Text(joined(cell.get("source", "")))
    fields["metadata"] = Map(dict(cell.get("metadata") or {}))
    if cell.get("cell_type") == "code":
        fields["outputs"] = Array([youtput_from_dict(o) for o in cell.get("outputs") or []])
        fields["execution_state"] = "idle"
    elif "outputs" in cell:
        fields["outputs"] = cell["outputs"]
    return Map(fields)


# --- deciding ----------------------------------------------------------------------


def normalized(nb: dict[str, Any]) -> Any:
    """A copy of a v4 notebook dict in the form nbdime compares (an nbformat NotebookNode).

    Multiline fields joined, integral floats as ints, and the fields nbdime's
    heuristics read filled with empty defaults where a (broken) notebook lacks them.
    """
    node = nbformat.from_dict(intify(nb))
    node.setdefault("metadata", {})
    for cell in node.setdefault("cells", []):
        cell.setdefault("source", "")
        cell.setdefault("metadata", {})
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            for output in cell.outputs:
                for key, default in _OUTPUT_DEFAULTS.get(output.get("output_type"), {}).items():
                    output.setdefault(key, copy.deepcopy(default))
    return rejoin_lines(node)


_OUTPUT_DEFAULTS: dict[str, dict[str, Any]] = {
    "stream": {"name": "", "text": ""},
    "error": {"ename": "", "evalue": "", "traceback": []},
    "display_data": {"data": {}, "metadata": {}},
    "execute_result": {"data": {}, "metadata": {}},
}


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a sequence script: `keep`/`patch` old[i] as new[j], `remove` old[i], `insert` new[j]."""

    op: str
    old: int | None
    new: int | None
    diff: list[Any] | None = None


def sequence_script(diff: list[Any], n_old: int, n_new: int) -> list[Step]:
    """An nbdime sequence diff (ops keyed by old index) as a left-to-right script."""
    ops = sorted(diff, key=lambda e: (e["key"], e["op"] != "addrange"))
    steps: list[Step] = []
    i = j = 0
    for entry in ops:
        while i < entry["key"]:
            steps.append(Step("keep", i, j))
            i, j = i + 1, j + 1
        if entry["op"] == "addrange":
            for _ in entry["valuelist"]:
                steps.append(Step("insert", None, j))
                j += 1
        elif entry["op"] == "removerange":
            for _ in range(entry["length"]):
                steps.append(Step("remove", i, None))
                i += 1
        elif entry["op"] == "patch":
            steps.append(Step("patch", i, j, entry["diff"]))
            i, j = i + 1, j + 1
        else:
            raise ValueError(f"unexpected sequence diff op {entry['op']!r}")
    while i < n_old:
        steps.append(Step("keep", i, j))
        i, j = i + 1, j + 1
    if j != n_new:
        raise ValueError(f"sequence diff does not account for all items ({j} of {n_new})")
    return steps


#: Largest (old cells × new cells) block handed to nbdime's cell alignment, which compares
#: every pair with difflib (quadratic): bigger changed blocks are paired by position.
NBDIME_GRID_LIMIT = 400


def cell_script(current: Any, new: Any) -> list[Step]:
    """How the cells of `current` become those of `new` (both `normalized`).

    Identical cells are anchored first (difflib over whole cells, cheap); a changed block
    of as many cells of the same types and ids is patched in place; other changed blocks
    are aligned by nbdime when small enough, else by position.
    """
    old_cells, new_cells = current.cells, new.cells
    matcher = SequenceMatcher(
        None, [_canonical(c) for c in old_cells], [_canonical(c) for c in new_cells], autojunk=False
    )
    steps: list[Step] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            steps.extend(Step("keep", i1 + k, j1 + k) for k in range(i2 - i1))
        elif _edited_in_place(old_cells[i1:i2], new_cells[j1:j2]):
            steps.extend(Step("patch", i1 + k, j1 + k) for k in range(i2 - i1))
        elif (i2 - i1) * (j2 - j1) <= NBDIME_GRID_LIMIT:
            block = sequence_script(diff_cells(old_cells[i1:i2], new_cells[j1:j2]), i2 - i1, j2 - j1)
            steps.extend(_shifted(step, i1, j1) for step in block)
        else:
            steps.extend(_by_position(old_cells, new_cells, i1, i2, j1, j2))
    return steps


def _edited_in_place(old: list[Any], new: list[Any]) -> bool:
    """Whether a changed block is the same cells edited (same count, types and ids)."""
    if len(old) != len(new):
        return False
    for x, y in zip(old, new, strict=True):
        if x.get("cell_type") != y.get("cell_type"):
            return False
        if x.get("id") != y.get("id") and (len(old) > 1 or ("id" in x and "id" in y)):
            return False
    return True


def _canonical(cell: Any) -> str:
    return json.dumps(cell, sort_keys=True)


def _shifted(step: Step, di: int, dj: int) -> Step:
    return Step(
        step.op, None if step.old is None else step.old + di, None if step.new is None else step.new + dj, step.diff
    )


def _by_position(old: list[Any], new: list[Any], i1: int, i2: int, j1: int, j2: int) -> list[Step]:
    steps: list[Step] = []
    for k in range(max(i2 - i1, j2 - j1)):
        i, j = i1 + k, j1 + k
        if i < i2 and j < j2 and old[i].get("cell_type") == new[j].get("cell_type"):
            steps.append(Step("patch", i, j))
            continue
        if i < i2:
            steps.append(Step("remove", i, None))
        if j < j2:
            steps.append(Step("insert", None, j))
    return steps


def output_script(cur: list[Any], new: list[Any], cell_diff: list[Any] | None = None) -> list[Step]:
    """How a cell's outputs `cur` become `new`: nbdime's alignment (from the cell's diff if given)."""
    diff = None
    for entry in cell_diff or []:
        if entry["key"] == "outputs" and entry["op"] == "patch":
            diff = list(entry["diff"])
    if diff is None:
        diff = diff_item_at_path(nbformat.from_dict(cur), nbformat.from_dict(new), "/cells/*/outputs")
    return sequence_script(diff, len(cur), len(new))


_MERGE_ARGS = argparse.Namespace(
    merge_strategy="use-remote", input_strategy=None, output_strategy=None, ignore_transients=False, log_level="INFO"
)


def three_way(base: dict[str, Any], current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`current` plus the change `base` → `new` (nbdime's merge).

    When `current` has not moved since `base`, that is exactly `new`. Where both changed
    the same cell's source, both edits are kept, merged the way the CRDT merges concurrent
    typing (`rebased`); other conflicts (outputs, metadata values) go to `new`.
    """
    base_n, current_n, new_n = normalized(base), normalized(current), normalized(new)
    if base_n == current_n or current_n == new_n:
        return new  # nothing of ours to keep, or the change is already here
    merged, _decisions = merge_notebooks(base_n, current_n, new_n, _MERGE_ARGS)
    result: dict[str, Any] = json.loads(json.dumps(merged))
    _keep_both_sources(base_n.cells, current_n.cells, new_n.cells, result.get("cells", []))
    return result


def _keep_both_sources(base: list[Any], current: list[Any], new: list[Any], merged: list[Any]) -> None:
    """Re-merge the sources of cells that both sides edited, so neither edit is dropped.

    Cells are matched by id; without ids (nbformat < 4.5) by position when no cell was
    added or removed on either side.
    """

    def keyed(cells: list[Any]) -> dict[Any, str] | None:
        if all(isinstance(c.get("id"), str) for c in cells):
            return {c["id"]: c.get("source", "") for c in cells}
        return None

    b, c, n = keyed(base), keyed(current), keyed(new)
    by_id = b is not None and c is not None and n is not None and all(isinstance(m.get("id"), str) for m in merged)
    if not by_id:
        if not len(base) == len(current) == len(new) == len(merged):
            return
        b, c, n = ({i: cell.get("source", "") for i, cell in enumerate(cells)} for cells in (base, current, new))
    assert b is not None and c is not None and n is not None
    for i, cell in enumerate(merged):
        key = cell["id"] if by_id else i
        if key in b and key in c and key in n and len({b[key], c[key], n[key]}) == 3:
            cell["source"] = rebased(b[key], c[key], n[key])


# --- applying ----------------------------------------------------------------------


IdChooser = Callable[[dict[str, Any], "str | None", set[str]], str]
"""Picks the doc id for a cell of the new file, given its current doc id (if it continues
a cell) and the ids already taken."""


def apply_notebook(
    ymeta: Map[Any], ycells: Array[Any], current: dict[str, Any], new: dict[str, Any], choose_id: IdChooser
) -> bool:
    """Turn the doc (whose file view is `current`) into `new`; True if anything changed.

    `current["cells"][i]` must describe `ycells[i]`. Call inside one transaction.
    Everything is decided (nbdime diffs, ids) before the first change to the doc.
    """
    cur_n, new_n = normalized(current), normalized(new)
    script = cell_script(cur_n, new_n)
    ids = _final_ids(script, ycells, new["cells"], choose_id)
    outputs: dict[int, list[Step]] = {}
    for step in script:
        if step.op in ("keep", "patch"):
            assert step.old is not None and step.new is not None
            cur_cell, new_cell = cur_n.cells[step.old], new_n.cells[step.new]
            cur_out, new_out = cur_cell.get("outputs"), new_cell.get("outputs")
            both_code = cur_cell.get("cell_type") == new_cell.get("cell_type") == "code"
            if (
                both_code
                and isinstance(cur_out, list)
                and isinstance(new_out, list)
                and not sem_equal(cur_out, new_out)
            ):
                outputs[step.new] = output_script(cur_out, new_out, step.diff)
    changed = _apply_meta(ymeta, cur_n, new_n, new)
    pos = 0
    for step in script:
        if step.op == "remove":
            del ycells[pos]
            changed = True
            continue
        if step.op == "insert":
            assert step.new is not None  # an insert always names the new cell
            ycells.insert(pos, ycell_from_dict(new["cells"][step.new], ids[step.new]))
            changed = True
        else:
            assert step.old is not None and step.new is not None
            old_cell, new_cell, raw = cur_n.cells[step.old], new_n.cells[step.new], new["cells"][step.new]
            ycell = ycells[pos]
            if old_cell.get("cell_type") != new_cell.get("cell_type") or not isinstance(ycell, Map):
                del ycells[pos]
                ycells.insert(pos, ycell_from_dict(raw, ids[step.new]))
                changed = True
            else:
                changed |= _patch_cell(ycell, old_cell, new_cell, raw, outputs.get(step.new, []))
                if ycell.get("id") != ids[step.new]:
                    ycell["id"] = ids[step.new]
                    changed = True
        pos += 1
    return changed


def _final_ids(
    script: list[Step], ycells: Array[Any], raw_cells: list[dict[str, Any]], choose_id: IdChooser
) -> list[str]:
    """The doc id of every cell of the new file: kept cells keep theirs, then patched, then inserted."""
    ids: list[str] = [""] * len(raw_cells)
    taken: set[str] = set()
    for kind in ("keep", "patch", "insert"):
        for step in script:
            if step.op != kind:
                continue
            assert step.new is not None
            current = ycells[step.old].get("id") if step.old is not None else None
            current = current if isinstance(current, str) else None
            if kind == "keep" and current is not None and current not in taken:
                ids[step.new] = current
            else:
                ids[step.new] = choose_id(raw_cells[step.new], current, taken)
            taken.add(ids[step.new])
    return ids


def _apply_meta(ymeta: Map[Any], cur: Any, new: Any, raw: dict[str, Any]) -> bool:
    changed = False
    for key in sorted(set(cur) | set(raw)):
        if key in ("cells", "metadata"):
            continue
        if key not in raw:
            if key in ymeta:
                del ymeta[key]
                changed = True
        elif key not in cur or not sem_equal(cur[key], new[key]):
            ymeta[key] = raw[key]
            changed = True
    ymetadata = ymeta.get("metadata")
    if not isinstance(ymetadata, Map):
        ymeta["metadata"] = ymetadata = Map()
    return _sync_map(ymetadata, cur.metadata, new.metadata, raw.get("metadata") or {}) or changed


def _sync_map(ymap: Map[Any], cur: dict[str, Any], new: dict[str, Any], raw: dict[str, Any]) -> bool:
    """Set the keys whose value changed, delete the keys that are gone."""
    changed = False
    for key in cur:
        if key not in new:
            del ymap[key]
            changed = True
    for key, value in new.items():
        if key not in cur or not sem_equal(cur[key], value):
            ymap[key] = raw[key]
            changed = True
    return changed


def _patch_cell(ycell: Map[Any], cur: Any, new: Any, raw: dict[str, Any], outputs: list[Step]) -> bool:
    changed = False
    for key in sorted(set(cur) | set(new)):
        if key in ("id", "execution_state", "cell_type"):
            continue
        c, n = cur.get(key, _MISSING), new.get(key, _MISSING)
        if c is not _MISSING and n is not _MISSING and sem_equal(c, n):
            continue
        value = ycell.get(key)
        if key == "source" and isinstance(value, Text):
            changed |= apply_text(value, n if isinstance(n, str) else "")
        elif key == "metadata" and isinstance(value, Map):
            changed |= _sync_map(
                value, c if isinstance(c, dict) else {}, n if isinstance(n, dict) else {}, raw.get("metadata") or {}
            )
        elif key == "outputs" and isinstance(value, Array) and isinstance(n, list):
            changed |= _patch_outputs(value, c if isinstance(c, list) else [], n, raw.get("outputs") or [], outputs)
        elif key not in raw:
            if key in ycell:
                del ycell[key]
                changed = True
        else:
            ycell[key] = _layout_value(key, raw[key], new.get("cell_type"))
            changed = True
    return changed


def _layout_value(key: str, value: Any, cell_type: str | None) -> Any:
    if key == "source":
        return Text(joined(value))
    if key == "metadata" and isinstance(value, dict):
        return Map(dict(value))
    if key == "outputs" and cell_type == "code" and isinstance(value, list):
        return Array([youtput_from_dict(o) for o in value])
    return value


def _patch_outputs(youtputs: Array[Any], cur: list[Any], new: list[Any], raw: list[Any], script: list[Step]) -> bool:
    changed = False
    pos = 0
    for step in script:
        if step.op == "remove":
            del youtputs[pos]
            changed = True
            continue
        if step.op == "insert":
            assert step.new is not None  # an insert always names the new output
            youtputs.insert(pos, youtput_from_dict(raw[step.new]))
            changed = True
        else:
            assert step.old is not None and step.new is not None
            yout = youtputs[pos]
            old, out = cur[step.old], new[step.new]
            if not isinstance(yout, Map) or old.get("output_type") != out.get("output_type"):
                del youtputs[pos]
                youtputs.insert(pos, youtput_from_dict(raw[step.new]))
                changed = True
            else:
                changed |= _patch_output(yout, old, out, raw[step.new])
        pos += 1
    return changed


def _patch_output(yout: Map[Any], cur: Any, new: Any, raw: dict[str, Any]) -> bool:
    changed = False
    for key in sorted(set(cur) | set(new)):
        c, n = cur.get(key, _MISSING), new.get(key, _MISSING)
        if c is not _MISSING and n is not _MISSING and sem_equal(c, n):
            continue
        value = yout.get(key)
        if key == "text" and isinstance(value, Text) and isinstance(n, str):
            changed |= apply_text(value, n)
        elif key not in raw:
            if key in yout:
                del yout[key]
                changed = True
        elif key == "text" and new.get("output_type") == "stream":
            yout[key] = Text(joined(raw[key]))
            changed = True
        else:
            yout[key] = raw[key]
            changed = True
    return changed
