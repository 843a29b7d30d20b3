"""The browser client on a big notebook, in Chromium (Playwright): how fast it opens and
how fast typing stays while two other people type.

    PYTHONPATH=. .venv/bin/python benchmarks/browser.py [--keys 200] [--out FILE.json]

The notebook is W4's (bench.py): the largest pdsh chapters of fixtures/corpus joined to
5 MB, 464 cells with their PNG plots. One `rtc start` serves it; three people open it
in one headless Chromium (Debian's /usr/bin/chromium, or GITRTC_CHROMIUM).

- first paint: from navigation start to the first frame painted with cells in it;
- interactive: from navigation start until the notebook has synced, every cell is shown
  and a key typed into a cell is in its editor (the page answers input);
- keystroke latency: the measured person types into a cell in the middle of the
  notebook while two other people (real y-websocket clients, pycrdt) type into the
  next cells (10 keys/s each, each key an update the page applies); for each key,
  the time from the keydown event to the end of the next frame (a requestAnimationFrame
  then a task: the input-to-next-paint delay as the person sees it), and the time spent
  in the page's own handlers of that key. p50 / p95 / max.
- with --trace: a Chromium performance trace of the typing, and from it the page's main
  thread CPU time (thread time, so less sensitive to a busy machine than wall time) per
  key typed: all of it, and the part in style, layout and paint. Others' updates applied
  meanwhile are included (they are part of what typing in a shared notebook costs); per
  edit applied (ours and theirs) too, which depends less on how fast the machine is.

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
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import w4_notebook  # noqa: E402

from tests.support import RtcProcess, YClient, get_json, make_repo  # noqa: E402

CHROMIUM = os.environ.get("GITRTC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

# Installed before the page's own scripts: when cells first appear (then the next frame),
# and a keydown probe measuring each key to the end of the next frame.
PROBE = """
(() => {
  const t = (window.__bench = { keys: [] });
  new MutationObserver((_, obs) => {
    if (t.firstCells === undefined && document.querySelector('.doc-notebook .cell')) {
      t.firstCells = performance.now();
      requestAnimationFrame(() => setTimeout(() => { t.firstPaint = performance.now(); }, 0));
      obs.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
  addEventListener('keydown', (ev) => {
    if (!t.measure) return;
    const start = ev.timeStamp;
    const k = { handlers: 0, frame: 0 };
    t.keys.push(k);
    // after every listener of this event (capture at window runs first; bubble at window last)
    addEventListener('keydown', () => { k.handlers = performance.now() - start; }, { once: true });
    requestAnimationFrame(() => setTimeout(() => { k.frame = performance.now() - start; }, 0));
  }, true);
})();
"""


def identity(name: str) -> str:
    return f"localStorage.setItem('gitrtc.identity', JSON.stringify({{name: {json.dumps(name)}}}));"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=200, help="keystrokes measured")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    parser.add_argument("--trace", action="store_true", help="also trace the typing: main-thread CPU per key")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    nb, data = w4_notebook()
    cells = nb["cells"]
    assert isinstance(cells, list)
    print(f"notebook: {len(data) / 2**20:.1f} MiB, {len(cells)} cells")
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", {"big.ipynb": data})
        rtc = RtcProcess(repo, ["big.ipynb"])
        try:
            info = rtc.wait_ready()
            url = f"{info['url']}&f=big.ipynb"
            status, body = asyncio.run(get_json(f"{rtc.base}/api/session", info["token"]))
            assert status == 200, body
            room = next(f["room"] for f in body["files"] if f["path"] == "big.ipynb")
            room_url = f"{rtc.ws_base}{room}?token={info['token']}&name=Typist"
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                figures = run(browser, url, room_url, len(cells), args.keys, args.trace)
                browser.close()
        finally:
            rtc.kill()
    figures["notebook"] = {"bytes": len(data), "cells": len(cells)}
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


def open_page(browser: Any, name: str, probe: bool) -> Any:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(120_000)
    ctx.add_init_script(identity(name))
    if probe:
        ctx.add_init_script(PROBE)
    return ctx.new_page()


def type_into(page: Any, index: int) -> None:
    cell = page.locator(".cell-code").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+End")


class Typists:
    """Two other people typing into two cells, 10 keys/s each, over their own sockets
    (`cursors`: each also moves their cursor with every key, as arrow keys or clicks do,
    which is an awareness update to everyone)."""

    def __init__(self, room_url: str, cell_ids: list[str], cursors: bool = False) -> None:
        self.room_url = room_url
        self.cell_ids = cell_ids
        self.cursors = cursors
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.typed = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self.main()), daemon=True)
        self.thread.start()
        if not self.ready.wait(120):
            raise RuntimeError("the typists did not sync")

    async def main(self) -> None:
        from pycrdt import Array, Doc, Map, Text

        async def person(cell_id: str, synced: asyncio.Event) -> None:
            doc = Doc()
            cells = doc.get("cells", type=Array)
            async with YClient(self.room_url, doc) as client:
                await client.wait_synced()
                cell = next(c for c in cells if isinstance(c, Map) and c.get("id") == cell_id)
                source = cell["source"]
                assert isinstance(source, Text)
                synced.set()
                i = 0
                user = {"name": f"Typist {cell_id}", "color": "#00aa00", "colorLight": "#00aa0033"}
                while not self.stop.is_set():
                    source += "abcdefghij"[i % 10]
                    if self.cursors:  # on the character before the one just typed
                        item = {"client": doc.client_id, "clock": max(0, i - 1)}
                        at = {"type": None, "tname": None, "item": item, "assoc": 0}
                        await client.send_awareness({"user": user, "cursor": {"anchor": at, "head": at}})
                    i += 1
                    self.typed += 1
                    await asyncio.sleep(0.1)

        events = [asyncio.Event() for _ in self.cell_ids]
        tasks = [asyncio.create_task(person(c, e)) for c, e in zip(self.cell_ids, events, strict=True)]
        await asyncio.gather(*(e.wait() for e in events))
        self.ready.set()
        await asyncio.gather(*tasks)

    def close(self) -> int:
        self.stop.set()
        self.thread.join(10)
        return self.typed


RENDERING = {"UpdateLayoutTree", "Layout", "PrePaint", "Paint", "Layerize", "Commit", "RasterTask", "UpdateLayer"}


def main_thread_cpu(trace: bytes) -> dict[str, float]:
    """CPU milliseconds of the page's main thread in a trace: everything (its top-level
    tasks' thread time) and the style/layout/paint events among them."""
    events = json.loads(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    busy: dict[tuple[int, int], float] = {}
    rendering: dict[tuple[int, int], float] = {}
    for e in events:
        key = (e.get("pid"), e.get("tid"))
        if key not in mains or e.get("ph") != "X":
            continue
        cpu = e.get("tdur", e.get("dur", 0)) / 1000
        if e["name"] == "RunTask":
            busy[key] = busy.get(key, 0.0) + cpu
        elif e["name"] in RENDERING:
            rendering[key] = rendering.get(key, 0.0) + cpu
    page = max(busy, key=lambda k: busy[k])  # the notebook's renderer, not an idle one
    return {"main_thread_cpu_ms": busy[page], "style_layout_paint_cpu_ms": rendering.get(page, 0.0)}


def run(browser: Any, url: str, room_url: str, n_cells: int, keys: int, trace: bool = False) -> dict[str, Any]:
    me = open_page(browser, "Measured", probe=True)
    me.goto(url)
    me.wait_for_function(
        f"() => document.querySelectorAll('.doc-notebook .cell').length === {n_cells}"
        " && document.querySelector('.doc-notebook').dataset.ready === 'true'",
        polling=10,
    )
    shown = me.evaluate("performance.now()")
    middle = me.locator(".cell-code").count() // 2
    type_into(me, middle)
    me.keyboard.type("#")
    me.wait_for_function("() => document.activeElement.closest('.cm-content')?.textContent.endsWith('#')", polling=10)
    interactive = me.evaluate("performance.now()")
    first = me.evaluate("window.__bench.firstPaint")

    code_ids = me.evaluate("[...document.querySelectorAll('.cell-code')].map((c) => c.dataset.cellId)")
    others = Typists(room_url, [code_ids[middle + 1], code_ids[middle + 2]])
    type_into(me, middle)
    me.evaluate("window.__bench.keys = []; window.__bench.measure = true")
    if trace:
        browser.start_tracing(page=me, categories=["devtools.timeline", "disabled-by-default-devtools.timeline"])
    remote_before = others.typed
    started = time.monotonic()
    for i in range(keys):
        me.keyboard.type("x" if i % 20 else " ", delay=0)
        me.wait_for_timeout(60)
    elapsed = time.monotonic() - started
    remote_during = others.typed - remote_before
    me.evaluate("window.__bench.measure = false")
    me.wait_for_timeout(200)
    cpu = main_thread_cpu(browser.stop_tracing()) if trace else None
    got = me.evaluate("window.__bench.keys")
    remote = others.close()
    frames = [k["frame"] for k in got if k["frame"]]
    handlers = [k["handlers"] for k in got if k["handlers"]]
    return {
        "first_paint_ms": round(first),
        "all_cells_shown_ms": round(shown),
        "interactive_ms": round(interactive),
        "keystrokes": len(frames),
        "typing_seconds": round(elapsed, 1),
        "remote_keys_meanwhile": remote,
        "key_to_next_frame_ms": {
            "p50": round(statistics.median(frames), 1),
            "p95": round(pct(frames, 95), 1),
            "max": round(max(frames), 1),
        },
        "key_handlers_ms": {
            "p50": round(statistics.median(handlers), 1),
            "p95": round(pct(handlers, 95), 1),
            "max": round(max(handlers), 1),
        },
        **(
            {
                "trace_per_key_ms": {
                    "main_thread_cpu": round(cpu["main_thread_cpu_ms"] / keys, 2),
                    "style_layout_paint_cpu": round(cpu["style_layout_paint_cpu_ms"] / keys, 2),
                },
                # the others type at a wall-clock rate, so on a slow machine more of their
                # keys fall into each of ours: per edit applied (ours and theirs) is steadier
                "trace_per_edit_ms": {
                    "edits": keys + remote_during,
                    "main_thread_cpu": round(cpu["main_thread_cpu_ms"] / (keys + remote_during), 2),
                },
            }
            if cpu
            else {}
        ),
    }


if __name__ == "__main__":
    main()
