"""What a kernel's image output costs the keystrokes stored after it: the store thread's
CPU per batch and the time a keystroke waits to be durable when it is appended right
behind a 270 KB row. Not part of the tests.

    PYTHONPATH=. .venv/bin/python benchmarks/store_rows.py [--images 20]

A real `Store` in a temporary folder. Per round: one image-sized update (200 KB of random
bytes in base64, 270 KB: the kernels benchmark's) into the notebook's room, then at once
a keystroke into another room; the keystroke's batch waits for the image's (batches
commit one at a time, in order), so its append → durable time is the image batch's cost
plus its own. Then the rounds flush and a quiet second lets the checkpoint thread work.
Figures: the store thread's CPU per image batch (`time.thread_time` around
`Store._commit`), the keystroke's append → durable p50/max, and the checkpoint thread's
CPU in all (/proc). Run it with PYTHONPATH pointing at another checkout to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: point it at another checkout to compare

from gitrtc.store import Store  # noqa: E402


async def bench(images: int) -> dict[str, Any]:
    rng = random.Random(15)
    payloads = [base64.b64encode(rng.randbytes(200_000)) for _ in range(images)]
    store_cpu: list[float] = []
    commit = Store._commit

    def timed_commit(self: Store, batch: Any) -> Any:
        start = time.thread_time()
        try:
            return commit(self, batch)
        finally:
            if any(len(update) > 100_000 for _room, update in batch.updates):
                store_cpu.append((time.thread_time() - start) * 1000)

    Store._commit = timed_commit  # type: ignore[method-assign]
    waits: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store.sqlite")
        await store.open()
        try:
            store.append("notes", b"k")
            store.append("nb", b"i")  # both rooms known: an image goes through the journal
            await store.flush()
            for payload in payloads:
                store.append("nb", payload)
                sent = time.perf_counter()
                store.append("notes", b"k", None, lambda sent=sent: waits.append((time.perf_counter() - sent) * 1000))
                await store.flush()
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # the checkpoint thread's turn (compression, on a branch that defers it)
            checkpoint_cpu = _thread_cpu(store._checkpoints)
        finally:
            await store.close()
    return {
        "store CPU per image batch, p50 ms": statistics.median(store_cpu),
        "store CPU per image batch, max ms": max(store_cpu),
        "keystroke behind an image, append → durable p50 ms": statistics.median(waits),
        "keystroke behind an image, append → durable max ms": max(waits),
        "checkpoint thread CPU in all, ms": checkpoint_cpu,
    }


def _thread_cpu(worker: Any) -> float:
    """CPU ms of a `Worker`'s thread so far (Linux: /proc), 0 if unknown."""
    import os

    thread = getattr(worker, "_thread", None)
    tid = getattr(thread, "native_id", None)
    if tid is None:
        return 0.0
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    figures = asyncio.run(bench(args.images))
    for name, value in figures.items():
        print(f"{name}: {value:.2f}")


if __name__ == "__main__":
    main()
