"""`Room.receive`'s CPU per update, in-process, for W1's updates (the automerge-paper trace,
one update per edit: typing and deleting in one text), with and without the update check
(`validation.DocumentGuard`). No network, no store: far less noisy than `bench.py`'s W1
on a busy machine. Not part of the tests.

    .venv/bin/python benchmarks/receive.py [--updates 40000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from pycrdt import Doc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitrtc import protocol  # noqa: E402
from gitrtc.documents import open_codec  # noqa: E402
from gitrtc.origins import Participant  # noqa: E402
from gitrtc.rooms import Connection, Room  # noqa: E402
from gitrtc.validation import DocumentGuard  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from load import trace_updates  # noqa: E402  (the W1 trace's updates, as bench.py's load sends them)
from validation import _Sink  # noqa: E402  (a transport that drops what it is sent)


def trace_frames(limit: int) -> list[bytes]:
    """The first `limit` edits of the trace as W1's client sends them (one update frame each)."""
    return [protocol.sync_update(update) for update in trace_updates()[:limit]]


async def per_update(frames: list[bytes], guarded: bool) -> float:
    """CPU µs per `Room.receive` of `frames` into a fresh room."""
    doc: Doc = Doc()
    room = Room("r", "t.txt", "text", doc, None)
    if guarded:
        room.guard = DocumentGuard(doc, open_codec("t.txt", b""), "t.txt")
    conn = Connection(_Sink(), Participant("a", "", "editor"))
    room.connections.add(conn)
    receive = room.receive
    started = time.process_time()
    for frame in frames:
        await receive(conn, frame)
    return (time.process_time() - started) / len(frames) * 1e6


async def run(frames: list[bytes], repeat: int) -> tuple[float, float]:
    plain = guarded = float("inf")
    for _ in range(repeat):
        plain = min(plain, await per_update(frames, False))
        guarded = min(guarded, await per_update(frames, True))
    return plain, guarded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts")
    args = parser.parse_args()
    frames = trace_frames(args.updates)
    plain, guarded = asyncio.run(run(frames, args.repeat))
    print(f"{len(frames)} updates of the automerge-paper trace, Room.receive CPU per update (no store):")
    print(f"  unchecked {plain:.1f} µs, checked {guarded:.1f} µs (the check: +{guarded - plain:.1f} µs)")


if __name__ == "__main__":
    main()
