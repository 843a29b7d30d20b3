"""gitrtc side by side with the Yjs reference server and JupyterLab's room server.

    benchmarks/run            # installs the peers, then runs this
    .venv/bin/python benchmarks/bench.py [--runs 3] [--workloads w1,w2,w4,w8]

Every server runs on loopback in its own process (pinned to core 0 with taskset where
available), driven by the same load generator (benchmarks/load.py, separate processes
on core 1). gitrtc runs as `rtc start` with its durable store; the peers run without
persistence. Prints one table: workload × server × figure, medians over the runs with
the spread, and gitrtc/peer ratios.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
TRACE = ROOT.parent / "shared" / "corpus" / "traces" / "automerge-paper.json.gz"
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
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "Bench"],
                 ["config", "user.email", "bench@example.org"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", *args], cwd=work, check=True)
    port = free_port()
    proc = subprocess.Popen(pinned(0, [PY, "-m", "gitrtc", "start", *files, "--port", str(port), "--no-open"]),
                            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info_file = work / ".git" / "rtc" / "session.json"
    info = wait_for(lambda: info_file.exists() and json.loads(info_file.read_text()), 60, "gitrtc ready")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/session",
                                     headers={"Authorization": f"Bearer {info['token']}"})
    with urllib.request.urlopen(request) as response:
        rooms = {f["path"]: f["room"] for f in json.loads(response.read())["files"]}
    token = info["token"]
    return Server("gitrtc", proc, lambda path: f"ws://127.0.0.1:{port}/rooms/{rooms[path]}?token={token}",
                  work, {"port": port})


def start_node(files: dict[str, bytes]) -> Server:
    port = free_port()
    script = HERE / "node" / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"
    proc = subprocess.Popen(pinned(0, ["node", str(script)]), env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _listening(port), 30, "node server")
    return Server("y-websocket (node)", proc, lambda path: f"ws://127.0.0.1:{port}/{path}", Path(tempfile.mkdtemp()))


def start_pycrdt(files: dict[str, bytes]) -> Server:
    port = free_port()
    proc = subprocess.Popen(pinned(0, [PY, str(HERE / "peers" / "pycrdt_server.py"), str(port)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _listening(port), 30, "pycrdt-websocket server")
    return Server("pycrdt-websocket", proc, lambda path: f"ws://127.0.0.1:{port}/{path}", Path(tempfile.mkdtemp()))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


SERVERS = {"gitrtc": start_gitrtc, "node": start_node, "pycrdt": start_pycrdt}


def load(role: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(pinned(1, [PY, str(HERE / "load.py"), role, *args]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# -- workloads -----------------------------------------------------------------------------


def w1(kind: str, tmp: Path) -> dict[str, float | str]:
    """The automerge-paper trace, as fast as one client can send it; a second receives."""
    end = json.loads(gzip.open(TRACE).read())["endContent"]
    server = SERVERS[kind]({"doc.md": b""})
    try:
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
        return {"updates/s": n / (got["done"] - sent["start"]), "server CPU µs/update": (cpu1 - cpu0) / n * 1e6,
                "server RSS MB": rss_mb(server.pid)}
    finally:
        server.stop()


def w2(kind: str, tmp: Path, readers: int, rate: float = 100.0, count: int = 300) -> dict[str, float | str]:
    """One writer typing at `rate` chars/s; `readers` readers apply every update."""
    server = SERVERS[kind]({"doc.md": b""})
    try:
        url = server.url("doc.md")
        write_out = tmp / f"w2-write-{kind}-{readers}"
        groups = [readers // 2 + readers % 2, readers // 2] if readers > 1 else [readers]
        read_outs = [tmp / f"w2-read-{kind}-{readers}-{i}" for i in range(len(groups))]
        procs = [load("w2-read", url, str(g), str(count), str(out)) for g, out in zip(groups, read_outs) if g]
        read_outs = [o for g, o in zip(groups, read_outs) if g]
        writer = load("w2-write", url, str(count), str(rate), str(write_out))
        wait_for(lambda: all(Path(str(o) + ".ready").exists() for o in read_outs), 60, "readers ready")
        cpu0 = cpu_seconds(server.pid)
        Path(str(write_out) + ".go").write_text("1")
        wait_for(lambda: write_out.exists() and all(o.exists() for o in read_outs), 180, "w2 done")
        cpu1 = cpu_seconds(server.pid)
        for p in (*procs, writer):
            p.kill()
        sent = json.loads(write_out.read_text())["sent"]
        latencies = []
        for out in read_outs:
            for received in json.loads(out.read_text())["received"]:
                if len(received) < len(sent):
                    return {"result": f"a reader got {len(received)}/{len(sent)} updates"}
                latencies += [(r - s) * 1000 for r, s in zip(received, sent)]
        latencies.sort()
        elapsed = sent[-1] - sent[0]
        return {"p50 ms": latencies[len(latencies) // 2], "p99 ms": latencies[int(len(latencies) * 0.99)],
                "server CPU %": (cpu1 - cpu0) / elapsed * 100}
    finally:
        server.stop()


def w4(kind: str, tmp: Path, joiners: int) -> dict[str, float | str]:
    """`joiners` clients join the trace's final document at once (time to synced)."""
    end = json.loads(gzip.open(TRACE).read())["endContent"]
    server = SERVERS[kind]({"doc.md": end.encode()})
    try:
        url = server.url("doc.md")
        if kind != "gitrtc":  # the peers start empty: give them the document first
            seed = tmp / f"w4-seed-{kind}"
            proc = subprocess.Popen([PY, str(HERE / "load.py"), "w4-seed", url, str(seed)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(seed.exists, 60, "seeded")
            proc.kill()
        outs = [tmp / f"w4-{kind}-{joiners}-{i}" for i in range(joiners)]
        procs = [load("join", url, str(out)) for out in outs]
        wait_for(lambda: all(o.exists() for o in outs), 120, "joiners synced")
        for p in procs:
            p.kill()
        times = sorted((json.loads(o.read_text())["synced"] - json.loads(o.read_text())["start"]) * 1000 for o in outs)
        lengths = {json.loads(o.read_text())["length"] for o in outs}
        if lengths != {len(end)}:
            return {"result": f"joiners saw lengths {sorted(lengths)}"}
        return {"p99 ms": times[min(len(times) - 1, int(len(times) * 0.99))], "median ms": statistics.median(times)}
    finally:
        server.stop()


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

        asyncio.run(edit_all())
        time.sleep(2)  # let the write-backs land, as they would during a session
        start = time.monotonic()
        done = subprocess.run([PY, "-m", "gitrtc", "stop", "-m", "bench"], cwd=server.workdir, capture_output=True)
        server.proc.wait()
        rtc = time.monotonic() - start
        if done.returncode != 0:
            return {"result": f"rtc stop failed: {done.stderr.decode()[:80]}"}
        # the same change made by hand
        subprocess.run(["git", "reset", "-q", "--hard", "HEAD^"], cwd=server.workdir, check=True)
        for i in range(edited):
            path = server.workdir / f"f{i:04}.md"
            path.write_bytes(b"edited " + path.read_bytes())
        start = time.monotonic()
        subprocess.run("git add -A && git commit -q -m bench", shell=True, cwd=server.workdir, check=True)
        git_cli = time.monotonic() - start
        return {"rtc stop s": rtc, "git add+commit s": git_cli}
    finally:
        server.stop()


# -- the table -----------------------------------------------------------------------------


def summarize(samples: list[dict[str, float | str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    failures = [s["result"] for s in samples if "result" in s]
    if failures:
        return {"result": str(failures[0])}
    for key in samples[0]:
        values = [float(s[key]) for s in samples]
        med = statistics.median(values)
        spread = (max(values) - min(values)) / 2
        out[key] = f"{med:,.1f} ± {spread:,.1f}" if len(values) > 1 else f"{med:,.1f}"
        out["_" + key] = str(med)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", default="w1,w2,w4,w8")
    parser.add_argument("--servers", default="gitrtc,node,pycrdt")
    args = parser.parse_args()
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
        if "w4" in wanted:
            for n in (1, 20):
                plans.append((f"W4 cold join x{n}", lambda k, t, n=n: w4(k, t, n)))
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
                print(label, kind, rows[-1][2].get("result") or {k: v for k, v in rows[-1][2].items()
                                                                 if not k.startswith("_")}, flush=True)
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
            if kind != "gitrtc" and "_" + key in base and float(figures["_" + key]):
                ratio = f"{float(base['_' + key]) / float(figures['_' + key]):.2f}×"
            print(f"| {label} | {kind} | {key}: {value} | {ratio} |")


if __name__ == "__main__":
    main()
