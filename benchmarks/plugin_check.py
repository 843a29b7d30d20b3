"""The check of a plugin kind's structural update: a cell edit of a gitrtc-csv table,
per table size, as gitrtc checks it (`KindCodec.validate`: the plugin's own copy caught
up by the change, `validate_changes` told where it changed) beside the whole-document
check a kind without `validate_changes` gets, in the same run. In-process, no network.
Not part of the tests.

    .venv/bin/python benchmarks/plugin_check.py [--rows 1000,5000,10000] [--edits 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pycrdt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "gitrtc-csv"))

from gitrtc_csv.kind import CsvKind  # noqa: E402

from gitrtc.plugins import KindLimits  # noqa: E402
from gitrtc.plugins.codec import KindCodec  # noqa: E402
from gitrtc.validation import DocumentGuard  # noqa: E402


class Patient(CsvKind):
    """The example kind with a time limit that lets a large table load on a busy machine."""

    limits = KindLimits(seconds=10.0, max_bytes=64 * 1024 * 1024)


class WholeTable(Patient):
    """The same kind checking the whole table on every structural update (the default)."""

    def validate_changes(self, doc: pycrdt.Doc[Any], changes: Any) -> str | None:
        return self.validate(doc)


def cell_edit_ms(kind: CsvKind, rows: int, edits: int) -> float:
    """Median milliseconds `DocumentGuard.check` takes for one cell edit."""
    data = ("a,b,c,d\r\n" + "".join(f"{i},name {i},city {i},{i * 3}\r\n" for i in range(rows))).encode()
    codec = KindCodec(kind, "t.csv", data, 1 << 26)
    server: pycrdt.Doc[Any] = pycrdt.Doc()
    codec.load_into(server, None)
    guard = DocumentGuard(server, codec, "t.csv")
    guard.learn(server.get_update())
    client: pycrdt.Doc[Any] = pycrdt.Doc()
    client.apply_update(server.get_update())
    table = client.get("rows", type=pycrdt.Array)
    times = []
    for k in range(edits + 1):
        before = client.get_state()
        table[1 + k % rows]["1"] = f"edited {k}"
        update = client.get_update(before)
        start = time.perf_counter()
        checked = guard.check(update)
        took = time.perf_counter() - start
        server.apply_update(update)
        guard.accept(checked)
        if k:  # the first check makes the plugin's copy
            times.append(took * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,5000,10000")
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    print(f"{'rows':>7} {'changed places':>16} {'whole table':>13}   (ms per cell edit, median)")
    for rows in (int(n) for n in args.rows.split(",")):
        changed = cell_edit_ms(Patient(), rows, args.edits)
        whole = cell_edit_ms(WholeTable(), rows, args.edits)
        print(f"{rows:>7} {changed:>16.2f} {whole:>13.1f}")


if __name__ == "__main__":
    main()
