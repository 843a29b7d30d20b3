"""The `csv` document kind: rows as a shared `Array` of `Map`s (column index → value).

A row is a map, so people editing different cells of one row, or different rows, merge
cell by cell (two people typing into the same cell: the last one wins). Untouched rows
are written back exactly as they were read (quoting, delimiter, line endings), so an
untouched file is byte-identical and an edit changes its own line only.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import pycrdt

from gitrtc.plugins import Change, DocumentKind, KindLimits, Merged

from . import table
from .static import STATIC

MAX_COLUMNS = 10_000


def row_values(row: Any) -> tuple[str, ...]:
    """A row map's values in column order (a missing column reads as empty)."""
    cells = {int(k): str(v) for k, v in row.items() if str(k).isdigit()}
    return tuple(cells.get(i, "") for i in range(max(cells, default=-1) + 1))


def rows_of(doc: pycrdt.Doc[Any]) -> list[tuple[str, ...]]:
    """The document's table."""
    return [row_values(row) for row in _rows_json(doc)]


def _rows_json(doc: pycrdt.Doc[Any]) -> list[Any]:
    """The `rows` array as plain values, read through pycrdt's JSON export (one call into
    yrs; ten times faster than walking the rows' maps from Python on a large table)."""
    value = json.loads(str(doc.get("rows", type=pycrdt.Array)))
    return value if isinstance(value, list) else []


def _ymap(values: tuple[str, ...]) -> pycrdt.Map[Any]:
    return pycrdt.Map({str(i): v for i, v in enumerate(values)})


class CsvKind(DocumentKind):
    """CSV files (`*.csv`, `*.tsv`) as a table."""

    name = "csv"
    patterns = ("*.csv", "*.tsv")
    roots: ClassVar[dict[str, type]] = {"rows": pycrdt.Array}
    static = STATIC
    limits = KindLimits(seconds=5.0, max_bytes=8 * 1024 * 1024)

    def sniff(self, path: str, data: bytes) -> bool:
        try:
            table.decode(data)
        except ValueError:
            return False
        return True

    def _records(self, data: bytes) -> tuple[list[table.Record], table.Style]:
        text, bom = table.decode(data)
        style = table.style_of(text, bom)
        return table.parse(text, style), style

    def load(self, data: bytes, doc: pycrdt.Doc[Any]) -> None:
        records, _style = self._records(data)
        rows = doc.get("rows", type=pycrdt.Array)
        rows.extend([_ymap(r.values) for r in records])

    def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
        text, bom = table.decode(original)
        style = table.style_of(text, bom)
        return table.render(rows_of(doc), text, style).encode("utf-8")

    def update(self, doc: pycrdt.Doc[Any], data: bytes, original: bytes) -> None:
        """Rows added, removed or changed (cell by cell), as a row diff says."""
        new = [r.values for r in self._records(data)[0]]
        rows = doc.get("rows", type=pycrdt.Array)
        old = rows_of(doc)
        ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in reversed(ops):
            if tag == "equal":
                continue
            if tag == "replace" and i2 - i1 == j2 - j1:
                for k in range(i2 - i1):
                    _set_row(rows[i1 + k], old[i1 + k], new[j1 + k])
                continue
            if i2 > i1:
                del rows[i1:i2]
            for k, values in enumerate(new[j1:j2]):
                rows.insert(i1 + k, _ymap(values))

    def merge3(self, base: bytes, ours: bytes, theirs: bytes) -> Merged:
        """Cell by cell: both sides' changes applied to the base table as CRDT updates
        (so rows added on both sides are both kept); a conflict only where both changed
        the same cell (or one changed a row the other removed) differently."""
        old = [r.values for r in self._records(base)[0]]
        start: pycrdt.Doc[Any] = pycrdt.Doc()
        self.load(base, start)
        loaded = start.get_update()
        sides = []
        for data in (ours, theirs):
            doc: pycrdt.Doc[Any] = pycrdt.Doc()
            doc.apply_update(loaded)
            state = doc.get_state()
            self.update(doc, data, base)
            sides.append((doc.get_update(state), _touched(old, [r.values for r in self._records(data)[0]])))
        merged: pycrdt.Doc[Any] = pycrdt.Doc()
        merged.apply_update(loaded)
        for update, _ in sides:
            merged.apply_update(update)
        text, bom = table.decode(ours)
        rendered = table.render(rows_of(merged), text, table.style_of(text, bom), (table.decode(theirs)[0],))
        return Merged(rendered.encode("utf-8"), _conflicts(sides[0][1], sides[1][1]))

    def validate(self, doc: pycrdt.Doc[Any]) -> str | None:
        """Rows must be maps of column numbers to strings."""
        for n, row in enumerate(_rows_json(doc)):
            problem = _row_problem(n, row)
            if problem:
                return problem
        return None

    def validate_changes(self, doc: pycrdt.Doc[Any], changes: Sequence[Change]) -> str | None:
        """`validate` of the rows the update inserted or changed, the others untouched."""
        rows = doc.get("rows", type=pycrdt.Array)
        for change in changes:
            if change.path == ():
                touched = change.inserted
            elif len(change.path) == 1 and isinstance(change.path[0], int):
                touched = (change.path[0],)
            else:  # something inside a cell: a cell is text, never a shared type
                return f"row {int(change.path[0]) + 1}: cells are column numbers (under {MAX_COLUMNS}) → text"
            for n in touched:
                problem = _row_problem(n, json.loads(str(rows[n])) if isinstance(rows[n], pycrdt.Map) else None)
                if problem:
                    return problem
        return None


def _row_problem(n: int, row: Any) -> str | None:
    """Why row `n` (0-based, as plain values) is not a map of column numbers to text."""
    if not isinstance(row, dict):
        return f"row {n + 1} is not a map of cells"
    for key, value in row.items():
        if not (key.isdigit() and int(key) < MAX_COLUMNS) or not isinstance(value, str):
            return f"row {n + 1}: cells are column numbers (under {MAX_COLUMNS}) → text"
    return None


def _set_row(row: Any, old: tuple[str, ...], new: tuple[str, ...]) -> None:
    for i in range(max(len(old), len(new))):
        if i >= len(new):
            del row[str(i)]
        elif i >= len(old) or old[i] != new[i]:
            row[str(i)] = new[i]


def _touched(old: list[tuple[str, ...]], new: list[tuple[str, ...]]) -> dict[int, dict[int, str] | None]:
    """Base rows a change touches: row → the cells it sets (column → value), or None
    for a row it removes or rewrites whole."""
    out: dict[int, dict[int, str] | None] = {}
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                a, b = old[i1 + k], new[j1 + k]
                width = max(len(a), len(b))
                a, b = a + ("",) * (width - len(a)), b + ("",) * (width - len(b))
                out[i1 + k] = {c: b[c] for c in range(width) if a[c] != b[c]}
            continue
        for i in range(i1, i2):
            out[i] = None
    return out


def _conflicts(mine: dict[int, dict[int, str] | None], yours: dict[int, dict[int, str] | None]) -> bool:
    """Whether both sides touched a base row in ways that do not combine (conservative:
    a row removed or rewritten whole on both sides counts)."""
    for row in mine.keys() & yours.keys():
        a, b = mine[row], yours[row]
        if a is None or b is None or any(a[c] != b[c] for c in a.keys() & b.keys()):
            return True
    return False
