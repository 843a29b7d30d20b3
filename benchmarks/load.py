"""The load generator: the same client code against every server (one role per process).

    python benchmarks/load.py w1-send URL OUT       # the automerge-paper trace, as fast as possible
    python benchmarks/load.py w1-recv URL LEN OUT   # until the text has LEN characters
    python benchmarks/load.py w2-write URL N RATE OUT
    python benchmarks/load.py w2-read URL COUNT N OUT [count-only]   # COUNT readers in this process
    python benchmarks/load.py join URL OUT          # connect → synced time
    python benchmarks/load.py w4-seed URL OUT
    python benchmarks/load.py w3 PLAN OUT           # this process's share of W3's clients
    python benchmarks/load.py w5-seed URL NOTEBOOK OUT
    python benchmarks/load.py w5 edit|struct|kernel URL ARG SECONDS CELLS OUT
    python benchmarks/load.py w6-join URL OUT       # retry until the server is back, then sync
    python benchmarks/load.py w7-write URL PASTE RATE SECONDS OUT
    python benchmarks/load.py w7-stuck URL OUT      # sync, then never read again
Each writes a small JSON file of timestamps (time.time(), shared by processes on one host),
atomically; OUT.ready says it is synced, OUT.go (written by the orchestrator) starts it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import time
from pathlib import Path

import aiohttp
from pycrdt import Array, Doc, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitrtc import protocol  # noqa: E402  (frame helpers and the client; no server code)
from gitrtc.client import RoomClient  # noqa: E402
from tests.corpus import CORPUS  # noqa: E402

TRACE = CORPUS / "traces" / "automerge-paper.json.gz"


class Client(RoomClient):
    """The package's client (`gitrtc/client.py`) as the load generator drives it: nothing
    observed or sent by itself (`send_local=False`: each role sends what it makes), the
    text at hand, and a transaction's updates captured to send or to keep."""

    def __init__(self, url: str, apply: bool = True) -> None:
        super().__init__(url, send_local=False, apply=apply)  # apply=False: W7, see w7_write
        self.text = self.doc.get("source", type=Text)
        self._capturing = False
        self._outgoing: list[bytes] = []
        self.doc.observe(lambda e: self._outgoing.append(e.update) if self._capturing else None)

    def _capture(self, fn) -> list[bytes]:
        """Run `fn` as one local transaction; the updates it made."""
        self._capturing = True
        try:
            with self.doc.transaction():
                fn()
        finally:
            self._capturing = False
        frames, self._outgoing = self._outgoing, []
        return frames

    async def edit(self, fn) -> int:
        """Run `fn` as one local transaction and send its update; how many frames were sent."""
        frames = self._capture(fn)
        for update in frames:
            await self.ws.send_bytes(protocol.sync_update(update))
        return len(frames)

    async def edit_offline(self, fn) -> bytes:
        """Run `fn` as one local transaction and return its update (not sent)."""
        frames = self._capture(fn)
        assert len(frames) == 1
        return frames[0]


def finish(out: str, text: str) -> None:
    """Write a result file atomically (the orchestrator polls for it)."""
    Path(out + ".part").write_text(text)
    Path(out + ".part").replace(out)


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
                    del text[pos : pos + ndel]
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
        finish(out, json.dumps({"start": start, "sent": sent, "count": len(updates)}))
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
        finish(out, json.dumps({"done": time.time(), "updates": client.updates, "text": str(client.text)}))
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
        for _ in range(count):
            client.text.insert(len(client.text), "x")
            sent.append(time.time())
            await client.ws.send_bytes(protocol.sync_update(outgoing.pop()))
            await asyncio.sleep(1 / per_second)
        finish(out, json.dumps({"sent": sent}))
        # Stay connected until killed: closing with the server's echoes unread makes the
        # kernel reset the connection, and a server still behind would lose the updates
        # it had not read yet (pycrdt-websocket echoes every update to its sender).
        await asyncio.sleep(3600)
        task.cancel()


