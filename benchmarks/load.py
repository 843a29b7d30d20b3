"""The load generator: the same client code against every server (one role per process).

    python benchmarks/load.py w1-send URL OUT       # the automerge-paper trace, as fast as possible
    python benchmarks/load.py w1-recv URL LEN OUT   # until the text has LEN characters
    python benchmarks/load.py w2-write URL N RATE OUT
    python benchmarks/load.py w2-read URL COUNT N OUT   # COUNT readers in this process
    python benchmarks/load.py join URL OUT          # connect → synced time
Each writes a small JSON file of timestamps (time.time(), shared by processes on one host).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import time
from pathlib import Path

import aiohttp
from pycrdt import Doc, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitrtc import protocol  # noqa: E402  (frame helpers only; no server code)

TRACE = ROOT.parent / "shared" / "corpus" / "traces" / "automerge-paper.json.gz"


class Client:
    """A minimal y-websocket client: sync, then apply whatever arrives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.doc = Doc()
        self.text = self.doc.get("source", type=Text)
        self.synced = asyncio.Event()
        self.updates = 0
        self.on_update = None

    async def run(self, http: aiohttp.ClientSession, ready: asyncio.Event | None = None) -> None:
        async with http.ws_connect(self.url, max_msg_size=0, compress=0) as ws:
            self.ws = ws
            await ws.send_bytes(protocol.sync_step1(self.doc))
            if ready is not None:
                ready.set()
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    continue
                m = protocol.parse(msg.data)
                if m.type is not protocol.MessageType.SYNC:
                    continue
                if m.sync is protocol.SyncType.STEP1:
                    await ws.send_bytes(protocol.sync_step2(self.doc.get_update(m.payload)))
                    continue
                self.doc.apply_update(m.payload)
                if m.sync is protocol.SyncType.STEP2:
                    self.synced.set()
                else:
                    self.updates += 1
                    if self.on_update is not None:
                        self.on_update(self)


def trace_updates() -> list[bytes]:
    """Every edit of the trace as its own Yjs update (ASCII trace: byte = code point)."""
    data = json.loads(gzip.open(TRACE).read())
    doc = Doc(client_id=987654321)
    text = doc.get("source", type=Text)
    out: list[bytes] = []
    doc.observe(lambda e: out.append(e.update))
    for txn in data["txns"]:
        for pos, ndel, ins in txn["patches"]:
            with doc.transaction():
                if ndel:
                    del text[pos:pos + ndel]
                if ins:
                    text.insert(pos, ins)
    return out


async def w1_send(url: str, out: str) -> None:
    updates = trace_updates()
    async with aiohttp.ClientSession() as http:
        client = Client(url)
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        start = time.time()
        for update in updates:
            await client.ws.send_bytes(protocol.sync_update(update))
        sent = time.time()
        Path(out).write_text(json.dumps({"start": start, "sent": sent, "count": len(updates)}))
        await asyncio.sleep(3600)
        task.cancel()


async def w1_recv(url: str, length: str, out: str) -> None:
    want = int(length)
    end = json.loads(gzip.open(TRACE).read())["endContent"]
    total = len(json.loads(gzip.open(TRACE).read())["txns"])
    done = asyncio.Event()

    def check(client: Client) -> None:
        if client.updates >= total and len(client.text) == want and str(client.text) == end:
            done.set()

    async with aiohttp.ClientSession() as http:
        client = Client(url)
        client.on_update = check
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        Path(out + ".ready").write_text("1")
        await done.wait()
        Path(out).write_text(json.dumps({"done": time.time(), "updates": client.updates,
                                         "text": str(client.text)}))
        task.cancel()


async def w2_write(url: str, n: str, rate: str, out: str) -> None:
    count, per_second = int(n), float(rate)
    async with aiohttp.ClientSession() as http:
        client = Client(url)
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        while not Path(out + ".go").exists():
            await asyncio.sleep(0.05)
        outgoing: list[bytes] = []
        client.doc.observe(lambda e: outgoing.append(e.update))
        sent = []
        for i in range(count):
            client.text.insert(len(client.text), "x")
            sent.append(time.time())
            await client.ws.send_bytes(protocol.sync_update(outgoing.pop()))
            await asyncio.sleep(1 / per_second)
        Path(out).write_text(json.dumps({"sent": sent}))
        # Stay connected until killed: closing with the server's echoes unread makes the
        # kernel reset the connection, and a server still behind would lose the updates
        # it had not read yet (pycrdt-websocket echoes every update to its sender).
        await asyncio.sleep(3600)
        task.cancel()


async def w2_read(url: str, readers: str, n: str, out: str) -> None:
    count, want = int(readers), int(n)
    times: list[list[float]] = [[] for _ in range(count)]
    async with aiohttp.ClientSession() as http:
        clients = []
        for i in range(count):
            client = Client(url)
            client.on_update = lambda c, i=i: times[i].append(time.time())
            clients.append(client)
        tasks = [asyncio.ensure_future(c.run(http)) for c in clients]
        await asyncio.gather(*(c.synced.wait() for c in clients))
        Path(out + ".ready").write_text("1")
        deadline = time.time() + 120
        while any(len(t) < want for t in times) and time.time() < deadline:
            await asyncio.sleep(0.05)
        Path(out).write_text(json.dumps({"received": times}))
        for task in tasks:
            task.cancel()


async def join(url: str, out: str) -> None:
    async with aiohttp.ClientSession() as http:
        client = Client(url)
        start = time.time()
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        Path(out).write_text(json.dumps({"start": start, "synced": time.time(), "length": len(client.text)}))
        task.cancel()


async def w4_seed(url: str, out: str) -> None:
    """Give a peer server (which starts empty) the trace's final document."""
    end = json.loads(gzip.open(TRACE).read())["endContent"]
    async with aiohttp.ClientSession() as http:
        client = Client(url)
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        update_doc = Doc()
        update_doc.get("source", type=Text).insert(0, end)
        await client.ws.send_bytes(protocol.sync_update(update_doc.get_update()))
        probe = Client(url)  # a second client confirms the server has it
        probe_task = asyncio.ensure_future(probe.run(http))
        await probe.synced.wait()
        while len(probe.text) != len(end):
            await asyncio.sleep(0.05)
        Path(out).write_text("1")
        task.cancel()
        probe_task.cancel()


ROLES = {"w1-send": w1_send, "w1-recv": w1_recv, "w2-write": w2_write, "w2-read": w2_read, "join": join, "w4-seed": w4_seed}

if __name__ == "__main__":
    asyncio.run(ROLES[sys.argv[1]](*sys.argv[2:]))
