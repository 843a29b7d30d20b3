"""Relays through Redis (#21): what the bus costs, against the single process.

    python benchmarks/relays.py [--updates N] [--rate R] [--readers K] [--crowd C] [--crowd-rate R] [--out FILE]
                                [--runs cost,crowd] [--profile DIR]

Three runs, each once on one `rtc start` (every client on it) and once on `rtc start
--redis` + two `rtc relay` (the writer on relay A, readers spread over both relays):

- cost: one writer sends N keystroke updates at R per second to K readers; the servers'
  CPU (owner + relays + redis-server, from /proc) per update and per delivered message;
- latency: the same run's keystroke latency, writer → a reader (on relay B with relays);
- crowd: W2's shape with C count-only readers (they time arrivals without applying).

The clients run in this process (one event loop; readers do not apply updates), so on a
busy machine the latencies include this process's own scheduling: compare the two
columns, not the absolute figures.

`--profile DIR` runs the owner and the relays under cProfile (DIR/single-owner.prof,
DIR/relays-owner.prof, DIR/relays-relay1.prof, ...), stopping them with SIGTERM so the
profiles are written; read them with `python -m pstats`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from pycrdt import Doc, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitrtc import protocol  # noqa: E402
from gitrtc.client import RoomClient  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import cpu_seconds, free_port, percentile, wait_for  # noqa: E402  (bench.py's process helpers)

RTC = [sys.executable, "-m", "gitrtc"]
#: Seconds the servers are watched idle before each run (their fixed cost, subtracted in `busy_*`).
IDLE_SECONDS = 3.0
#: Clients connecting at once.
JOIN_WAVE = 50
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def process_cpu(pid: int) -> float:
    """CPU seconds of process `pid`, all its threads, user and system, to the nanosecond
    (its CPU clock, `CPUCLOCK_SCHED`); `/proc`'s 10 ms ticks where that clock is refused.
    Ticks are 10 µs per update per process over a 1,000-update run, and the idle rate
    subtracted from them is coarser still."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        return cpu_seconds(pid)


class Setup:
    """The server processes of one configuration and where a client connects."""

    def __init__(self, owner: subprocess.Popen[str], info: dict[str, Any], room: str) -> None:
        self.owner = owner
        self.info = info
        self.room = room
        self.relays: list[tuple[subprocess.Popen[str], int]] = []
        self.redis: subprocess.Popen[bytes] | None = None

    @property
    def pids(self) -> list[int]:
        return [self.owner.pid, *(p.pid for p, _ in self.relays), *([self.redis.pid] if self.redis else [])]

    def cpu(self) -> float:
        return sum(self.cpu_each())

    def cpu_each(self) -> list[float]:
        """CPU seconds of the owner, each relay and redis-server (in `pids`' order)."""
        return [process_cpu(pid) for pid in self.pids]

    def sys_each(self) -> list[float]:
        """The kernel's part of `cpu_each` (system calls, the loopback network)."""
        tick = os.sysconf("SC_CLK_TCK")
        return [int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[12]) / tick for pid in self.pids]

    def wakes_each(self) -> list[int]:
        """Voluntary context switches of each process, all its threads (each is a wait that
        ended: a wake; the loops' and the store thread's alike)."""
        counts = []
        for pid in self.pids:
            total = 0
            for task in Path(f"/proc/{pid}/task").iterdir():
                try:
                    status = (task / "status").read_text()
                except OSError:  # the thread ended meanwhile
                    continue
                total += int(status.split("voluntary_ctxt_switches:", 1)[1].split()[0])
            counts.append(total)
        return counts

    @property
    def names(self) -> list[str]:
        return ["owner", *(f"relay{n + 1}" for n in range(len(self.relays))), *(["redis"] if self.redis else [])]

    def url(self, where: int) -> str:
        """0: the owner; 1, 2: the relays (the owner when there are none)."""
        port = self.info["port"] if where == 0 or not self.relays else self.relays[where - 1][1]
        return f"ws://127.0.0.1:{port}/rooms/{self.room}?token={self.info['token']}&name=bench"