async def w2_read(url: str, readers: str, n: str, out: str, mode: str = "apply") -> None:
    """COUNT readers; mode "count-only" times each update's arrival without applying it."""
    count, want = int(readers), int(n)
    times: list[list[float]] = [[] for _ in range(count)]
    async with aiohttp.ClientSession() as http:
        clients = []
        for i in range(count):
            client = Client(url, apply=mode != "count-only")
            client.on_update = lambda c, i=i: times[i].append(time.time())
            clients.append(client)
        tasks = [asyncio.ensure_future(c.run(http)) for c in clients]
        await asyncio.gather(*(c.synced.wait() for c in clients))
        Path(out + ".ready").write_text("1")
        deadline = time.time() + 120
        while any(len(t) < want for t in times) and time.time() < deadline:
            await asyncio.sleep(0.05)
        finish(out, json.dumps({"received": times}))
        for task in tasks:
            task.cancel()


async def join(url: str, out: str, what: str = "text") -> None:
    """Connect, sync; the time, and the text's length or the notebook's cell count."""
    async with aiohttp.ClientSession() as http:
        client = Client(url)
        start = time.time()
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        synced = time.time()
        size = len(client.text) if what == "text" else len(client.doc.get("cells", type=Array))
        finish(out, json.dumps({"start": start, "synced": synced, "length": size}))
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
        finish(out, "1")
        task.cancel()
        probe_task.cancel()


# -- W3: many rooms ------------------------------------------------------------------


async def heartbeat(client: Client, interval: float, name: str) -> int:
    """Send the client's awareness state at a random moment within `interval` s, then every `interval` s."""
    import random

    state = {"user": {"name": name, "color": f"#{random.randrange(1 << 24):06x}"}}
    await asyncio.sleep(random.random() * interval)
    while True:
        await client.send_awareness(state)  # the next clock each time
        await asyncio.sleep(interval)


def trace_patches(limit: int) -> list[list[tuple[int, int, str]]]:
    """The first `limit` transactions of the automerge-paper trace (typing pace source)."""
    return [t["patches"] for t in json.loads(gzip.open(TRACE).read())["txns"][:limit]]


async def w3(plan_file: str, out: str) -> None:
    """This process's share of the W3 clients: connect, sync, heartbeat, type or read.

    The plan is {"clients": [[room, url, typist]], "heartbeat": s, "rate": edits/s,
    "duration": s}. Typists replay the trace from its start (one update per edit) into
    their room's empty document; everyone else records when each update arrives.
    """
    plan = json.loads(Path(plan_file).read_text())
    rate, duration, interval = plan["rate"], plan["duration"], plan["heartbeat"]
    patches = trace_patches(int(rate * duration) + 10)
    sent: dict[str, list[float]] = {}
    received: dict[str, list[list[float]]] = {}
    clients: list[tuple[str, Client, bool]] = []
    for room, url, typist in plan["clients"]:
        client = Client(url)
        if typist:
            sent[str(room)] = []
        else:
            times: list[float] = []
            received.setdefault(str(room), []).append(times)
            client.on_update = lambda c, times=times: times.append(time.time())
        clients.append((str(room), client, typist))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        gate = asyncio.Semaphore(32)  # connect in waves, as a crowd of browsers would

        async def connect(client: Client) -> None:
            async with gate:
                task = asyncio.ensure_future(client.run(http))
                tasks.append(task)
                await asyncio.wait(
                    [task, asyncio.ensure_future(client.synced.wait())], return_when=asyncio.FIRST_COMPLETED
                )

        tasks: list[asyncio.Task[None]] = []
        await asyncio.wait_for(asyncio.gather(*(connect(c) for _, c, _ in clients)), 300)
        synced = sum(c.synced.is_set() for _, c, _ in clients)
        beats = [
            asyncio.ensure_future(heartbeat(c, interval, f"bench-{i}"))
            for i, (_, c, _) in enumerate(clients)
            if c.synced.is_set()
        ]
        finish(out + ".ready", json.dumps({"synced": synced, "clients": len(clients)}))
        while not Path(out + ".go").exists():
            await asyncio.sleep(0.05)

        async def type_into(room: str, client: Client) -> None:
            import random

            await asyncio.sleep(random.random() / rate)
            text = client.text
            start = time.monotonic()
            for i, txn in enumerate(patches[: int(rate * duration)]):

                def apply(txn=txn) -> None:
                    for pos, ndel, ins in txn:
                        if ndel:
                            del text[pos : pos + ndel]
                        if ins:
                            text.insert(pos, ins)

                sent[room].append(time.time())
                await client.edit(apply)
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))

        began = time.monotonic()
        await asyncio.gather(*(type_into(r, c) for r, c, typist in clients if typist and c.synced.is_set()))
        await asyncio.sleep(max(0.0, began + duration - time.monotonic()) + 3)  # the last updates arrive
        finish(out, json.dumps({"sent": sent, "received": received, "synced": synced}))
        await asyncio.sleep(3600)  # stay connected until killed
        for task in (*beats, *tasks):
            task.cancel()


