"""The `validate` service: a server-side check of a CSV table that everyone sees.

Ops (on a `csv` room's request channel):

- `check` (anyone): checks the table (every row has the header's number of columns; a
  column whose values are mostly numbers has only numbers) and pushes the result to
  every participant of the room as the event `validate.result`; also kept in the
  session's state (`last`), so `last` answers without checking again.
- `last` (anyone): the last result of this file, or null.
- `trim` (editors): strips spaces around every cell's value, as the service's own change
  (origin `ServiceEdit("validate")`: written back, credited to nobody).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pycrdt

from gitrtc.plugins import Op, Service, ServiceCall

from .kind import rows_of
from .static import STATIC


def check_rows(rows: list[tuple[str, ...]]) -> dict[str, Any]:
    """The problems of a table: `{ok, rows, columns, problems: [{row, column, problem}]}`."""
    problems: list[dict[str, Any]] = []
    width = len(rows[0]) if rows else 0
    for n, row in enumerate(rows[1:], start=2):
        if row and len(row) != width:
            problems.append({"row": n, "column": None, "problem": f"{len(row)} columns, the header has {width}"})
    for col in range(width):
        values = [(n, r[col].strip()) for n, r in enumerate(rows[1:], start=2) if col < len(r) and r[col].strip()]
        numeric = [n for n, v in values if _is_number(v)]
        if values and len(numeric) * 2 > len(values):
            for n, v in values:
                if not _is_number(v):
                    problems.append({"row": n, "column": col + 1, "problem": f"{v[:40]!r} is not a number"})
    return {"ok": not problems, "rows": len(rows), "columns": width, "problems": problems[:200]}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ValidateService(Service):
    """Checks CSV tables on the server (see the module docstring)."""

    name = "validate"
    kinds = frozenset({"csv"})
    static = STATIC

    def ops(self) -> Mapping[str, Op]:
        return {"check": Op(self.check, "viewer"), "last": Op(self.last, "viewer"), "trim": Op(self.trim, "editor")}

    async def check(self, call: ServiceCall) -> dict[str, Any]:
        result = check_rows(rows_of(call.doc))
        result.update(path=call.path, by=call.participant.name, at=time.time())
        state = await call.state()
        state[call.path] = result
        await call.save_state()
        call.broadcast("result", result)
        return result

    async def last(self, call: ServiceCall) -> dict[str, Any] | None:
        state = await call.state()
        last: dict[str, Any] | None = state.get(call.path)
        return last

    async def trim(self, call: ServiceCall) -> dict[str, Any]:
        rows = call.doc.get("rows", type=pycrdt.Array)
        cells = 0

        def strip() -> None:
            nonlocal cells
            for row in rows:
                for key, value in list(row.items()):
                    if isinstance(value, str) and value != value.strip():
                        row[key] = value.strip()
                        cells += 1

        call.edit(strip)
        return {"trimmed": cells}