def rtc(profile: Path | None, name: str) -> list[str]:
    """The command line of an `rtc` process (under cProfile into profile/name.prof if given)."""
    if profile is None:
        return RTC
    out = str(profile / f"{name}.prof")
    code = (  # CPU time, not wall time: on a busy machine the wall clock mostly measures waiting
        "import cProfile, runpy, sys, time\n"
        "p = cProfile.Profile(time.process_time)\n"
        "sys.argv[0] = 'rtc'\n"
        "p.enable()\n"
        "try:\n    runpy.run_module('gitrtc', run_name='__main__', alter_sys=True)\n"
        f"finally:\n    p.disable()\n    p.dump_stats({out!r})\n"
    )
    return [sys.executable, "-c", code]


@contextmanager
def servers(relays: bool, profile: Path | None = None) -> Iterator[Setup]:
    config = "relays" if relays else "single"
    work = Path(tempfile.mkdtemp(prefix="bench-relays-"))
    procs: list[subprocess.Popen[Any]] = []
    try:
        repo = work / "repo"
        repo.mkdir()
        (repo / "doc.md").write_text("# Bench\n")
        for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "seed"]):
            subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", *args], cwd=repo, check=True)
        redis_url = None
        redis = None
        if relays:
            port = free_port()
            persist = ("--dir", str(work), "--appendonly", "yes", "--save", "")
            redis = subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1", *persist],
                stdout=subprocess.DEVNULL,
            )
            procs.append(redis)
            redis_url = f"redis://127.0.0.1:{port}/0"
            wait_for(lambda: _listening(port), 20, "redis-server")
        owner = subprocess.Popen(
            [*rtc(profile, f"{config}-owner"), "start", "--port", "0", "--no-open"]
            + (["--redis", redis_url] if redis_url else [])
            + ["doc.md"],
            cwd=repo,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(owner)
        session_file = repo / ".git" / "rtc" / "session.json"
        info = wait_for(lambda: _session(session_file, owner.pid), 60, "rtc start")
        room = asyncio.run(_room(info))
        setup = Setup(owner, info, room)
        setup.redis = redis
        if relays:
            for n in range(2):
                command = [*rtc(profile, f"{config}-relay{n + 1}"), "relay", "--redis", str(redis_url)]
                relay = subprocess.Popen(
                    [*command, "--port", "0", info["session"]],
                    env=ENV,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                procs.append(relay)
                assert relay.stdout is not None
                found = re.search(r":(\d+)/rooms/", relay.stdout.readline())
                assert found, "rtc relay did not start"
                setup.relays.append((relay, int(found.group(1))))
        yield setup
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                if profile is not None and proc is not redis:  # let cProfile write its file
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                else:
                    proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _session(path: Path, pid: int) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("pid") == pid else None


async def _room(info: dict[str, Any]) -> str:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{info['port']}/api/session"
        async with http.get(url, headers={"Authorization": f"Bearer {info['token']}"}) as r:
            body = await r.json()
    return str(body["files"][0]["room"])


async def run(setup: Setup, updates: int, rate: float, readers: int, apply: bool) -> dict[str, float]:
    """One writer (on relay A), `readers` readers spread over relays A and B (the owner
    without relays); returns CPU per update / per delivered message and latencies."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:  # no 100-socket cap
        arrivals: list[list[float]] = [[] for _ in range(readers)]
        clients = []
        for i in range(readers):
            client = RoomClient(setup.url(1 + i % 2), apply=apply)
            client.on_update = lambda c, i=i: arrivals[i].append(time.perf_counter())
            clients.append(client)
        writer = RoomClient(setup.url(1), send_local=False)
        everyone = [*clients, writer]
        tasks = []
        for first in range(0, len(everyone), JOIN_WAVE):  # a thousand at once overflow the listen backlog
            wave = everyone[first : first + JOIN_WAVE]
            tasks += [asyncio.ensure_future(c.run(http)) for c in wave]
            for c in wave:
                try:
                    await asyncio.wait_for(c.synced.wait(), 120)
                except TimeoutError:
                    raise SystemExit(f"a client did not sync: closed {c.close_code} {c.close_reason}") from None
        await asyncio.sleep(1.0)  # joins settled
        doc: Doc[Any] = writer.doc
        text = doc.get("source", type=Text)
        outgoing: list[bytes] = []
        doc.observe(lambda e: outgoing.append(e.update))
        sent: list[float] = []
        idle0, t0 = setup.cpu(), time.perf_counter()
        await asyncio.sleep(IDLE_SECONDS)  # the servers' CPU with nothing to do (heartbeats, polls)
        idle_rate = (setup.cpu() - idle0) / (time.perf_counter() - t0)
        each0, sys0, wakes0 = setup.cpu_each(), setup.sys_each(), setup.wakes_each()
        start = time.perf_counter()
        assert writer.ws is not None
        for i in range(updates):
            text.insert(len(text), "x")
            sent.append(time.perf_counter())
            await writer.ws.send_bytes(protocol.sync_update(outgoing.pop()))
            delay = start + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        deadline = time.monotonic() + 120
        while any(len(a) < updates for a in arrivals) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        each = [b - a for a, b in zip(each0, setup.cpu_each(), strict=True)]
        kernel = sum(setup.sys_each()) - sum(sys0)
        wakes = [b - a for a, b in zip(wakes0, setup.wakes_each(), strict=True)]
        cpu = sum(each)
        busy = max(0.0, cpu - idle_rate * (time.perf_counter() - start))
        for task in tasks:
            task.cancel()
        delivered = sum(min(len(a), updates) for a in arrivals)
        lat = [a[k] - sent[k] for a in arrivals for k in range(min(len(a), updates))]
        far = [a[k] - sent[k] for a in arrivals[1::2] for k in range(min(len(a), updates))]  # relay B's readers
        return {
            "updates": updates,
            "delivered": delivered,
            "missing": readers * updates - delivered,
            "cpu_s": cpu,
            "cpu_us_per_update": 1e6 * cpu / updates,
            "cpu_us_per_delivered": 1e6 * cpu / max(1, delivered),
            "idle_cpu_per_s": idle_rate,
            "busy_us_per_update": 1e6 * busy / updates,
            "kernel_share": kernel / cpu if cpu else 0.0,
            "busy_us_per_delivered": 1e6 * busy / max(1, delivered),
            "p50_ms": 1000 * percentile(lat, 0.5),
            "p99_ms": 1000 * percentile(lat, 0.99),
            "p99_far_ms": 1000 * percentile(far or lat, 0.99),
            # CPU µs per update of each process: owner, relays, redis-server
            **{f"us_per_update_{n}": 1e6 * c / updates for n, c in zip(setup.names, each, strict=True)},
            # wakes (voluntary context switches, all threads) per update of each process
            **{f"wakes_per_update_{n}": w / updates for n, w in zip(setup.names, wakes, strict=True)},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--crowd", type=int, default=200)
    parser.add_argument("--crowd-updates", type=int, default=100)
    parser.add_argument("--crowd-rate", type=float, default=20.0, help="the crowd's writer's updates per second")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runs", default="cost,crowd", help="which runs, comma-separated: cost, crowd")
    parser.add_argument("--profile", type=Path, help="write cProfile files of the servers into this folder")
    args = parser.parse_args()
    runs = args.runs.split(",")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for relays in (False, True):
        name = "relays" if relays else "single"
        with servers(relays, args.profile) as setup:
            if "cost" in runs:
                results[f"cost/{name}"] = asyncio.run(run(setup, args.updates, args.rate, args.readers, True))
            if "crowd" in runs:
                crowd = run(setup, args.crowd_updates, args.crowd_rate, args.crowd, False)
                results[f"crowd/{name}"] = asyncio.run(crowd)
        print(name, json.dumps({k: v for k, v in results.items() if k.endswith(name)}, indent=1), flush=True)
    for run_name in runs:
        single, relayed = results[f"{run_name}/single"], results[f"{run_name}/relays"]
        results[f"{run_name}/ratio"] = {
            k: relayed[k] / single[k] if single[k] else float("nan")
            for k in ("cpu_us_per_update", "busy_us_per_update", "busy_us_per_delivered", "p99_ms", "p99_far_ms")
        }
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
