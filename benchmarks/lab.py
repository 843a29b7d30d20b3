"""Keystroke latency from JupyterLab (with gitrtc's extension) against gitrtc's own browser
client: the time from a key's keydown in the page to another participant seeing the
character, p50 / p99, both measured in the same run on the same session.

    PYTHONPATH=. .venv/bin/python benchmarks/lab.py [--keys 200] [--rounds 4] [--out FILE.json]

One `rtc start` serves a text file and a notebook. A real `jupyter lab` (this checkout's
server extension and built labextension, tests/labsupport.py) joins the session by its
link, as a JupyterLab user does: its editors talk to the session through the Jupyter
server's remote proxy (`gitrtc/remote/…`). gitrtc's own browser client opens the same
file from the session's own URL. Both pages are in one headless Chromium; a pycrdt
client (the remote participant) watches the room and notes when each character lands.

Each key is typed after the previous one has landed (latency, not throughput); the two
pages take turns in blocks (`--rounds`), so a busy moment of the machine falls on both.
keydown time: the page's `performance.timeOrigin + event.timeStamp`; seen: the remote's
`time.time()` when its document has the character (one machine, one wall clock).
Both editors: the text file in JupyterLab's file editor / gitrtc's text view, and the
first cell of the notebook in JupyterLab's notebook / gitrtc's notebook view.

Needs the built client (`cd web && npm run build`), the built labextension
(`labextension/build.sh`), JupyterLab and python playwright. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pycrdt import Array, Text  # noqa: E402

from tests.labsupport import (  # noqa: E402  (the tests' JupyterLab and Chromium)
    Background,
    chromium_page,
    expect,
    join_by_url,
    launch_lab,
    missing,
    notebook,
    room_of,
    show_panel,
    stop_lab,
    ws_url,
)
from tests.support import RtcProcess, YClient, make_repo  # noqa: E402

PROBE = """
(() => {
  window.__keydowns = [];
  addEventListener('keydown', (ev) => { window.__keydowns.push(performance.timeOrigin + ev.timeStamp); }, true);
})();
"""
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: JupyterLab's editor of each kind of file (a notebook: its first cell)
EDITORS = {
    "text": ".jp-MainAreaWidget:not(.lm-mod-hidden) .jp-FileEditor .cm-content",
    "notebook": ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content",
}


class Watcher:
    """The remote participant: a pycrdt client noting when the watched text changes length."""

    def __init__(self, bg: Background, url: str, kind: str) -> None:
        self.bg = bg
        self.client = YClient(url)
        self.kind = kind
        self.changes: list[tuple[int, float]] = []  # (text length, wall-clock time), appended by the loop's thread
        bg.run(self._start())

    def _text(self) -> Text:
        doc = self.client.doc
        found = doc.get("cells", type=Array)[0]["source"] if self.kind == "notebook" else doc.get("source", type=Text)
        assert isinstance(found, Text)
        return found

    async def _start(self) -> None:
        await self.client.connect()
        await self.client.wait_synced()
        text = self._text()
        self.changes.append((len(str(text)), time.time()))
        text.observe(lambda _event: self.changes.append((len(str(text)), time.time())))

    def length(self) -> int:
        return self.changes[-1][0]

    def first_longer(self, than: int) -> float:
        return next(t for n, t in list(self.changes) if n > than)

    def close(self) -> None:
        self.bg.run(self.client.close())


def type_block(page: Any, watcher: Watcher, keys: int) -> list[float]:
    """Type `keys` letters one at a time into the focused editor; ms from keydown to seen."""
    out = []
    for i in range(keys):
        before = watcher.length()
        page.keyboard.press(LETTERS[i % len(LETTERS)])
        deadline = time.monotonic() + 30
        while watcher.length() <= before:
            if time.monotonic() > deadline:
                raise TimeoutError("a keystroke never reached the other participant")
            time.sleep(0.0005)
        keydown = page.evaluate("window.__keydowns[window.__keydowns.length - 1]")
        out.append(watcher.first_longer(before) * 1000 - float(keydown))
    return out


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(values), "p50_ms": round(statistics.median(values), 2), "p99_ms": round(p99, 2)}


def focus_end(page: Any, editor: Any) -> None:
    editor.click()
    page.keyboard.press("Control+End")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=200, help="keystrokes per client and editor")
    parser.add_argument("--rounds", type=int, default=4, help="turns the clients take (keys split among them)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    why = missing()
    if why:
        sys.exit(why)
    per_block = max(1, args.keys // args.rounds)
    figures: dict[str, Any] = {"keys": per_block * args.rounds, "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = make_repo(base / "repo", {"notes.md": "# Notes\n", "nb.ipynb": notebook("x = 1")})
        (base / "home").mkdir()
        lab_root = base / "lab"
        lab_root.mkdir()
        rtc = RtcProcess(repo, ["notes.md", "nb.ipynb"])
        bg = Background()
        lab = None
        try:
            info = rtc.wait_ready()
            lab = launch_lab(base / "home", lab_root)
            with chromium_page() as jl:
                jl.add_init_script(PROBE)
                jl.goto(lab.url("bench"))
                expect(jl.locator("#jp-main-dock-panel")).to_be_visible()
                jl.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('gitrtc:join')")
                join_by_url(jl, info["url"], name="JupyterLab")
                show_panel(jl)
                web_context = jl.context.browser.new_context(viewport={"width": 1400, "height": 900})
                web_context.set_default_timeout(60_000)
                web_context.add_init_script(PROBE)
                web_context.add_init_script(
                    "localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Browser'}));"
                )
                for kind, path in (("text", "notes.md"), ("notebook", "nb.ipynb")):
                    room = bg.run(room_of(info, path))
                    watcher = Watcher(bg, ws_url(info, room, "Remote"), kind)
                    jl.locator(".gitrtc-joined-file", has_text=path).click()
                    selector = EDITORS[kind]
                    jl_editor = jl.locator(selector).first
                    expect(jl_editor).to_be_visible()
                    web = web_context.new_page()  # a page per file (a new #f= alone does not reload)
                    web.goto(f"{info['url']}&f={path}")
                    web_editor = web.locator(".cm-content").first
                    expect(web_editor).to_be_visible()
                    results: dict[str, list[float]] = {"jupyterlab": [], "gitrtc_browser": []}
                    for _ in range(args.rounds):
                        for name, page, editor in (("jupyterlab", jl, jl_editor), ("gitrtc_browser", web, web_editor)):
                            focus_end(page, editor)
                            results[name] += type_block(page, watcher, per_block)
                    watcher.close()
                    web.close()
                    row: dict[str, Any] = {name: summary(values) for name, values in results.items()}
                    row["ratio_p50"] = round(row["jupyterlab"]["p50_ms"] / row["gitrtc_browser"]["p50_ms"], 2)
                    row["ratio_p99"] = round(row["jupyterlab"]["p99_ms"] / row["gitrtc_browser"]["p99_ms"], 2)
                    figures[kind] = row
                    print(kind, json.dumps(row), flush=True)
                web_context.close()
        finally:
            if lab is not None:
                stop_lab(lab)
            bg.close()
            rtc.kill()
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
