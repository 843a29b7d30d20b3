"""gitrtc side by side with the Yjs reference server and JupyterLab's room server.

    benchmarks/run            # installs the peers, then runs this
    .venv/bin/python benchmarks/bench.py [--runs 3] [--workloads w1,w2,w3,w4,w5,w6,w7,w8]

Every server runs on loopback in its own process (pinned to core 0 with taskset where
available), driven by the same load generator (benchmarks/load.py, separate processes
on core 1). gitrtc runs as `rtc start` with its durable store; the peers run without
persistence, except pycrdt-websocket in W5, which runs with its SQLite YStore as
JupyterLab does. Prints one table: workload × server × figure, medians over the runs with
the spread, and gitrtc/peer ratios.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.corpus import CORPUS  # noqa: E402  (where the real-world data is; no heavy imports)

PY = sys.executable
TRACE = CORPUS / "traces" / "automerge-paper.json.gz"
TASKSET = shutil.which("taskset")


def pinned(core: int, argv: list[str]) -> list[str]:
    return [TASKSET, "-c", str(core), *argv] if TASKSET and os.cpu_count() and os.cpu_count() > 1 else argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(what)


@dataclass
class Server:
    """One server process and how to reach a room on it."""

    name: str
    proc: subprocess.Popen[bytes]
    url: Callable[[str], str]
    workdir: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_gitrtc(files: dict[str, bytes]) -> Server:
    work = Path(tempfile.mkdtemp(prefix="bench-gitrtc-"))
    for name, data in files.items():
        (work / name).write_bytes(data)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "Bench"],
        ["config", "user.email", "bench@example.org"],
        ["add", "-A"],
        ["commit", "-q", "-m", "base"],
    ):
        subprocess.run(["git", *args], cwd=work, check=True)
    port = free_port()
    proc = subprocess.Popen(
        pinned(0, [PY, "-m", "gitrtc", "start", *files, "--port", str(port), "--no-open"]),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    info_file = work / ".git" / "rtc" / "session.json"
    info = wait_for(lambda: info_file.exists() and json.loads(info_file.read_text()), 60, "gitrtc ready")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/session", headers={"Authorization": f"Bearer {info['token']}"}
    )
    with urllib.request.urlopen(request) as response:
        rooms = {f["path"]: f["room"] for f in json.loads(response.read())["files"]}
    token = info["token"]
    return Server(
        "gitrtc",
        proc,
        lambda path: f"ws://127.0.0.1:{port}/rooms/{rooms[path]}?token={token}",
        work,
        {"port": port, "owner_token": info["owner_token"]},
    )


def gitrtc_status(server: Server) -> dict[str, object]:
    """The owner's `/api/status` (store_bytes: bytes of logged updates)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.extra['port']}/api/status",
        headers={"Authorization": f"Bearer {server.extra['owner_token']}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def gitrtc_store(server: Server) -> Path:
    """The session's SQLite store."""
    return next(server.workdir.glob(".git/rtc/sessions/*/store.sqlite"))


def start_node(files: dict[str, bytes]) -> Server:
    port = free_port()
    script = HERE / "node" / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    proc = subprocess.Popen(
        pinned(0, ["node", str(script)]), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: _listening(port), 30, "node server")
    return Server("y-websocket (node)", proc, lambda path: f"ws://127.0.0.1:{port}/{path}", Path(tempfile.mkdtemp()))


def start_pycrdt(files: dict[str, bytes], store: bool = False) -> Server:
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-pycrdt-"))
    argv = [PY, str(HERE / "peers" / "pycrdt_server.py"), str(port)]
    if store:  # each room with a SQLiteYStore, as JupyterLab runs it
        argv += ["--store", str(work / "ystore.db")]
    proc = subprocess.Popen(pinned(0, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _listening(port), 30, "pycrdt-websocket server")
    return Server(
        "pycrdt-websocket",
        proc,
        lambda path: f"ws://127.0.0.1:{port}/{path}",
        work,
        {"store": work / "ystore.db"} if store else {},
    )


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


SERVERS = {"gitrtc": start_gitrtc, "node": start_node, "pycrdt": start_pycrdt}


def load(role: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        pinned(1, [PY, str(HERE / "load.py"), role, *args]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def spawn(role: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """A load process (core 1) whose stderr goes to `log` (a long run must not fill a pipe)."""
    with open(log, "ab") as err:
        return subprocess.Popen(
            pinned(1, [PY, str(HERE / "load.py"), role, *args]), stdout=subprocess.DEVNULL, stderr=err
        )


def ready(out: Path) -> Path:
    return Path(str(out) + ".ready")


def go(*outs: Path) -> None:
    for out in outs:
        Path(str(out) + ".go").write_text("1")


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def wait_idle(pid: int, timeout: float = 30.0) -> None:
    """Wait until a process uses under 4 % of a core over 0.25 s (a server done starting)."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pid)
        if now - before < 0.01:
            return
        before = now


def sqlite_bytes(db: Path, journal_only: bool = False) -> int:
    """A SQLite database's size on disk with its journals (-wal or -journal, and gitrtc's
    update journal `*.journal` beside it); or the journals'."""
    journals = [Path(f"{db}-wal"), Path(f"{db}-journal"), db.with_name(db.stem + ".journal")]
    files = journals + ([] if journal_only else [db])
    return sum(p.stat().st_size for p in files if p.exists())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else math.nan


class Sampler(threading.Thread):
    """Samples a process's RSS (and, optionally, something else) every `every` s."""

    def __init__(self, pid: int, every: float = 0.05, extra: Callable[[], None] | None = None) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.extra = pid, every, extra
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
                if self.extra is not None:
                    self.extra()
            except OSError:
                pass
            self.done.wait(self.every)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak


# -- workloads -----------------------------------------------------------------------------


def w1(kind: str, tmp: Path) -> dict[str, float | str]:
    """The automerge-paper trace, as fast as one client can send it; a second receives."""
    server = SERVERS[kind]({"doc.md": b""})
    try:
        return ingest_trace(server, kind, tmp)
    finally:
        server.stop()


def ingest_trace(server: Server, kind: str, tmp: Path) -> dict[str, float | str]:
    """W1's run on a started server (W6 goes on with the same server)."""
    end = json.loads(gzip.open(TRACE).read())["endContent"]
    url = server.url("doc.md")
    recv_out, send_out = tmp / f"w1-recv-{kind}", tmp / f"w1-send-{kind}"
    recv = load("w1-recv", url, str(len(end)), str(recv_out))
    wait_for(lambda: Path(str(recv_out) + ".ready").exists(), 30, "receiver ready")
    cpu0 = cpu_seconds(server.pid)
    send = load("w1-send", url, str(send_out))
    try:
        wait_for(recv_out.exists, 240, "receiver done")
    except TimeoutError:
        return {"result": "did not converge in 240 s"}
    finally:
        cpu1 = cpu_seconds(server.pid)
        send.kill()
        recv.kill()
    got, sent = json.loads(recv_out.read_text()), json.loads(send_out.read_text())
    if got["text"] != end:
        return {"result": "WRONG final text"}
    n = sent["count"]
    return {
        "updates/s": n / (got["done"] - sent["start"]),
        "server CPU µs/update": (cpu1 - cpu0) / n * 1e6,
        "server RSS MB": rss_mb(server.pid),
    }


def w2(kind: str, tmp: Path, readers: int, rate: float = 100.0, count: int = 300) -> dict[str, float | str]:
    """One writer typing at `rate` chars/s; `readers` readers apply every update."""
    server = SERVERS[kind]({"doc.md": b""})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = server.url("doc.md")
        write_out = tmp / f"w2-write-{kind}-{readers}"
        groups = [readers // 2 + readers % 2, readers // 2] if readers > 1 else [readers]
        read_outs = [tmp / f"w2-read-{kind}-{readers}-{i}" for i in range(len(groups))]
        procs = [
            load("w2-read", url, str(g), str(count), str(out)) for g, out in zip(groups, read_outs, strict=True) if g
        ]
        read_outs = [o for g, o in zip(groups, read_outs, strict=True) if g]
        procs.append(load("w2-write", url, str(count), str(rate), str(write_out)))
        wait_for(lambda: all(Path(str(o) + ".ready").exists() for o in read_outs), 60, "readers ready")
        cpu0 = cpu_seconds(server.pid)
        Path(str(write_out) + ".go").write_text("1")
        wait_for(lambda: write_out.exists() and all(o.exists() for o in read_outs), 180, "w2 done")
        cpu1 = cpu_seconds(server.pid)
        sent = json.loads(write_out.read_text())["sent"]
        latencies = []
        for out in read_outs:
            for received in json.loads(out.read_text())["received"]:
                if len(received) < len(sent):
                    return {"result": f"a reader got {len(received)}/{len(sent)} updates"}
                latencies += [(r - s) * 1000 for r, s in zip(received, sent, strict=False)]
        latencies.sort()
        elapsed = sent[-1] - sent[0]
        return {
            "p50 ms": latencies[len(latencies) // 2],
            "p99 ms": latencies[int(len(latencies) * 0.99)],
            "server CPU %": (cpu1 - cpu0) / elapsed * 100,
        }
    finally:
        kill_all(procs)  # also when a wait timed out
        server.stop()


def w4(kind: str, tmp: Path, joiners: int) -> dict[str, float | str]:
    """`joiners` clients join the trace's final document at once (time to synced)."""
    end = json.loads(gzip.open(TRACE).read())["endContent"]
    server = SERVERS[kind]({"doc.md": end.encode()})
    try:
        url = server.url("doc.md")
        if kind != "gitrtc":  # the peers start empty: give them the document first
            seed = tmp / f"w4-seed-{kind}"
            proc = subprocess.Popen(
                [PY, str(HERE / "load.py"), "w4-seed", url, str(seed)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for(seed.exists, 60, "seeded")
            proc.kill()
        return joins(kind, url, tmp, joiners, "text", len(end), server.pid)
    finally:
        server.stop()


#: W4's notebook: the largest pdsh chapters (plots as PNG outputs), cells joined to 5 MB.
W4_NOTEBOOK_BYTES = 5 * 2**20


def w4_notebook() -> tuple[dict[str, object], bytes]:
    folder = CORPUS / "notebooks" / "pdsh"
    books = sorted(folder.glob("*.ipynb"), key=lambda p: p.stat().st_size, reverse=True)
    nb: dict[str, object] = dict(json.loads(books[0].read_text()))
    cells: list[object] = []
    for book in books:
        cells += json.loads(book.read_text())["cells"]
        nb["cells"] = cells
        data = (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()
        if len(data) >= W4_NOTEBOOK_BYTES:
            return nb, data
    raise RuntimeError("the pdsh notebooks hold less than 5 MB")


def w4_nb(kind: str, tmp: Path, joiners: int) -> dict[str, float | str]:
    """`joiners` clients join a 5 MB notebook with outputs at once (time to synced)."""
    nb, data = w4_notebook()
    server = SERVERS[kind]({"nb.ipynb": data})
    try:
        url = server.url("nb.ipynb")
        if kind != "gitrtc":
            seed_notebook(kind, url, data, tmp, tmp / f"w4nb-{kind}.log")
        return joins(kind, url, tmp, joiners, "cells", len(nb["cells"]), server.pid)  # type: ignore[arg-type]
    finally:
        server.stop()


def seed_notebook(kind: str, url: str, data: bytes, tmp: Path, log: Path) -> None:
    """The peers start empty: a client sets the notebook, as JupyterLab's server does."""
    notebook, seed = tmp / "seed.ipynb", tmp / f"nb-seed-{kind}"
    notebook.write_bytes(data)
    seeder = spawn("w5-seed", url, str(notebook), str(seed), log=log)
    try:
        wait_for(seed.exists, 120, "notebook seeded")
    finally:
        kill_all([seeder])


def joins(
    kind: str, url: str, tmp: Path, joiners: int, what: str, expected: int, pid: int | None = None
) -> dict[str, float | str]:
    """`joiners` processes connect at once; p99 and median of connect → synced, and the
    server's CPU meanwhile (with 20 joiners of 5 MB the joiners' own core is the limit)."""
    outs = [tmp / f"w4-{kind}-{what}-{joiners}-{i}" for i in range(joiners)]
    if pid:
        wait_idle(pid)  # gitrtc loads the shared files in the background at start
    cpu0 = cpu_seconds(pid) if pid else 0.0
    procs = [load("join", url, str(out), what) for out in outs]
    try:
        wait_for(lambda: all(o.exists() for o in outs), 180, "joiners synced")
        cpu1 = cpu_seconds(pid) if pid else 0.0
    finally:
        kill_all(procs)
    times = sorted((json.loads(o.read_text())["synced"] - json.loads(o.read_text())["start"]) * 1000 for o in outs)
    lengths = {json.loads(o.read_text())["length"] for o in outs}
    if lengths != {expected}:
        return {"result": f"joiners saw {what} {sorted(lengths)}, not {expected}"}
    figures: dict[str, float | str] = {
        "p99 ms": times[min(len(times) - 1, int(len(times) * 0.99))],
        "median ms": statistics.median(times),
    }
    if pid:
        figures["server CPU ms"] = (cpu1 - cpu0) * 1000
    return figures


#: W3's steps (rooms of 5 clients each) and the p99 the largest passing one must keep.
W3_STEPS = (50, 100, 200, 400)
W3_TARGET_MS = 50.0
W3_PROCS = 4


def w3(kind: str, tmp: Path) -> dict[str, float | str]:
    """Many rooms: every step of W3_STEPS on a fresh server, then the largest under 50 ms."""
    out: dict[str, float | str] = {}
    largest = 0
    for rooms in W3_STEPS:
        step = w3_step(kind, tmp, rooms)
        if "result" in step:
            out[f"{rooms}×5 p99 ms"] = str(step["result"])
            out[f"{rooms}×5 server CPU %"] = "—"
            continue
        late = float(step["not arrived %"])
        verdict = f"inf: {late:.1f} % of the updates not arrived 3 s after the typing"
        out[f"{rooms}×5 p99 ms"] = verdict if late >= 1 else step["p99 ms"]
        out[f"{rooms}×5 server CPU %"] = step["server CPU %"]
        if rooms == 200:
            out["200×5 p50 ms"] = verdict if late >= 50 else step["p50 ms"]
            out["200×5 RSS KB/room"] = step["RSS KB/room"]
            out["200×5 RSS KB/connection"] = step["RSS KB/connection"]
            out["200×5 server RSS MB"] = step["RSS MB"]
        if float(step["p99 ms"]) < W3_TARGET_MS and rooms > largest:
            largest = rooms
    out["largest rooms×5 with p99 < 50 ms"] = largest
    return out


def w3_step(
    kind: str,
    tmp: Path,
    rooms: int,
    per_room: int = 5,
    seconds: float = 10.0,
    heartbeat: float = 3.0,
    rate: float = 10.0,
) -> dict[str, float | str]:
    """`rooms` rooms × `per_room` clients over W3_PROCS load processes; every other room
    has one typist (10 % of the clients) replaying the trace at `rate` edits/s for
    `seconds`; every client sends an awareness heartbeat every `heartbeat` s."""
    names = [f"doc{i:03}.md" for i in range(rooms)]
    server = SERVERS[kind](dict.fromkeys(names, b""))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        wait_idle(server.pid)  # gitrtc loads its first 32 rooms right after the start
        rss0 = rss_mb(server.pid)
        plans: list[list[list[object]]] = [[] for _ in range(W3_PROCS)]
        for r, name in enumerate(names):
            url = server.url(name)
            for j in range(per_room):
                plans[(r * per_room + j) % W3_PROCS].append([r, url, r % 2 == 0 and j == 0])
        outs = []
        for i, clients in enumerate(plans):
            plan = tmp / f"w3-{kind}-{rooms}-{i}.json"
            plan.write_text(json.dumps({"clients": clients, "heartbeat": heartbeat, "rate": rate, "duration": seconds}))
            outs.append(tmp / f"w3-{kind}-{rooms}-{i}")
            procs.append(spawn("w3", str(plan), str(outs[-1]), log=tmp / f"w3-{kind}-{rooms}.log"))
        try:
            wait_for(lambda: all(ready(o).exists() for o in outs), 240, f"{rooms * per_room} clients synced")
        except TimeoutError:
            return {"result": f"not all {rooms * per_room} clients synced in 240 s"}
        synced = sum(json.loads(ready(o).read_text())["synced"] for o in outs)
        if synced < rooms * per_room:
            return {"result": f"{synced}/{rooms * per_room} clients synced"}
        time.sleep(1)
        rss1 = rss_mb(server.pid)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        go(*outs)
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        wait_for(lambda: all(o.exists() for o in outs), 120, "W3 load done")
    finally:
        kill_all(procs)
        server.stop()
    sent: dict[str, list[float]] = {}
    received: dict[str, list[list[float]]] = {}
    for o in outs:
        got = json.loads(o.read_text())
        sent.update(got["sent"])
        for room, readers in got["received"].items():
            received.setdefault(room, []).extend(readers)
    latencies: list[float] = []
    for room, times in sent.items():
        for reader in received.get(room, []):
            latencies += [(r - s) * 1000 for r, s in zip(reader, times, strict=False)]
            latencies += [math.inf] * max(0, len(times) - len(reader))  # never arrived
    connections = rooms * per_room
    late = sum(1 for x in latencies if x == math.inf) / max(1, len(latencies)) * 100
    return {
        "p50 ms": percentile(latencies, 0.5),
        "p99 ms": percentile(latencies, 0.99),
        "not arrived %": late,
        "server CPU %": (cpu1 - cpu0) / (t1 - t0) * 100,
        "RSS KB/room": (rss1 - rss0) * 1024 / rooms,
        "RSS KB/connection": (rss1 - rss0) * 1024 / connections,
        "RSS MB": rss1,
    }


#: W5's notebook: real cells (pdsh chapters), the first 200 of these, in order.
W5_SOURCES = (
    "02.02-The-Basics-Of-NumPy-Arrays.ipynb",
    "03.02-Data-Indexing-and-Selection.ipynb",
    "02.06-Boolean-Arrays-and-Masks.ipynb",
)
W5_CELLS = 200
W5_EDITED = (20, 60, 100)


def w5_notebook() -> dict[str, object]:
    folder = CORPUS / "notebooks" / "pdsh"
    books = [json.loads((folder / name).read_text()) for name in W5_SOURCES]
    nb = dict(books[0])
    nb["cells"] = [cell for book in books for cell in book["cells"]][:W5_CELLS]
    return nb


def w5(kind: str, tmp: Path, seconds: float = 60.0) -> dict[str, float | str]:
    """A 200-cell notebook: 3 people typing in cells, a cell inserted or moved every 1.5 s,
    a kernel streaming 100 lines/s into an output. CPU per update and store growth."""
    nb = w5_notebook()
    kernel = next(i for i in range(110, 150) if nb["cells"][i]["cell_type"] == "code")  # type: ignore[index]
    data = (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()
    server = start_pycrdt({}, store=True) if kind == "pycrdt" else SERVERS[kind]({"nb.ipynb": data})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = server.url("nb.ipynb")
        log = tmp / f"w5-{kind}.log"
        if kind != "gitrtc":
            seed_notebook(kind, url, data, tmp, log)
        roles = [("edit", str(c)) for c in W5_EDITED] + [("struct", "5"), ("kernel", str(kernel))]
        outs = [tmp / f"w5-{kind}-{role}-{arg}" for role, arg in roles]
        procs = [
            spawn("w5", role, url, arg, str(seconds), str(W5_CELLS), str(out), log=log)
            for (role, arg), out in zip(roles, outs, strict=True)
        ]
        wait_for(lambda: all(ready(o).exists() for o in outs), 120, "W5 clients synced")
        time.sleep(2)  # the join's own writes (a peer's first store rows) settle
        store = gitrtc_store(server) if kind == "gitrtc" else server.extra.get("store")
        size0 = sqlite_bytes(store) if store else 0
        logged0 = float(gitrtc_status(server)["store_bytes"]) if kind == "gitrtc" else 0.0  # type: ignore[arg-type]
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        go(*outs)
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        wait_for(lambda: all(o.exists() for o in outs), 60, "W5 clients done")
        time.sleep(1)  # what was sent is on disk
        count = sum(json.loads(o.read_text())["count"] for o in outs)
        minutes = (t1 - t0) / 60
        figures: dict[str, float | str] = {"updates sent": count, "server CPU µs/update": (cpu1 - cpu0) / count * 1e6}
        if store is None:
            figures["store growth KB/min"] = "n/a: no persistence"
        else:
            figures["store growth KB/min"] = (sqlite_bytes(store) - size0) / 1024 / minutes
            figures["store file KB at end"] = sqlite_bytes(store) / 1024
            figures["of which WAL/journal KB"] = sqlite_bytes(store, journal_only=True) / 1024
        if kind == "gitrtc":
            figures["logged bytes KB/min (rtc status)"] = (
                (float(gitrtc_status(server)["store_bytes"]) - logged0) / 1024 / minutes
            )  # type: ignore[arg-type]
        return figures
    finally:
        kill_all(procs)
        server.stop()


def w6(kind: str, tmp: Path, settle: float = 8.0) -> dict[str, float | str]:
    """W1, kill -9, `rtc start` again: time until a new client has the whole text; store sizes."""
    if kind != "gitrtc":
        return {"result": "n/a: no persistence"}
    end = json.loads(gzip.open(TRACE).read())["endContent"]
    server = start_gitrtc({"doc.md": b""})
    joiner = None
    try:
        ingested = ingest_trace(server, kind, tmp)
        if "result" in ingested:
            return ingested
        store = gitrtc_store(server)
        logged = float(gitrtc_status(server)["store_bytes"])  # type: ignore[arg-type]
        server.proc.kill()  # SIGKILL
        server.proc.wait()
        killed_size, killed_wal = sqlite_bytes(store), sqlite_bytes(store, journal_only=True)
        out = tmp / "w6-join"
        joiner = spawn("w6-join", server.url("doc.md"), str(out), log=tmp / "w6.log")
        wait_for(ready(out).exists, 60, "joiner ready")
        time.sleep(0.5)  # the joiner is polling
        start = time.time()
        server.proc = subprocess.Popen(
            pinned(0, [PY, "-m", "gitrtc", "start", "doc.md", "--port", str(server.extra["port"]), "--no-open"]),
            cwd=server.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(out.exists, 120, "joined after the restart")
        got = json.loads(out.read_text())
        if not got["equal"]:
            return {"result": f"WRONG text after the restart ({got['length']} of {len(end)} characters)"}
        serving = got["synced"] - start
        time.sleep(settle)  # past the compactor's next look (every 5 s)
        return {
            "serving again s": serving,
            "store MB at kill (sqlite+wal+journal)": killed_size / 2**20,
            "of which WAL and journal MB": killed_wal / 2**20,
            "logged MB at kill (rtc status)": logged / 2**20,
            f"store MB {settle:.0f} s after resume": sqlite_bytes(store) / 2**20,
            f"logged MB {settle:.0f} s after resume": float(gitrtc_status(server)["store_bytes"]) / 2**20,
        }  # type: ignore[arg-type]
    finally:
        if joiner is not None:
            kill_all([joiner])
        server.stop()


#: Seconds the stuck reader is watched after it connected: past gitrtc's keep-alive (a ping
#: every 20 s, dropped at the first one unanswered: 40 s) and uvicorn's, 20 s + 20 s. The node server gives up later: it
#: pings every 30 s, closes at the first missed pong (60 s) and destroys the socket 30 s
#: after that (90 s), so within this window it is reported as still connected.
W7_HOLD = 55.0
_TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
}


def tcp_socket(local_port: int, remote_port: int) -> tuple[str, int] | None:
    """(state, bytes in the send queue) of the loopback IPv4 socket local_port → remote_port."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == local_port and int(remote, 16) == remote_port:
            return _TCP_STATES.get(int(fields[3], 16), fields[3]), int(fields[4].split(":")[0], 16)
    return None


#: Bytes of W7's paste (--w7-paste-mb).
W7_PASTE = 1 << 20


def w7(kind: str, tmp: Path) -> dict[str, float | str]:
    """A 1 MB paste then typing at 100 chars/s, 10 healthy readers, with and without a stuck one."""
    base = w7_run(kind, tmp, stuck=False, paste=W7_PASTE)
    if "result" in base:
        return base
    with_stuck = w7_run(kind, tmp, stuck=True, paste=W7_PASTE)
    if "result" in with_stuck:
        return with_stuck
    return {
        "p99 ms, no stuck reader": base["p99 ms"],
        "p99 ms, with a stuck reader": with_stuck["p99 ms"],
        "p99 with / without": float(with_stuck["p99 ms"]) / float(base["p99 ms"]),
        "paste delivered p99 ms": with_stuck["paste p99 ms"],
        "server CPU % while typing after the paste": base["CPU %"],
        "server RSS MB before": with_stuck["RSS before MB"],
        "server RSS MB peak": with_stuck["RSS peak MB"],
        "stuck reader": with_stuck["stuck"],
    }


def w7_run(
    kind: str,
    tmp: Path,
    stuck: bool,
    readers: int = 10,
    paste: int = 1 << 20,
    rate: float = 100.0,
    seconds: float = 10.0,
) -> dict[str, float | str]:
    server = SERVERS[kind]({"doc.md": b""})
    procs: list[subprocess.Popen[bytes]] = []
    tag = f"w7-{kind}-{'stuck' if stuck else 'base'}"
    log = tmp / f"{tag}.log"
    server_side: list[tuple[float, str, int]] = []
    try:
        url = server.url("doc.md")
        count = int(rate * seconds)
        read_out, write_out, stuck_out = tmp / f"{tag}-read", tmp / f"{tag}-write", tmp / f"{tag}-stuck"
        procs.append(spawn("w2-read", url, str(readers), str(count + 1), str(read_out), "count-only", log=log))
        if stuck:
            procs.append(spawn("w7-stuck", url, str(stuck_out), log=log))
        procs.append(spawn("w7-write", url, str(paste), str(rate), str(seconds), str(write_out), log=log))
        waits = [ready(read_out), ready(write_out)] + ([ready(stuck_out)] if stuck else [])
        wait_for(lambda: all(w.exists() for w in waits), 60, "W7 clients synced")
        watch = None
        if stuck:
            client_port = json.loads(ready(stuck_out).read_text())["port"]
            server_port = int(url.split(":")[2].split("/")[0])

            def watch() -> None:  # the server's side of the stuck connection
                seen = tcp_socket(server_port, client_port)
                state, queued = seen if seen else ("gone", 0)
                if not server_side or server_side[-1][1] != state or queued > max(q for _, _, q in server_side):
                    server_side.append((time.time(), state, queued))

        time.sleep(0.5)
        rss0 = rss_mb(server.pid)
        sampler = Sampler(server.pid, 0.05, watch)
        sampler.start()
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        go(write_out)
        wait_for(write_out.exists, 180, "W7 writer done")
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        wait_for(read_out.exists, 180, "W7 readers done")
        if stuck:
            connected = json.loads(ready(stuck_out).read_text())["connected"]
            time.sleep(max(0.0, connected + W7_HOLD - time.time()))
            Path(str(stuck_out) + ".stop").write_text("1")
            watched = time.time() - connected
            wait_for(stuck_out.exists, 30, "stuck reader's report")
        peak = sampler.stop()
    finally:
        kill_all(procs)
        server.stop()
    sent = json.loads(write_out.read_text())["sent"]
    typing, pastes = [], []
    for received in json.loads(read_out.read_text())["received"]:
        if len(received) < len(sent):
            return {"result": f"a healthy reader got {len(received)}/{len(sent)} updates"}
        pastes.append((received[0] - sent[0]) * 1000)
        typing += [(r - s) * 1000 for r, s in zip(received[1:], sent[1:], strict=False)]
    figures: dict[str, float | str] = {
        "p99 ms": percentile(typing, 0.99),
        "paste p99 ms": percentile(pastes, 0.99),
        "RSS before MB": rss0,
        "RSS peak MB": peak,
        "CPU %": (cpu1 - cpu0) / (t1 - t0) * 100,
    }
    if stuck:
        figures["stuck"] = describe_stuck(json.loads(stuck_out.read_text()), server_side, watched)
    return figures


def describe_stuck(report: dict[str, object], server_side: list[tuple[float, str, int]], watched: float) -> str:
    """What became of the stuck reader, in one line."""
    start = float(report["connected"])  # type: ignore[arg-type]
    max_queued = max((q for _, _, q in server_side), default=0)
    left = next(((t, s) for t, s, _ in server_side if s != "ESTABLISHED"), None)
    code = report["close_code"]
    drained = int(report["drained_bytes"]) / 2**20  # type: ignore[call-overload]
    if left is None:
        what = f"still connected after {watched:.0f} s"
    else:
        what = f"closed by the server after {left[0] - start:.0f} s"
    if report["close_frame"]:
        what += f" (close frame, code {code})" if code is not None else " (close frame without a code)"
    elif left is not None:
        what += " (no close frame)"
    return (
        f"{what}; on reading again it got {drained:.2f} MB then {report['ended']}; "
        f"server kernel send queue up to {max_queued / 1024:.0f} KB, "
        f"its own receive queue up to {int(report['max_waiting']) / 1024:.0f} KB"
    )  # type: ignore[call-overload]


def w8(tmp: Path, files: int = 1000, edited: int = 100) -> dict[str, float | str]:
    """`rtc stop` over a 1,000-file folder with 100 files edited, vs git add -A && git commit."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from tests.support import YClient  # the tests' real pycrdt client

    contents = {f"f{i:04}.md": f"file {i}\n".encode() for i in range(files)}
    server = start_gitrtc(contents)
    try:

        async def edit_all() -> None:
            for i in range(edited):
                async with YClient(server.url(f"f{i:04}.md")) as client:
                    await client.wait_synced()
                    from pycrdt import Text

                    client.doc.get("source", type=Text).insert(0, "edited ")
                    await asyncio.sleep(0.01)

        # the same repository for the git command line: its own object store, so neither
        # side finds the other's blobs already written
        by_hand = Path(tempfile.mkdtemp(dir=tmp)) / "by-hand"
        shutil.copytree(server.workdir, by_hand, symlinks=True, ignore=shutil.ignore_patterns("rtc"))
        asyncio.run(edit_all())
        time.sleep(2)  # let the write-backs land, as they would during a session
        # as installed: pip compiles a package's bytecode, but with PYTHONDONTWRITEBYTECODE
        # set (as on the shared machine) every `rtc stop` compiled its modules from source
        subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "gitrtc")], check=True)
        start = time.monotonic()
        rtc_command = str(Path(PY).parent / "rtc")  # the console script, as a user types it
        done = subprocess.run([rtc_command, "stop", "-m", "bench"], cwd=server.workdir, capture_output=True)
        rtc = time.monotonic() - start  # the commit exists when rtc stop returns
        server.proc.wait()
        exited = time.monotonic() - start
        if done.returncode != 0:
            return {"result": f"rtc stop failed: {done.stderr.decode()[:80]}"}
        for i in range(edited):
            path = by_hand / f"f{i:04}.md"
            path.write_bytes(b"edited " + path.read_bytes())
        start = time.monotonic()
        subprocess.run("git add -A && git commit -q -m bench", shell=True, cwd=by_hand, check=True)
        git_cli = time.monotonic() - start

        def tree(repo: Path) -> str:
            return subprocess.run(
                ["git", "rev-parse", "HEAD^{tree}"], cwd=repo, capture_output=True, text=True, check=True
            ).stdout.strip()

        if tree(server.workdir) != tree(by_hand):
            return {"result": "WRONG: the session's commit differs from git add -A && git commit"}
        return {
            "rtc stop ms": rtc * 1000,
            "git add+commit ms": git_cli * 1000,
            "rtc stop / git (same run)": rtc / git_cli,
            "rtc server exit ms": exited * 1000,
        }
    finally:
        server.stop()


# -- the table -----------------------------------------------------------------------------


def summarize(samples: list[dict[str, float | str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    failures = [s["result"] for s in samples if "result" in s]
    if failures:
        return {"result": str(failures[0])}
    for key in samples[0]:
        if any(key not in s for s in samples):
            continue
        texts = [s[key] for s in samples if isinstance(s[key], str)]
        if texts:  # a verdict ("n/a", what happened to a client): the first run's
            out[key] = str(texts[0])
            continue
        values = [float(s[key]) for s in samples]
        med = statistics.median(values)
        spread = (max(values) - min(values)) / 2
        out[key] = f"{med:,.1f} ± {spread:,.1f}" if len(values) > 1 else f"{med:,.1f}"
        out["_" + key] = str(med)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", default="w1,w2,w3,w4,w5,w6,w7,w8")
    parser.add_argument("--servers", default="gitrtc,node,pycrdt")
    parser.add_argument(
        "--w7-paste-mb",
        type=float,
        default=1.0,
        help="W7's paste; above the server's kernel send buffer (4 MB here) it queues in the server",
    )
    args = parser.parse_args()
    global W7_PASTE
    W7_PASTE = int(args.w7_paste_mb * 2**20)
    wanted = args.workloads.split(",")
    kinds = args.servers.split(",")
    rows: list[tuple[str, str, dict[str, str]]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        plans: list[tuple[str, Callable[[str, Path], dict[str, float | str]]]] = []
        if "w1" in wanted:
            plans.append(("W1 trace ingest", w1))
        if "w2" in wanted:
            for n in (1, 10, 50, 200):
                plans.append((f"W2 fan-out N={n}", lambda k, t, n=n: w2(k, t, n)))
        if "w3" in wanted:
            plans.append(("W3 many rooms", w3))
        if "w4" in wanted:
            for n in (1, 20):
                plans.append((f"W4 cold join x{n}", lambda k, t, n=n: w4(k, t, n)))
            for n in (1, 20):
                plans.append((f"W4 5 MB notebook join x{n}", lambda k, t, n=n: w4_nb(k, t, n)))
        if "w5" in wanted:
            plans.append(("W5 notebook session", w5))
        if "w6" in wanted:
            plans.append(("W6 restart", w6))
        if "w7" in wanted:
            plans.append(("W7 paste + stuck reader", w7))
        for label, fn in plans:
            for kind in kinds:
                samples = []
                for run in range(args.runs):
                    run_dir = tmp / f"{label}-{kind}-{run}".replace(" ", "_")
                    run_dir.mkdir()
                    try:
                        samples.append(fn(kind, run_dir))
                    except TimeoutError as exc:
                        samples.append({"result": f"timed out: {exc}"})
                rows.append((label, kind, summarize(samples)))
                print(
                    label,
                    kind,
                    rows[-1][2].get("result") or {k: v for k, v in rows[-1][2].items() if not k.startswith("_")},
                    flush=True,
                )
        if "w8" in wanted:
            samples = [w8(tmp) for _ in range(args.runs)]
            rows.append(("W8 git end", "gitrtc", summarize(samples)))
    print()
    print(f"| workload | server | figure (median ± half-range, {args.runs} runs) | gitrtc / peer |")
    print("|---|---|---|---|")
    for label, kind, figures in rows:
        base = next((f for lab, k, f in rows if lab == label and k == "gitrtc"), {})
        if "result" in figures:
            print(f"| {label} | {kind} | {figures['result']} | |")
            continue
        for key, value in figures.items():
            if key.startswith("_"):
                continue
            ratio = ""
            if kind != "gitrtc" and "_" + key in base and "_" + key in figures and float(figures["_" + key]):
                ratio = f"{float(base['_' + key]) / float(figures['_' + key]):.2f}×"
            print(f"| {label} | {kind} | {key}: {value} | {ratio} |")


if __name__ == "__main__":
    main()
