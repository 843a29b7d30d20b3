"""Kernels under load: keystroke latency while a cell floods output, server memory, and the
time from a run request to the first output in another client. Not part of the tests.

    .venv/bin/python benchmarks/kernels.py [--seconds 10] [--runs 20] [--rate 20] [--rounds 3]

Starts `rtc start nb.ipynb notes.md --kernels` in a throwaway repository (a real
ipykernel, `python3` kernelspec). Two typist processes each hold a writer and a reader
connection: one in `notes.md` (another room), one in the notebook's markdown cell (the
same notebook). Each writer types `--rate` characters a second, one update each; its
reader notes when each character arrives (send → applied, both clocks `time.time()`).
Three phases, one after the other, on the same server and kernel, repeated `--rounds` times:

- idle: typing alone for `--seconds`;
- print: typing while a cell runs `for i in range(1_000_000): print(i)` (until it is done);
- image: typing while a cell displays a 200 KB image (base64 in the notebook) every
  second for `--seconds`.

Figures per phase, over all rounds pooled: p50/p99 of the keystrokes sent while the
phase's cell ran, and their ratio to idle (and each round's ratio to its own idle
phase); server RSS before the cell, its peak while it ran (sampled every 0.1 s) and 3 s
after; server CPU % while it ran. Then the time from a `run` request to the
first output seen by another client (a pycrdt client observing the document): the
first run of a fresh notebook (kernel start included) and `--runs` warm runs, each of a
cell whose source was just changed so its output is new. Processes are not pinned: the
kernel is a child of the server and would share its core.

The server runs as `kernels.py serve STALLS rtc-args…`: `rtc start` with a task watching
its loop (`_watch_loop`: ticks over 5 ms late, and whether the server was computing,
holding the GIL in another thread, or waiting for a core/the disk), reported per phase.
BENCH_VERBOSE=1 shows the server's and typists' stderr; BENCH_PROFILE=FILE writes a
cProfile of the server's loop thread when the session ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from pycrdt import Array, Doc, Map, Text  # noqa: E402

from gitrtc.client import RoomClient  # noqa: E402  (the package's own client, request channel included)

PY = sys.executable
FLOOD = "for i in range({lines}):\n    print(i)"
IMAGE = (
    "import base64, os, time\nfrom IPython.display import display\n"
    "for i in range({seconds}):\n"
    "    png = base64.b64encode(os.urandom(200_000)).decode()\n"
    "    display({{'image/png': png, 'text/plain': f'<image {{i}}>'}}, raw=True)\n"
    "    time.sleep(1)"
)


def notebook(seconds: int, lines: int) -> str:
    def code(cell_id: str, source: str) -> dict[str, Any]:
        return {
            "cell_type": "code",
            "execution_count": None,
            "id": cell_id,
            "metadata": {},
            "outputs": [],
            "source": source,
        }

    cells = [
        code("tick", "print('tick 0')"),
        code("flood", FLOOD.format(lines=lines)),
        code("image", IMAGE.format(seconds=seconds)),
        {"cell_type": "markdown", "id": "typing", "metadata": {}, "source": "typing here: "},
    ]
    return (
        json.dumps(
            {
                "cells": cells,
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            },
            indent=1,
        )
        + "\n"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_file(path: Path, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- the typist process ------------------------------------------------------------------


def _text(doc: Doc, where: str) -> Text:
    if where == "text":
        return doc.get("source", type=Text)
    cells = doc.get("cells", type=Array)
    cell = next(c for c in cells if isinstance(c, Map) and c.get("id") == where)
    source = cell["source"]
    assert isinstance(source, Text)
    return source


async def typist(url: str, where: str, rate: float, out: str) -> None:
    """A writer and a reader in one room; the writer types until OUT.stop exists."""
    async with RoomClient(url) as writer, RoomClient(url) as reader:
        await writer.wait_synced()
        await reader.wait_synced()
        wtext, rtext = _text(writer.doc, where), _text(reader.doc, where)
        base = len(rtext)
        received: list[float] = []

        def arrived(_client: RoomClient) -> None:  # after the update's transaction: the doc is readable
            now = time.time()
            while base + len(received) < len(rtext):
                received.append(now)

        reader.on_update = arrived
        Path(out + ".ready").write_text("1")
        while not Path(out + ".go").exists():
            await asyncio.sleep(0.02)
        sent: list[float] = []
        start = time.monotonic()
        while not Path(out + ".stop").exists():
            sent.append(time.time())
            wtext.insert(len(wtext), "x")
            await asyncio.sleep(max(0.0, start + len(sent) / rate - time.monotonic()))
        deadline = time.monotonic() + 10
        while len(received) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        part = Path(out + ".part")
        part.write_text(json.dumps({"sent": sent, "received": received}))
        part.replace(out)


# -- the orchestrator --------------------------------------------------------------------


class Sampler(threading.Thread):
    """The server's RSS every 0.1 s, kept with its time."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            self.samples.append((time.time(), rss_mb(self.pid)))

    def peak(self, start: float, end: float) -> float:
        return max((mb for t, mb in self.samples if start <= t <= end), default=float("nan"))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench-kernels-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.rooms: dict[str, str] = {}
        self.token = ""
        self.port = 0
        self.typists: list[subprocess.Popen[bytes]] = []
        self.phases_run = 0

    def start(self) -> None:
        (self.work / "nb.ipynb").write_text(notebook(self.args.seconds, self.args.lines))
        (self.work / "notes.md").write_text("notes\n")
        for argv in (
            ["init", "-q", "-b", "main"],
            ["config", "user.name", "Bench"],
            ["config", "user.email", "bench@example.org"],
            ["add", "-A"],
            ["commit", "-q", "-m", "base"],
        ):
            subprocess.run(["git", *argv], cwd=self.work, check=True)
        self.port = free_port()
        self.stalls = self.work / "stalls.txt"
        self.port_args = ["--port", str(self.port), "--no-open"]
        self.proc = subprocess.Popen(
            [PY, __file__, "serve", str(self.stalls), "start", "nb.ipynb", "notes.md", "--kernels", *self.port_args],
            cwd=self.work,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
        )
        info_file = self.work / ".git" / "rtc" / "session.json"
        wait_file(info_file, 60, "rtc start")
        info = json.loads(info_file.read_text())
        self.token = info["token"]
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/session", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request) as response:
            self.rooms = {f["path"]: f["room"] for f in json.loads(response.read())["files"]}

    def url(self, path: str, name: str) -> str:
        return f"ws://127.0.0.1:{self.port}/rooms/{self.rooms[path]}?token={self.token}&name={name}"

    def stop(self) -> None:
        for proc in self.typists:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the session ends (and a profile is written); killed if it hangs
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)

    def stalls_between(self, start: float, end: float) -> dict[str, float]:
        """The server loop's stalls (see `serve`) in [start, end]: how many, the longest,
        and how much of their time the loop's thread spent on the CPU."""
        rows = []
        for line in self.stalls.read_text().splitlines() if self.stalls.exists() else []:
            at, wall, cpu, all_cpu, voluntary, preempted = (float(x) for x in line.split())
            if start <= at <= end:
                rows.append((wall, cpu, all_cpu, voluntary, preempted))
        return {
            "n": len(rows),
            "max": max((r[0] for r in rows), default=0.0),
            "total": sum(r[0] for r in rows),
            "cpu": sum(r[1] for r in rows),
            "threads_cpu": sum(r[2] - r[1] for r in rows),
            "blocked": sum(1 for r in rows if r[3] > 1),  # switched out waiting, beyond its sleep
            "preempted": sum(1 for r in rows if r[4] > 0),
        }

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def phase(self, name: str, runner: RoomClient, sampler: Sampler) -> dict[str, Any]:
        """Typing in both rooms while `name`'s cell runs (or, idle, for --seconds)."""
        self.phases_run += 1  # each phase's typists get files of their own (a round repeats the names)
        outs = {where: str(self.work / f"{self.phases_run}-{name}-{where}.json") for where in WHERE}
        self.typists = [
            subprocess.Popen(
                [
                    PY,
                    __file__,
                    "type",
                    self.url("notes.md", "TypistA"),
                    "text",
                    str(self.args.rate),
                    outs["other room"],
                ],
                stderr=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [
                    PY,
                    __file__,
                    "type",
                    self.url("nb.ipynb", "TypistB"),
                    "typing",
                    str(self.args.rate),
                    outs["same notebook"],
                ],
                stderr=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
            ),
        ]
        for out in outs.values():
            await asyncio.to_thread(wait_file, Path(out + ".ready"), 60, "a typist ready")
        for out in outs.values():
            Path(out + ".go").write_text("1")
        await asyncio.sleep(1.0)  # typing under way
        before = rss_mb(self.pid)
        cpu0, t0 = cpu_seconds(self.pid), time.time()
        if name == "idle":
            await asyncio.sleep(self.args.seconds)
        else:
            done = asyncio.get_running_loop().create_future()

            def on_event(message: dict[str, Any]) -> None:
                data = message.get("data") or {}
                if (
                    message.get("event") == "kernel.cell"
                    and data.get("cell") == name
                    and data.get("state") in ("done", "error", "cancelled")
                    and not done.done()
                ):
                    done.set_result(data["state"])

            runner.on_event = on_event
            await runner.request("kernel", "run", {"cells": [name]})
            state = await asyncio.wait_for(done, 600)
            assert state == "done", f"the {name} cell ended {state}"
        t1 = time.time()
        cpu = (cpu_seconds(self.pid) - cpu0) / (t1 - t0) * 100
        for out in outs.values():
            Path(out + ".stop").write_text("1")
        await asyncio.sleep(3.0)
        after = rss_mb(self.pid)
        figures: dict[str, Any] = {
            "stalls": self.stalls_between(t0, t1),
            "seconds": t1 - t0,
            "rss_before": before,
            "rss_peak": sampler.peak(t0, t1),
            "rss_after": after,
            "cpu": cpu,
        }
        for where, out in outs.items():
            await asyncio.to_thread(wait_file, Path(out), 60, "a typist's figures")
            data = json.loads(Path(out).read_text())
            latencies = [(r - s) * 1000 for s, r in zip(data["sent"], data["received"], strict=False) if t0 <= s <= t1]
            lost = len(data["sent"]) - len(data["received"])
            figures[where] = {**summary(latencies), "lost": lost, "latencies": latencies}
        for proc in self.typists:
            proc.wait(timeout=30)
        return figures

    async def first_output(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """Run request → the output visible to another client, cold then warm."""
        async with (
            RoomClient(self.url("nb.ipynb", "Runner")) as runner,
            RoomClient(self.url("nb.ipynb", "Watcher")) as watcher,
        ):
            await runner.wait_synced()
            await watcher.wait_synced()
            seen: dict[str, float] = {}
            wanted = {"text": ""}

            def look(_client: RoomClient) -> None:  # after the update's transaction: the doc is readable
                cell = _cell(watcher.doc, "tick")
                outputs = cell.get("outputs")
                for output in outputs if isinstance(outputs, Array) else []:
                    text = (
                        str(output.get("text", "")) if isinstance(output, (Map, dict)) else ""
                    )  # a plain JSON value or a Map
                    if wanted["text"] and wanted["text"] + "\n" in text:
                        seen.setdefault(wanted["text"], time.perf_counter())

            watcher.on_update = look
            times = []
            for i in range(self.args.runs + 1):
                token = f"tick {i + 1}"
                if i:  # a new source, so the output is new (and the server has it before the run)
                    source = _cell(runner.doc, "tick")["source"]
                    assert isinstance(source, Text)
                    with runner.doc.transaction():
                        del source[0 : len(source)]
                        source.insert(0, f"print('{token}')")
                    while f"'{token}'" not in str(_cell(watcher.doc, "tick")["source"]):
                        await asyncio.sleep(0.01)
                else:
                    token = "tick 0"
                wanted["text"] = token
                sent = time.perf_counter()
                await runner.request("kernel", "run", {"cells": ["tick"]})
                while token not in seen:
                    await asyncio.sleep(0.002)
                times.append((seen[token] - sent) * 1000)
                await asyncio.sleep(0.3)  # the run's end, before the next edit
            warm = times[1:]
            return {
                "cold": times[0],
                "p50": percentile(warm, 50),
                "p99": percentile(warm, 99),
                "min": min(warm),
                "n": len(warm),
            }

    async def main(self) -> dict[str, Any]:
        sampler = Sampler(self.pid)
        sampler.start()
        results: dict[str, Any] = {"rss_start": rss_mb(self.pid)}
        async with aiohttp.ClientSession() as http:
            results["first_output"] = await self.first_output(http)
            async with RoomClient(self.url("nb.ipynb", "Runner")) as runner:
                await runner.wait_synced()
                rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in PHASES}
                for number in range(self.args.rounds):
                    for name in PHASES:
                        figures = await self.phase(name, runner, sampler)
                        rounds[name].append(figures)
                        brief = {k: v for k, v in figures.items() if k not in WHERE}
                        print(f"  round {number + 1} {name}: {json.dumps(brief)}", file=sys.stderr)
                for name in PHASES:
                    results[name] = pooled(rounds[name])
                results["rounds"] = rounds
        sampler.stopping.set()
        return results


