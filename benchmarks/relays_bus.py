"""The relays' bus alone (#21), in one process: CPU per entry of the old `out` path (XADD
with replies + two blocking XREAD readers, as relays read the `out` stream) against the
new one (`bus.Publisher`: PUBLISH with replies off + two `bus.Subscriber`s), one entry per
millisecond, against a fresh `redis-server --appendonly yes`.

    python benchmarks/relays_bus.py [--entries N] [--rounds R]

Prints this process' CPU (writer and readers together, timers included) and
redis-server's, per entry. In-process CPU time moves less with the machine's load than
the end-to-end runs of `relays.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import cpu_seconds, free_port, wait_for  # noqa: E402

from gitrtc.relay import bus  # noqa: E402

ENTRY: bus.Fields = {"t": "b", "r": "room", "f": b"x" * 30, "o": "abc"}


async def streams(url: str, redis_pid: int, n: int) -> tuple[float, float]:
    """XADD each entry (waiting for its reply), two readers XREAD it."""
    writer = bus.Writer(bus.Link(url), "bench", print)
    got = [0, 0]

    async def reader(i: int) -> None:
        link, after = bus.Link(url), b"$"
        while got[i] < n:
            for entry_id, _entry in await bus.read(link, "bench", after):
                after = entry_id
                got[i] += 1

    tasks = [asyncio.ensure_future(reader(i)) for i in range(2)]
    await asyncio.sleep(0.3)  # both readers wait
    cpu0, redis0 = time.process_time(), cpu_seconds(redis_pid)
    for i in range(n):
        writer.add({**ENTRY, "n": i})
        await writer.drain()
        await asyncio.sleep(0.001)
    while min(got) < n:
        await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()
    return time.process_time() - cpu0, cpu_seconds(redis_pid) - redis0


async def channels(url: str, redis_pid: int, n: int) -> tuple[float, float]:
    """PUBLISH each entry (replies off), two subscribers receive it."""
    publisher = bus.Publisher(bus.Link(url), print)
    got = [0, 0]
    for i in range(2):

        def on(messages: list[bus.Message], i: int = i) -> None:
            got[i] += sum(1 for _channel, data in messages if data is not None)

        subscriber = await bus.Subscriber.open(url, on)
        await subscriber.subscribe(b"bench")
    cpu0, redis0 = time.process_time(), cpu_seconds(redis_pid)
    for i in range(n):
        publisher.add((b"bench", {**ENTRY, "n": i}))
        await asyncio.sleep(0.001)
    while min(got) < n:
        await asyncio.sleep(0.01)
    return time.process_time() - cpu0, cpu_seconds(redis_pid) - redis0


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder, port = tempfile.mkdtemp(prefix="bench-bus-"), free_port()
    persist = ("--dir", folder, "--appendonly", "yes", "--save", "")
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1", *persist],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _listening(port), 20, "redis-server")
        for _ in range(args.rounds):
            for name, run in (("streams (old)", streams), ("channels (new)", channels)):
                mine, theirs = asyncio.run(run(url, server.pid, args.entries))
                per = 1e6 / args.entries
                print(f"{name}: this process {per * mine:.0f} µs/entry, redis-server {per * theirs:.0f} µs/entry")
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