# -- W5: a notebook session ----------------------------------------------------------


def _ynotebook(client: Client):
    from jupyter_ydoc import YNotebook

    return YNotebook(client.doc)


async def w5_seed(url: str, notebook: str, out: str) -> None:
    """Give a peer server (which starts empty) the notebook, as jupyter-collaboration does."""
    nb = json.loads(Path(notebook).read_text())
    async with aiohttp.ClientSession() as http:
        client = Client(url)
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        ynb = _ynotebook(client)
        await client.edit(lambda: ynb.set(nb))
        probe = Client(url)  # a second client confirms the server has it
        probe_task = asyncio.ensure_future(probe.run(http))
        await probe.synced.wait()
        cells = _ynotebook(probe).ycells
        while len(cells) != len(nb["cells"]):
            await asyncio.sleep(0.05)
        finish(out, "1")
        await asyncio.sleep(3600)  # stay connected until killed
        task.cancel()
        probe_task.cancel()


async def w5(role: str, url: str, arg: str, duration: str, cells: str, out: str) -> None:
    """One W5 client on a notebook of `cells` cells, for `duration` s after OUT.go.

    edit CELL: types into that cell's source at 10 chars/s.
    struct SEED: every 3 s inserts a markdown cell, then (1.5 s later) moves a cell, as
        jupyter_ydoc does (delete + re-create), both among the cells from index 150 on,
        so the edited and the kernel's cells (all before 150) keep their place.
    kernel CELL: adds a stream output to that code cell, then appends 10 lines to its
        text 10 times a second (100 lines/s, ipykernel-like batches).
    Every client applies what the others send. Writes how many updates it sent.
    """
    import random

    from pycrdt import Map
    from pycrdt import Text as YText

    seconds, want = float(duration), int(cells)
    async with aiohttp.ClientSession() as http:
        client = Client(url)
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        ynb = _ynotebook(client)
        while len(ynb.ycells) < want:  # gitrtc's room is loaded by the server itself
            await asyncio.sleep(0.02)
        Path(out + ".ready").write_text("1")
        while not Path(out + ".go").exists():
            await asyncio.sleep(0.02)
        count = 0
        start = time.monotonic()
        end = start + seconds
        if role == "edit":
            source = ynb.ycells[int(arg)]["source"]
            i = 0
            while time.monotonic() < end:
                count += await client.edit(lambda: source.insert(len(source), "abcdefghij "[i % 11]))  # noqa: B023 — edit() runs it at once, within this iteration
                i += 1
                await asyncio.sleep(max(0.0, start + i / 10 - time.monotonic()))
        elif role == "struct":
            rng = random.Random(int(arg))
            i = 0
            while time.monotonic() < end:
                n = len(ynb.ycells)
                if i % 2 == 0:
                    cell = {"cell_type": "markdown", "metadata": {}, "source": f"Inserted cell {i}"}
                    count += await client.edit(lambda: ynb.ycells.insert(rng.randrange(150, n), ynb.create_ycell(cell)))  # noqa: B023 — edit() runs it at once, within this iteration
                else:
                    src, dst = rng.randrange(150, n), rng.randrange(150, n - 1)

                    def move() -> None:
                        value = ynb.get_cell(src)  # noqa: B023 — edit() runs move() at once
                        del ynb.ycells[src]  # noqa: B023 — edit() runs move() at once
                        ynb.ycells.insert(dst, ynb.create_ycell(value))  # noqa: B023 — edit() runs move() at once

                    count += await client.edit(move)
                i += 1
                await asyncio.sleep(max(0.0, start + i * 1.5 - time.monotonic()))
        elif role == "kernel":
            outputs = ynb.ycells[int(arg)]["outputs"]
            count += await client.edit(
                lambda: outputs.append(Map({"output_type": "stream", "name": "stdout", "text": YText()}))
            )
            text = outputs[len(outputs) - 1]["text"]
            i = line = 0
            while time.monotonic() < end:
                lines = "".join(f"epoch {line + k:6d}  loss={1 / (line + k + 1):.6f}\n" for k in range(10))
                line += 10
                count += await client.edit(lambda: text.insert(len(text), lines))  # noqa: B023 — edit() runs it at once, within this iteration
                i += 1
                await asyncio.sleep(max(0.0, start + i / 10 - time.monotonic()))
        finish(out, json.dumps({"count": count}))
        await asyncio.sleep(3600)  # stay connected until killed
        task.cancel()


