"""A room's CPU per presence heartbeat, in-process: five connections each send their
awareness state again with the next clock (what y-websocket clients send every 15 s, W3's
every 3 s), each forwarded to the four others, with the heartbeat shortcut
(`awareness.Heartbeat`) and without it (the full parse and checks). No network, no store.
Not part of the tests.

    .venv/bin/python benchmarks/presence.py [--messages 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from pycrdt import Doc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitrtc import protocol  # noqa: E402
from gitrtc.origins import Participant  # noqa: E402
from gitrtc.rooms import Connection, Room  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from validation import _Sink  # noqa: E402  (a transport that drops what it is sent)

CLIENTS = 5


def heartbeat(client_id: int, clock: int, state: dict[str, object]) -> bytes:
    """One client's awareness frame, as y-websocket sends it."""
    raw = json.dumps(state, separators=(",", ":")).encode()
    payload = b"\x01" + b"".join(protocol.write_var_uint(v) for v in (client_id, clock, len(raw))) + raw
    return protocol.awareness_frame(payload)


async def per_message(rounds: int, shortcut: bool) -> float:
    """CPU µs per heartbeat received and forwarded."""
    room = Room("r", "t.md", "text", Doc(), None)
    conns = [Connection(_Sink(), Participant(f"p{i}", "", "editor")) for i in range(CLIENTS)]
    for conn in conns:
        await room.join(conn)
    states = [{"user": {"name": f"Person {i}", "color": "#30bced"}} for i in range(CLIENTS)]
    frames = [[heartbeat(1000 + i, k, states[i]) for i in range(CLIENTS)] for k in range(rounds)]
    started = time.process_time()
    for row in frames:
        for conn, frame in zip(conns, row, strict=True):
            if not shortcut:
                conn.heartbeat = None
            await room.receive(conn, frame)
        room._flush_posted()
    return (time.process_time() - started) / (rounds * CLIENTS) * 1e6


async def run(rounds: int, repeat: int) -> tuple[float, float]:
    fast = full = float("inf")
    for _ in range(repeat):
        fast = min(fast, await per_message(rounds, True))
        full = min(full, await per_message(rounds, False))
    return fast, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts")
    args = parser.parse_args()
    fast, full = asyncio.run(run(max(1, args.messages // CLIENTS), args.repeat))
    print(f"presence heartbeats, room of {CLIENTS}, CPU per message received and forwarded (no store):")
    print(f"  with the shortcut {fast:.1f} µs, full checks {full:.1f} µs")


if __name__ == "__main__":
    main()
