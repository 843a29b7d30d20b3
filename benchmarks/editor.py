"""Main-thread CPU per keystroke in the browser's notebook editor (issue 18's 16 ms per
key), on the 464-cell corpus notebook and on a small one, in Chromium (Playwright).

    PYTHONPATH=. .venv/bin/python benchmarks/editor.py [--keys 80] [--others] [--profile N]

The big notebook is W4's (bench.py: the pdsh chapters of fixtures/corpus joined to
5 MB, 464 cells with their PNG plots); the small one is 20 cells from its middle. One
`rtc start` serves both; one person opens each in headless Chromium, clicks into the
middle code cell and types (one key every 60 ms) while a performance trace records.

Per key: the main thread's CPU time (thread time of its top-level tasks, so less
sensitive to a busy machine than wall time) from the task that dispatched the key's
keydown to the next keydown's task; everything the page does for the key (CodeMirror's
update, the binding's Y transaction, observers, the frame that shows it, timers it
queued) lands there. p50 / p99 / mean per notebook, and their ratio.

--others: two more people (pycrdt y-websocket clients) type into the next two code
cells at 10 keys/s each while the person types (their edits' cost lands in the keys'
buckets too); --cursors: and they move their cursor with every key (an awareness update
each, as arrow keys or clicks make; typing alone does not move a Yjs relative position).
--profile N: a CPU profile (DevTools protocol Profiler) of the typing in the big
notebook, its N functions of most self time printed. GITRTC_TRACE_DIR=DIR keeps the
traces (for DevTools); GITRTC_EXTRA_CSS adds a style before the typing (to try a CSS
change without a build).

Needs the built client (`cd web && npm run build`) and python playwright. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import w4_notebook  # noqa: E402
from browser import ARGS, CHROMIUM, Typists, open_page, pct  # noqa: E402

from tests.support import RtcProcess, get_json, make_repo  # noqa: E402

SMALL = 20
EXTRA_CSS = os.environ.get("GITRTC_EXTRA_CSS")  # a style tried while typing (experiments)
TRACE_DIR = os.environ.get("GITRTC_TRACE_DIR")  # keep the traces there (for a look in DevTools)
KEY_GAP_MS = 60


def small_notebook(nb: dict[str, Any]) -> bytes:
    """SMALL cells from the middle of the big notebook (the same kind of cells)."""
    cells = nb["cells"]
    mid = len(cells) // 2
    small = {**nb, "cells": cells[mid - SMALL // 2 : mid + SMALL // 2]}
    return (json.dumps(small, indent=1, ensure_ascii=False) + "\n").encode()


def per_key_cpu(trace: bytes) -> list[float]:
    """Main-thread CPU milliseconds per key: the page's top-level tasks from one keydown's
    task up to the next one's (the last key: to the end of the trace)."""
    events = json.loads(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    tasks: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
    keys: dict[tuple[int, int], list[int]] = {}
    for e in events:
        where = (e.get("pid"), e.get("tid"))
        if where not in mains or e.get("ph") != "X":
            continue
        if e["name"] == "RunTask":
            tasks.setdefault(where, []).append(
                (e["ts"], e["ts"] + e.get("dur", 0), e.get("tdur", e.get("dur", 0)) / 1000)
            )
        elif e["name"] == "EventDispatch" and e.get("args", {}).get("data", {}).get("type") == "keydown":
            keys.setdefault(where, []).append(e["ts"])
    page = max(keys, key=lambda k: len(keys[k]))
    starts = sorted(keys[page])
    out: list[float] = []
    i = -1
    for _begin, end, cpu in sorted(tasks[page]):
        while i + 1 < len(starts) and starts[i + 1] <= end:
            i += 1
            out.append(0.0)
        if i >= 0:
            out[i] += cpu
    return out


def top_functions(profile: dict[str, Any], n: int) -> list[tuple[float, str]]:
    """The n functions of a CPU profile with the most self time (ms)."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    gaps = profile["timeDeltas"]
    self_us: dict[str, float] = {}
    for sample, gap in zip(profile["samples"][:-1], gaps[1:], strict=True):
        frame = nodes[sample]["callFrame"]
        name = f"{frame['functionName'] or '(anonymous)'} {frame['url'].rsplit('/', 1)[-1]}:{frame['lineNumber'] + 1}"
        self_us[name] = self_us.get(name, 0.0) + gap
    return sorted(((us / 1000, name) for name, us in self_us.items()), reverse=True)[:n]


def measure(
    browser: Any, url: str, n_cells: int, keys: int, room_url: str | None, profile: int, cursors: bool = False
) -> dict[str, Any]:
    page = open_page(browser, "Measured", probe=False)
    page.goto(url)
    page.wait_for_function(
        f"() => document.querySelectorAll('.doc-notebook:not([hidden]) .cell').length === {n_cells}"
        " && document.querySelector('.doc-notebook:not([hidden])').dataset.ready === 'true'",
        polling=50,
    )
    code = page.locator(".doc-notebook:not([hidden]) .cell-code")
    middle = code.count() // 2
    cell = code.nth(middle)
    cell.scroll_into_view_if_needed()
    cell.locator(".cell-static, .cm-content").first.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("#")
    page.wait_for_function("() => document.activeElement?.closest('.cm-content')?.textContent.endsWith('#')")
    page.wait_for_timeout(1500)  # the editors near the view are built
    if EXTRA_CSS:
        page.add_style_tag(content=EXTRA_CSS)
        page.wait_for_timeout(500)
    others = None
    if room_url:
        ids = page.evaluate(
            "[...document.querySelectorAll('.doc-notebook:not([hidden]) .cell-code')].map((c) => c.dataset.cellId)"
        )
        others = Typists(room_url, [ids[middle + 1], ids[middle + 2]], cursors)
    cdp = None
    if profile:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 200})
        cdp.send("Profiler.start")
    browser.start_tracing(page=page, categories=["devtools.timeline", "disabled-by-default-devtools.timeline"])
    for i in range(keys):
        page.keyboard.type("x" if i % 20 else " ", delay=0)
        page.wait_for_timeout(KEY_GAP_MS)
    page.wait_for_timeout(200)
    trace = browser.stop_tracing()
    if TRACE_DIR:
        (Path(TRACE_DIR) / f"trace-{n_cells}.json").write_bytes(trace)
    cpu = per_key_cpu(trace)
    remote = others.close() if others else 0
    if cdp:
        prof = cdp.send("Profiler.stop")["profile"]
        print(f"-- top self time while typing {keys} keys ({n_cells} cells):")
        for ms, name in top_functions(prof, profile):
            print(f"{ms:9.1f} ms  {name}")
    page.context.close()
    return {
        "cells": n_cells,
        "keys": len(cpu),
        "remote_keys": remote,
        "main_thread_cpu_per_key_ms": {
            "p50": round(statistics.median(cpu), 2),
            "p99": round(pct(cpu, 99), 2),
            "mean": round(statistics.fmean(cpu), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=80, help="keystrokes per notebook")
    parser.add_argument("--others", action="store_true", help="two other people type meanwhile")
    parser.add_argument("--cursors", action="store_true", help="with --others: they move their cursor with each key")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print the big notebook's N hottest functions"
    )
    parser.add_argument("--only", choices=["big", "small"], help="measure one notebook only")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    nb, big = w4_notebook()
    files = {"big.ipynb": big, "small.ipynb": small_notebook(nb)}
    sizes = {"big.ipynb": len(nb["cells"]), "small.ipynb": SMALL}  # type: ignore[arg-type]
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", files)
        rtc = RtcProcess(repo, list(files))
        try:
            info = rtc.wait_ready()
            status, body = asyncio.run(get_json(f"{rtc.base}/api/session", info["token"]))
            assert status == 200, body
            rooms = {f["path"]: f["room"] for f in body["files"]}
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for path, n in sizes.items():
                    name = path.split(".")[0]
                    if args.only and args.only != name:
                        continue
                    room_url = f"{rtc.ws_base}{rooms[path]}?token={info['token']}&name=Typist" if args.others else None
                    figures[name] = measure(
                        browser,
                        f"{info['url']}&f={path}",
                        n,
                        args.keys,
                        room_url,
                        args.profile if name == "big" else 0,
                        args.cursors,
                    )
                    print(name, json.dumps(figures[name]), flush=True)
                browser.close()
        finally:
            rtc.kill()
    if "big" in figures and "small" in figures:
        b, s = figures["big"]["main_thread_cpu_per_key_ms"], figures["small"]["main_thread_cpu_per_key_ms"]
        figures["big_over_small"] = {k: round(b[k] / s[k], 2) for k in ("p50", "p99", "mean")}
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