# -- W6: join after a restart ---------------------------------------------------------


async def w6_join(url: str, out: str) -> None:
    """Connect as soon as the server accepts (retrying), sync, check the text, report when."""
    end = json.loads(gzip.open(TRACE).read())["endContent"]
    attempts = 0
    Path(out + ".ready").write_text("1")
    async with aiohttp.ClientSession() as http:
        while True:
            attempts += 1
            client = Client(url)
            task = asyncio.ensure_future(client.run(http))
            synced = asyncio.ensure_future(client.synced.wait())
            await asyncio.wait([task, synced], return_when=asyncio.FIRST_COMPLETED)
            if client.synced.is_set():
                break
            synced.cancel()
            if task.done() and not task.cancelled():
                task.exception()  # refused while the server starts: retrieved, try again
            await asyncio.sleep(0.01)
        done = time.time()
        text = str(client.text)
        finish(out, json.dumps({"synced": done, "attempts": attempts, "length": len(text), "equal": text == end}))
        task.cancel()


# -- W7: a paste, and a reader that stops reading -----------------------------------


async def w7_write(url: str, paste: str, rate: str, seconds: str, out: str) -> None:
    """After OUT.go: one update pasting PASTE bytes, then typing at RATE chars/s for SECONDS.

    The updates are made before the run, in a document of their own: with pycrdt, a
    keystroke right after a 1 MB insert costs 1.5-4 ms to make or apply (the typed
    character is merged into the pasted block), which would make this process, not the
    server, the bottleneck. For the same reason the readers time arrivals without
    applying (`w2-read ... count-only`); the servers do apply every update.
    """
    size, per_second, duration = int(paste), float(rate), float(seconds)
    count = int(per_second * duration)
    author = Client(url)  # only its document, to make the updates
    block = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
    updates = [await author.edit_offline(lambda: author.text.insert(0, block))]
    for _ in range(count):
        updates.append(await author.edit_offline(lambda: author.text.insert(len(author.text), "x")))
    async with aiohttp.ClientSession() as http:
        client = Client(url, apply=False)
        task = asyncio.ensure_future(client.run(http))
        await client.synced.wait()
        Path(out + ".ready").write_text("1")
        while not Path(out + ".go").exists():
            await asyncio.sleep(0.02)
        sent = [time.time()]
        await client.ws.send_bytes(protocol.sync_update(updates[0]))
        start = time.monotonic()
        for i, update in enumerate(updates[1:]):
            sent.append(time.time())
            await client.ws.send_bytes(protocol.sync_update(update))
            await asyncio.sleep(max(0.0, start + (i + 1) / per_second - time.monotonic()))
        finish(out, json.dumps({"sent": sent}))
        await asyncio.sleep(3600)  # stay connected until killed
        task.cancel()


