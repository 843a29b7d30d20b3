"""Shift-Enter in one browser → the output visible in another browser (issue 15).

    PYTHONPATH=. .venv/bin/python benchmarks/run_latency.py [--runs 20] [--out FILE.json]

One `rtc start --kernels` serves a small notebook; two people open it in one headless
Chromium (Debian's /usr/bin/chromium, or GITRTC_CHROMIUM), each in their own context.
Ada puts `print('<token>')` in a code cell and presses Shift-Enter; Bob's page watches
his copy of that cell. Per run: from Ada's keydown of Shift-Enter to the end of the
first frame in Bob's page after the token is in his DOM (a requestAnimationFrame, then
a task: what Bob waits to see it). Both pages stamp the wall clock
(`performance.timeOrigin + performance.now()`), so the two stamps compare. The first run
starts the shared kernel and is reported apart (cold); the others are warm.

Needs the built client (`cd web && npm run build`), python playwright and ipykernel.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support import RtcProcess, make_repo  # noqa: E402

CHROMIUM = os.environ.get("GITRTC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Run latency"},
        {"cell_type": "code", "execution_count": None, "id": "run", "metadata": {}, "outputs": [], "source": ""},
        {"cell_type": "code", "execution_count": None, "id": "next", "metadata": {}, "outputs": [], "source": ""},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}

#: Ada's page: the wall-clock time of each Shift-Enter keydown (capture: before the app's).
SENDER = """
(() => {
  window.__sent = [];
  addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && ev.shiftKey) window.__sent.push(performance.timeOrigin + performance.now());
  }, true);
})();
"""

#: Bob's page: the wall-clock end of the first frame after `token` is in the watched cell.
WATCH = """
(token) => new Promise((resolve) => {
  const cell = document.querySelector('.cell[data-cell-id=run]');
  const seen = () => {
    if (!cell.textContent.includes(token)) return false;
    obs.disconnect();
    requestAnimationFrame(() => setTimeout(() => resolve(performance.timeOrigin + performance.now()), 0));
    return true;
  };
  const obs = new MutationObserver(seen);
  obs.observe(cell, { childList: true, subtree: true, characterData: true });
})
"""


def identity(name: str) -> str:
    return f"localStorage.setItem('gitrtc.identity', JSON.stringify({{name: {json.dumps(name)}}}));"


def open_page(browser: Any, url: str, name: str, script: str | None = None) -> Any:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(120_000)
    ctx.add_init_script(identity(name))
    if script:
        ctx.add_init_script(script)
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function("() => document.querySelector('.doc-notebook')?.dataset.ready === 'true'", polling=20)
    return page


def one_run(ada: Any, bob: Any, token: str) -> float:
    """Ada runs `print(token)`; ms from her Shift-Enter to Bob's frame showing it."""
    editor = ada.locator(".cell[data-cell-id=run] .cm-content")
    editor.click()
    ada.keyboard.press("Control+a")
    ada.keyboard.type(f"print('{token}')")
    # Bob has the source (so the token in his DOM can only be the output's once cleared)
    bob.wait_for_function(
        "(t) => document.querySelector('.cell[data-cell-id=run] .cm-content, .cell[data-cell-id=run] pre')"
        "?.textContent.includes(t)",
        arg=token,
        polling=10,
    )
    bob.evaluate(
        f"(t) => {{ window.__shown = null; ({WATCH.strip()})(t + '\\n').then((at) => {{ window.__shown = at; }}); }}",
        token,
    )
    editor.click()
    ada.keyboard.press("Shift+Enter")
    bob.wait_for_function("() => typeof window.__shown === 'number'", polling=5, timeout=120_000)
    shown = float(bob.evaluate("window.__shown"))
    sent = float(ada.evaluate("window.__sent[window.__sent.length - 1]"))
    return shown - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="warm runs measured (after one cold run)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", {"run.ipynb": json.dumps(NOTEBOOK, indent=1) + "\n"})
        rtc = RtcProcess(repo, ["run.ipynb", "--kernels"])
        try:
            info = rtc.wait_ready()
            url = f"{info['url']}&f=run.ipynb"
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                ada = open_page(browser, url, "Ada", SENDER)
                bob = open_page(browser, url, "Bob")
                cold = one_run(ada, bob, "cold-0")
                warm = [one_run(ada, bob, f"warm-{i}") for i in range(args.runs)]
                browser.close()
        finally:
            rtc.kill()
    ordered = sorted(warm)
    figures = {
        "cold_first_run_ms": round(cold, 1),
        "warm_runs": len(warm),
        "warm_ms": {
            "p50": round(statistics.median(warm), 1),
            "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
            "max": round(max(warm), 1),
        },
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