PHASES = ("idle", "flood", "image")
WHERE = ("other room", "same notebook")


def summary(latencies: list[float]) -> dict[str, Any]:
    """p50, p99, max and count of keystroke latencies (ms)."""
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "n": len(latencies),
    }


def pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase's figures over all its rounds: latencies pooled (a p99 of 200 keystrokes
    is their second slowest, which one scheduling hiccup of a 2-core machine moves by 2×;
    pooled rounds, each next to an idle round, measure the flood and not the hiccup),
    stalls summed, the CPU averaged, RSS at its extremes."""
    stalls: dict[str, float] = {}
    for figures in rounds:
        for key, value in figures["stalls"].items():
            stalls[key] = max(stalls.get(key, 0), value) if key == "max" else stalls.get(key, 0) + value
    out: dict[str, Any] = {
        "stalls": stalls,
        "seconds": sum(f["seconds"] for f in rounds),
        "rss_before": rounds[0]["rss_before"],
        "rss_peak": max(f["rss_peak"] for f in rounds),
        "rss_after": rounds[-1]["rss_after"],
        "cpu": sum(f["cpu"] * f["seconds"] for f in rounds) / sum(f["seconds"] for f in rounds),
    }
    for where in WHERE:
        latencies = [x for f in rounds for x in f[where]["latencies"]]
        out[where] = {**summary(latencies), "lost": sum(f[where]["lost"] for f in rounds)}
    return out


def _cell(doc: Doc, cell_id: str) -> Map:
    return next(c for c in doc.get("cells", type=Array) if isinstance(c, Map) and c.get("id") == cell_id)


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    idle = results["idle"]
    print(
        f"kernels benchmark: typing {args.rate:g} chars/s in each room; load average "
        f"{os.getloadavg()[0]:.1f} at the end; server RSS at start {results['rss_start']:.1f} MB"
    )
    print()
    print(
        "| phase | where | keystrokes | p50 ms | p99 ms | max ms | p99 / idle | server CPU % "
        "| RSS before → peak → 3 s after (MB) | server loop stalls > 5 ms: n, longest ms, loop busy %, "
        "other threads busy %, n blocked, n preempted |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    labels = {"idle": "idle (typing only)", "flood": f"{args.lines:,}-line print", "image": "a 200 KB image a second"}
    for name in ("idle", "flood", "image"):
        phase = results[name]
        st = phase["stalls"]
        busy = st["cpu"] / st["total"] * 100 if st["total"] else 0.0
        others = st["threads_cpu"] / st["total"] * 100 if st["total"] else 0.0
        stalls = f"{st['n']}, {st['max']:.0f}, {busy:.0f} %, {others:.0f} %, {st['blocked']}, {st['preempted']}"
        for where in ("other room", "same notebook"):
            f = phase[where]
            ratio = f["p99"] / idle[where]["p99"] if idle[where]["p99"] else float("nan")
            lost = f" ({f['lost']} never arrived)" if f["lost"] else ""
            print(
                f"| {labels[name]} ({phase['seconds']:.1f} s) | {where} | {f['n']}{lost} | {f['p50']:.1f} | "
                f"{f['p99']:.1f} | {f['max']:.1f} | {ratio:.2f}× | {phase['cpu']:.0f} | "
                f"{phase['rss_before']:.1f} → {phase['rss_peak']:.1f} → {phase['rss_after']:.1f} | {stalls} |"
            )
    print()
    print(f"per round ({args.rounds} rounds, each phase after the round's idle phase), p99 / that round's idle p99:")
    for name in PHASES[1:]:
        for where in WHERE:
            ratios = [
                f[where]["p99"] / i[where]["p99"] if i[where]["p99"] else float("nan")
                for f, i in zip(results["rounds"][name], results["rounds"]["idle"], strict=True)
            ]
            shown = ", ".join(f"{r:.2f}×" for r in ratios)
            print(f"- {labels[name]}, {where}: {shown}")
    first = results["first_output"]
    print()
    print(
        f"run request → first output in another client: first run {first['cold']:.0f} ms (kernel start "
        f"included); then over {first['n']} runs p50 {first['p50']:.1f} ms, p99 {first['p99']:.1f} ms, "
        f"min {first['min']:.1f} ms"
    )


STALL_MS = 5.0  # a loop tick later than this is noted


async def _watch_loop(path: str) -> None:
    """Note every tick of the server's loop that came more than STALL_MS late: when, how
    late, the loop thread's CPU time meanwhile (about as late: the loop was busy), the
    other threads' CPU time (the GIL), and the loop thread's voluntary (blocked: disk, a
    lock; one is the tick's own sleep) and involuntary (preempted: no free core) context
    switches. Written in batches, so the watcher does not wait for the disk itself."""
    rows: list[str] = []
    written = time.perf_counter()
    with open(path, "a", encoding="utf-8") as out:
        while True:
            wall, cpu, all_cpu = time.perf_counter(), time.thread_time(), time.process_time()
            use = resource.getrusage(resource.RUSAGE_THREAD)
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            late = (now - wall) * 1000 - 2.0
            if late > STALL_MS:
                spent, spent_all = (time.thread_time() - cpu) * 1000, (time.process_time() - all_cpu) * 1000
                after = resource.getrusage(resource.RUSAGE_THREAD)
                rows.append(
                    f"{time.time():.4f} {late:.2f} {spent:.2f} {spent_all:.2f} "
                    f"{after.ru_nvcsw - use.ru_nvcsw} {after.ru_nivcsw - use.ru_nivcsw}\n"
                )
            if rows and now - written > 0.5:
                out.write("".join(rows))
                out.flush()
                rows, written = [], now


def serve(stalls: str, argv: list[str]) -> None:
    """`rtc ARGV` with its loop watched (`_watch_loop`), and profiled with cProfile when
    BENCH_PROFILE names a file (written when the session ends: the bench sends SIGTERM)."""
    from gitrtc import eventloop
    from gitrtc.cli.entry import main as rtc

    run = eventloop.run

    def watched(main: Any) -> Any:
        async def both() -> Any:
            watcher = asyncio.get_running_loop().create_task(_watch_loop(stalls))
            try:
                return await main
            finally:
                watcher.cancel()

        return run(both())

    eventloop.run = watched
    sys.argv = ["rtc", *argv]
    profile_to = os.environ.get("BENCH_PROFILE")
    if not profile_to:
        rtc()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        rtc()
    finally:
        profiler.disable()
        profiler.dump_stats(profile_to)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "type":
        url, where, rate, out = sys.argv[2:6]
        asyncio.run(typist(url, where, float(rate), out))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of the idle and image phases")
    parser.add_argument("--runs", type=int, default=20, help="warm runs timed for run → first output")
    parser.add_argument("--rate", type=float, default=20.0, help="characters typed per second per room")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines the flooding cell prints")
    parser.add_argument("--rounds", type=int, default=3, help="idle/print/image rounds, pooled per phase")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        bench.start()
        results = asyncio.run(bench.main())
    finally:
        bench.stop()
    report(results, args)
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
