"""What checking clients' updates (`validation.DocumentGuard`) costs: per keystroke, per
structural edit, and once per room load. Not part of the tests.

    .venv/bin/python benchmarks/validation.py [NOTEBOOK]   # default: the largest corpus notebook
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from pycrdt import Array, Doc

from gitrtc import protocol
from gitrtc.documents import open_codec
from gitrtc.origins import DiskLoad, Participant
from gitrtc.rooms import Connection, Room
from gitrtc.validation import DocumentGuard

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


class _Sink:
    def try_send(self, frames: list[bytes]) -> bool:
        return True

    async def send_bytes(self, data: bytes) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else max(CORPUS.rglob("*.ipynb"), key=lambda p: p.stat().st_size)
    codec = open_codec("nb.ipynb", path.read_bytes())
    server = Doc()
    codec.load_into(server, DiskLoad("nb.ipynb"))
    client = Doc()
    client.apply_update(server.get_update())
    source = client.get("cells", type=Array)[min(3, len(client.get("cells", type=Array)) - 1)]["source"]
    frames: list[bytes] = []
    subscription = client.observe(lambda event: frames.append(protocol.sync_update(event.update)))
    for _ in range(3000):
        source.insert(len(source), "x")
    client.unobserve(subscription)

    def guard_for(doc: Doc) -> DocumentGuard:
        guard = DocumentGuard(doc, codec, "nb.ipynb")
        guard.learn(doc.get_update())
        return guard

    async def keystrokes(guarded: bool) -> float:
        doc = Doc()
        doc.apply_update(server.get_update())
        room = Room("r", "nb.ipynb", "notebook", doc, None)
        if guarded:
            room.guard = guard_for(doc)
        conn = Connection(_Sink(), Participant("a", "", "editor"))
        room.connections.add(conn)
        if guarded:  # the first growth measures the document once
            await room.receive(conn, frames[0])
        started = time.process_time()
        for frame in frames[1:]:
            await room.receive(conn, frame)
        return (time.process_time() - started) / (len(frames) - 1) * 1e6

    async def compare() -> tuple[float, float]:
        plain = guarded = float("inf")
        for _ in range(5):
            plain = min(plain, await keystrokes(False))
            guarded = min(guarded, await keystrokes(True))
        return plain, guarded

    plain, guarded = asyncio.run(compare())
    started = time.process_time()
    guard = guard_for(server)
    load = (time.process_time() - started) * 1e3
    state = client.get_state()
    client.get("cells", type=Array)[0]["metadata"]["tag"] = "x"
    update = client.get_update(state)
    started = time.process_time()
    guard.check(update)
    structural = (time.process_time() - started) * 1e3
    print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")
    print(f"Room.receive per keystroke, CPU (no store): {plain:.1f} µs unchecked, {guarded:.1f} µs checked")
    print(f"a structural edit's check: {structural:.1f} ms; indexing the document at load: {load:.1f} ms")


if __name__ == "__main__":
    main()