def w7_stuck(url: str, out: str) -> None:
    """A reader that syncs, then never reads its socket again (a frozen tab, a suspended laptop).

    A raw blocking WebSocket client with a 4 KB receive buffer. After the sync it only
    watches its own socket (TCP state, bytes waiting) until OUT.stop appears; then it
    drains what the server had managed to send and reports whether a close frame
    (and which code) was among it.
    """
    import base64
    import os
    import socket
    import struct
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    connected_at = time.time()
    key = base64.b64encode(os.urandom(16)).decode()
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sock.sendall(
        (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise SystemExit(f"upgrade refused: {head[:80]!r}")

    def send(payload: bytes, opcode: int = 2) -> None:
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode]) + (
            bytes([0x80 | n])
            if n < 126
            else bytes([0x80 | 126]) + struct.pack("!H", n)
            if n < 65536
            else bytes([0x80 | 127]) + struct.pack("!Q", n)
        )
        sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
        found = []
        while len(data) >= 2:
            opcode, n, pos = data[0] & 0x0F, data[1] & 0x7F, 2
            if n == 126:
                if len(data) < 4:
                    break
                n, pos = struct.unpack("!H", data[2:4])[0], 4
            elif n == 127:
                if len(data) < 10:
                    break
                n, pos = struct.unpack("!Q", data[2:10])[0], 10
            if len(data) < pos + n:
                break
            found.append((opcode, data[pos : pos + n]))
            data = data[pos + n :]
        return found, data

    doc = Doc()
    send(protocol.sync_step1(doc))
    synced = False
    while not synced:
        found, buf = frames(buf)
        for opcode, payload in found:
            if opcode == 9:
                send(payload, 10)  # pong, while we are still a live client
            if opcode != 2:
                continue
            m = protocol.parse(payload)
            if m.type is protocol.MessageType.SYNC and m.sync is protocol.SyncType.STEP1:
                send(protocol.sync_step2(doc.get_update(m.payload)))
            elif m.type is protocol.MessageType.SYNC and m.sync is protocol.SyncType.STEP2:
                synced = True
        if not synced:
            buf += sock.recv(65536)
    port = sock.getsockname()[1]
    finish(out + ".ready", json.dumps({"port": port, "connected": connected_at}))
    import fcntl
    import termios

    states = []
    max_waiting = 0
    last = None
    while not Path(out + ".stop").exists():  # stuck: never read again
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        waiting = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]
        max_waiting = max(max_waiting, waiting)
        if state != last:
            states.append((time.time(), state))
            last = state
        time.sleep(0.2)
    # Drain: what had the server managed to send, and did it close?
    sock.settimeout(3)
    data = buf
    ended = "still open"
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                ended = "EOF"
                break
            data += chunk
    except TimeoutError:
        pass
    except ConnectionResetError:
        ended = "reset"
    found, _ = frames(data)
    close = [p for op, p in found if op == 8]
    code = struct.unpack("!H", close[0][:2])[0] if close and len(close[0]) >= 2 else None
    finish(
        out,
        json.dumps(
            {
                "connected": connected_at,
                "port": port,
                "states": states,
                "max_waiting": max_waiting,
                "drained_bytes": len(data),
                "frames": len(found),
                "close_frame": bool(close),
                "close_code": code,
                "close_reason": close[0][2:].decode(errors="replace") if close else None,
                "ended": ended,
            }
        ),
    )


ROLES = {
    "w1-send": w1_send,
    "w1-recv": w1_recv,
    "w2-write": w2_write,
    "w2-read": w2_read,
    "join": join,
    "w4-seed": w4_seed,
    "w3": w3,
    "w5-seed": w5_seed,
    "w5": w5,
    "w6-join": w6_join,
    "w7-write": w7_write,
}
SYNC_ROLES = {"w7-stuck": w7_stuck}

if __name__ == "__main__":
    if sys.argv[1] in SYNC_ROLES:
        SYNC_ROLES[sys.argv[1]](*sys.argv[2:])
    else:
        asyncio.run(ROLES[sys.argv[1]](*sys.argv[2:]))
