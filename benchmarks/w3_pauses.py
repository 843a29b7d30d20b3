"""W3's 400×5 step for several gitrtc trees back to back (and node), with what the
server's own clock saw: its garbage collections and its late loop turns.

    .venv/bin/python benchmarks/w3_pauses.py main=/work/main mine=. node main=/work/main mine=.

Each `label=TREE` runs `bench.w3_step` with `PYTHONPATH=TREE` (the server and its load run
that tree's gitrtc); `node` runs the node peer. Besides `w3_step`'s figures it prints,
for the 10 s of typing only: every full (generation 2) collection's CPU ms, and the
loop's turns more than 15 ms late (a 2 ms timer) split into the server's own CPU and the
time it waited for a core (`/proc/thread-self/schedstat`): on a loaded machine the p99
is mostly the second, which no change to the server removes; the first is its own.
The probe is a `sitecustomize` module put first on the server's path.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402

PROBE = """
import os
OUT = os.environ.get("W3_PAUSES_OUT")
try:
    CMD = open("/proc/self/cmdline", "rb").read().split(b"\\0")
except OSError:
    CMD = []
if OUT and b"gitrtc" in CMD and b"start" in CMD:
    import gc, sys, threading, time
    out = open(f"{OUT}.{os.getpid()}", "a", buffering=1)
    began = {}

    def timed(phase, info):
        if phase == "start":
            began["cpu"] = time.thread_time()
        elif info["generation"] == 2:
            out.write(f"gc {time.time():.3f} {(time.thread_time() - began['cpu']) * 1000:.1f}\\n")

    gc.callbacks.insert(0, timed)

    def runq():
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e6

    def install():  # a 2 ms loop timer, once the runner serves
        while not hasattr(sys.modules.get("gitrtc.cli.runner"), "_publish"):
            time.sleep(0.001)
        runner = sys.modules["gitrtc.cli.runner"]
        publish = runner._publish

        async def publishing(*args, **kwargs):
            import asyncio
            loop = asyncio.get_running_loop()
            last = [time.perf_counter() + 0.002, time.thread_time(), runq()]

            def tick():
                now, cpu, waited = time.perf_counter(), time.thread_time(), runq()
                late = (now - last[0]) * 1000
                if late > 15:
                    own = (cpu - last[1]) * 1000
                    out.write(f"late {time.time():.3f} {late:.1f} {own:.1f} {waited - last[2]:.1f}\\n")
                last[:] = [now + 0.002, cpu, waited]
                loop.call_later(0.002, tick)

            loop.call_later(0.002, tick)
            return await publish(*args, **kwargs)

        runner._publish = publishing

    threading.Thread(target=install, daemon=True).start()
"""


def main() -> None:
    rooms = int(os.environ.get("W3_ROOMS", "400"))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "probe").mkdir()
        (tmp / "probe" / "sitecustomize.py").write_text(PROBE)
        started: list[float] = []
        go = bench.go

        def going(*outs: Path) -> None:
            started.append(time.time())
            go(*outs)

        bench.go = going
        for n, arg in enumerate(sys.argv[1:]):
            label, _, tree = arg.partition("=")
            kind = "node" if label == "node" else "gitrtc"
            if tree:
                os.environ["PYTHONPATH"] = f"{tmp / 'probe'}:{Path(tree).resolve()}"
            os.environ["W3_PAUSES_OUT"] = str(tmp / f"probe-{n}")
            run = tmp / f"run-{n}"
            run.mkdir()
            step = bench.w3_step(kind, run, rooms)
            figures = {k: round(v, 1) if isinstance(v, float) else v for k, v in step.items() if "RSS" not in k}
            line = f"{label}: {json.dumps(figures)}"
            for probe in tmp.glob(f"probe-{n}.*"):
                t0 = started[-1]
                rows = [r.split() for r in probe.read_text().splitlines()]
                rows = [r for r in rows if t0 <= float(r[1]) <= t0 + 10.5]
                full = [float(r[2]) for r in rows if r[0] == "gc"]
                late = [(float(r[2]), float(r[3]), float(r[4])) for r in rows if r[0] == "late"]
                worst = max(late, default=(0.0, 0.0, 0.0))
                line += (
                    f"\n    while typing: full collections {full} ms CPU; {len(late)} turns >15 ms late, "
                    f"the worst {worst[0]:.0f} ms (own CPU {worst[1]:.0f}, waiting for a core {worst[2]:.0f}); "
                    f"own CPU of a late turn at most {max((x[1] for x in late), default=0):.0f} ms"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
