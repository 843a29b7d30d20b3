"""Write-back cost of a notebook while a cell gets images: the event loop's part and the
disk thread's part of `DocumentGuard.render_later`, per image appended. Not part of the tests.

    PYTHONPATH=. .venv/bin/python benchmarks/notebook_render.py [--images 10]

Two notebooks: the kernels benchmark's small one and pdsh's K-Means chapter (61 cells,
1.7 MB). Ten 200 KB images (270 KB of base64 each) are appended one by one to a code cell,
each in its own transaction, as the shared kernel writes them; after each, the render is
timed in its two parts and its bytes are checked against the full render. Medians of the
images. Run it with PYTHONPATH pointing at another checkout to compare (a checkout
without `documents/notebookcache.py` renders the whole notebook every time); on one
with it, `--full` renders without the seam too.

`--outputs N` (300 by default; 0: not run) then appends N small outputs (a progress
line's `display_data`) one by one to one cell of the K-Means notebook, checked against
nbformat's schema as a notebook valid at the start is, and gives the thread's part (the
check, then the formatting) over the first ten and the last ten: a check of the whole
changed cell grows with its outputs, a check of the changed outputs does not.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: point it at another checkout to compare

import pycrdt  # noqa: E402

from gitrtc.documents.notebook import NotebookCodec  # noqa: E402
from gitrtc.validation import DocumentGuard  # noqa: E402

SMALL = json.dumps(
    {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [], "source": "x"},
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "typing here: "},
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    },
    indent=1,
).encode()
KMEANS = ROOT / "fixtures" / "corpus" / "notebooks" / "pdsh" / "05.11-K-Means.ipynb"


def measure(data: bytes, images: int, seam: bool) -> tuple[float, float, int]:
    """Median ms of the loop's and the thread's part of a render after each image, and the final size."""
    codec = NotebookCodec("nb.ipynb", data, 64 << 20)
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    codec.load_into(doc, None)
    guard = DocumentGuard(doc, codec, "nb.ipynb")
    renderer = getattr(guard, "renderer", None)
    if not seam and renderer is not None:
        renderer.close()
        guard.renderer = None
    cells = doc.get("cells", type=pycrdt.Array)
    target = next(c for c in cells if isinstance(c.get("outputs"), pycrdt.Array))
    guard.render()
    loop, thread, out = [], [], b""
    for k in range(images):
        png = base64.b64encode(os.urandom(200_000)).decode()
        bundle = {"image/png": png, "text/plain": f"<image {k}>"}
        output = {"output_type": "display_data", "data": bundle, "metadata": {}}
        with doc.transaction():
            target["outputs"].append(pycrdt.Map(output))
        guard.version += 1  # a structural change, as the guard counts a server edit's
        t0 = time.perf_counter()
        finish = guard.render_later()
        t1 = time.perf_counter()
        out = finish()
        t2 = time.perf_counter()
        loop.append(1000 * (t1 - t0))
        thread.append(1000 * (t2 - t1))
        if out != codec.dump(doc):
            raise AssertionError("the render differs from the full render")
    return statistics.median(loop), statistics.median(thread), len(out)


def measure_outputs(data: bytes, outputs: int) -> tuple[float, float]:
    """Mean ms of the thread's part of a render after each of the first ten and the last
    ten of `outputs` small outputs appended to one cell."""
    codec = NotebookCodec("nb.ipynb", data, 64 << 20)
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    codec.load_into(doc, None)
    guard = DocumentGuard(doc, codec, "nb.ipynb")
    guard.strict = True  # nbformat's schema too
    cells = doc.get("cells", type=pycrdt.Array)
    target = next(c for c in cells if isinstance(c.get("outputs"), pycrdt.Array))
    guard.render()
    thread = []
    for k in range(outputs):
        bundle = {"text/plain": f"step {k}", "text/html": f"<b>step {k}</b>"}
        with doc.transaction():
            target["outputs"].append(pycrdt.Map({"output_type": "display_data", "data": bundle, "metadata": {}}))
        guard.version += 1
        finish = guard.render_later()
        t1 = time.perf_counter()
        finish()
        thread.append(1000 * (time.perf_counter() - t1))
    return statistics.mean(thread[:10]), statistics.mean(thread[-10:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="also render without the seam")
    parser.add_argument("--outputs", type=int, default=300, help="small outputs appended to one cell (0: none)")
    args = parser.parse_args()
    import gitrtc

    print(f"load average {os.getloadavg()[0]:.1f}; gitrtc from {Path(gitrtc.__file__).parent}")
    for label, data in (("2-cell notebook", SMALL), ("K-Means, 61 cells", KMEANS.read_bytes())):
        for seam in (False, True) if args.full else (True,):
            loop, thread, size = measure(data, args.images, seam)
            arm = "with the seam" if seam and hasattr(DocumentGuard, "_file_problem") else "full render"
            print(f"{label:18} {arm:14} loop {loop:6.1f} ms  thread {thread:6.1f} ms  (final {size / 1e6:.1f} MB)")
    if args.outputs >= 20:
        first, last = measure_outputs(KMEANS.read_bytes(), args.outputs)
        label = f"K-Means, {args.outputs} small outputs into one cell"
        print(f"{label}: thread {first:.2f} ms (first 10) → {last:.2f} ms (last 10)")


if __name__ == "__main__":
    main()
