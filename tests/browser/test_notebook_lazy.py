"""A big real notebook (the pdsh chapters joined to 5 MB, 464 cells) in the browser:
cells build their editor only near the visible area (issue 18), and everything works on
cells that have none: a remote edit shows, find and replace reach them, typing at the
end and command-mode navigation work, and scrolling through does not pile editors up."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text

from ..support import CORPUS, YClient, async_wait_until
from .conftest import expect, run_async, snapshot, wait_for
from .helpers import read_cells, room_url, source

pytestmark = pytest.mark.browser

BIG = 5 * 2**20
SLOW = 120_000  # ms: opening 5 MB on a busy 2-core machine
T = 30_000


def big_notebook() -> dict[str, Any]:
    """The benchmark's notebook (benchmarks/bench.py `w4_notebook`), with cell ids `c0`…
    and a few cells of our own: `far` and the `twin`s deep inside, `last` at the end."""
    books = sorted((CORPUS / "notebooks" / "pdsh").glob("*.ipynb"), key=lambda p: p.stat().st_size, reverse=True)
    nb = json.loads(books[0].read_text())
    cells: list[dict[str, Any]] = []
    for book in books:
        cells += json.loads(book.read_text())["cells"]
        nb["cells"] = cells
        if len((json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()) >= BIG:
            break
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i}"

    def code(cell_id: str, text: str) -> dict[str, Any]:
        return {
            "cell_type": "code",
            "execution_count": None,
            "id": cell_id,
            "metadata": {},
            "outputs": [],
            "source": text,
        }

    cells[300] = code("twin1", "twin_marker = 1\n")
    cells[350] = code("twin2", "twin_marker = 2\n")
    cells[400] = code("far", "far_value = 1\n")
    cells.append(code("last", "# the end\n"))
    nb["cells"] = cells
    nb["nbformat_minor"] = 5
    return nb


class Person:
    """Another person on a pycrdt client, connected until `close` (its own event loop in
    a thread: playwright owns this one's)."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = YClient(url, Doc())
        self.call(self._open())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _open(self) -> None:
        await self.client.__aenter__()
        await self.client.wait_synced()

    def insert(self, cell_id: str, text: str) -> None:
        """Type `text` at the start of a cell's source (this person's first edit)."""

        async def go() -> None:
            cells = self.client.doc.get("cells", type=Array)
            cell = next(c for c in cells if isinstance(c, Map) and c.get("id") == cell_id)
            src = cell["source"]
            assert isinstance(src, Text)
            src.insert(0, text)
            await self.client.flush()

        self.call(go())

    def point_into_own_text(self, offset: int) -> None:
        """Put the cursor on the `offset`th character this person typed (a Yjs relative position)."""
        at = {"type": None, "tname": None, "item": {"client": self.client.doc.client_id, "clock": offset}, "assoc": 0}
        user = {"name": self.name, "color": "#00aa00", "colorLight": "#00aa0033"}
        self.call(self.client.send_awareness({"user": user, "cursor": {"anchor": at, "head": at}}))

    def close(self) -> None:
        self.call(self.client.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def cell_source(session: Any, cell_id: str, expected: str) -> str:
    """A cell's source as a fresh pycrdt client receives it (waiting for `expected` in it)."""

    async def go() -> str:
        doc = Doc()
        async with YClient(room_url(session, "big.ipynb"), doc) as client:
            await client.wait_synced()
            cells = doc.get("cells", type=Array)

            def text() -> str:
                cell = next(c for c in cells if isinstance(c, Map) and c.get("id") == cell_id)
                return str(cell["source"])

            await async_wait_until(lambda: expected in text(), what=f"{expected!r} in {cell_id}")
            return text()

    return run_async(go())


def editors(page: Any) -> int:
    return page.locator(".doc-notebook .cm-editor").count()


def test_a_big_notebook_builds_editors_near_the_view_only(start_session, people):
    nb = big_notebook()
    n = len(nb["cells"])
    assert n > 400
    session = start_session({"big.ipynb": json.dumps(nb, indent=1) + "\n"})
    page = people.page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(SLOW)
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("big.ipynb"))
    notebook = page.locator(".doc-notebook")
    expect(notebook).to_have_attribute("data-ready", "true", timeout=SLOW)
    expect(notebook.locator(".cell")).to_have_count(n, timeout=SLOW)

    # the cells in view get their editor; the others show their source without one
    first = next(c["id"] for c in nb["cells"] if c["cell_type"] == "code")
    expect(page.locator(f".cell[data-cell-id={first}] .cm-editor")).to_have_count(1, timeout=T)
    built = editors(page)
    assert 0 < built < n // 5, built
    far = page.locator(".cell[data-cell-id=far]")
    expect(far.locator(".cm-editor")).to_have_count(0)
    expect(far).to_contain_text("far_value = 1")

    # another person edits that cell: its static view shows the edit, still without an
    # editor, and his cursor there is marked in the cell's gutter
    bob = Person(room_url(session, "big.ipynb", "Bob"), "Bob")
    try:
        bob.insert("far", "from_bob = 2\n")
        bob.point_into_own_text(4)
        expect(far).to_contain_text("from_bob = 2\nfar_value = 1", timeout=T)
        expect(far.locator(".presence-tag[title='Bob is here']")).to_have_count(1, timeout=T)
        assert far.locator(".cm-editor").count() == 0
        find_and_replace(
            page, session, first, far, twins=[page.locator(f".cell[data-cell-id={c}]") for c in ("twin1", "twin2")]
        )
    finally:
        bob.close()

    # to the end: type into the last cell; the others receive it
    last = page.locator(".cell[data-cell-id=last]")
    last.scroll_into_view_if_needed()
    last.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("typed_at_the_end = True")
    assert cell_source(session, "last", "typed_at_the_end") == "# the end\ntyped_at_the_end = True"
    # having scrolled through, the editors far behind were dropped again
    wait_for(page, lambda: editors(page) < n // 5, "the editors far behind dropped")

    # command mode: k walks up into cells that never had an editor; Enter edits one
    page.keyboard.press("Escape")
    expect(notebook).to_have_attribute("data-mode", "command")
    for _ in range(3):
        page.keyboard.press("k")
    active = page.locator(".cell.active")
    expect(active).to_have_attribute("data-index", str(n - 4))
    expect(active).to_be_in_viewport(timeout=T)
    cells = snapshot(page, "big.ipynb")
    target = cells[n - 4]
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("Enter")
    expect(active.locator(".cm-editor")).to_have_class(word("cm-focused"), timeout=T)
    # d d then z on it: deleted for everyone, then restored
    page.keyboard.press("Escape")
    page.keyboard.press("d")
    page.keyboard.press("d")
    wait_for(page, lambda: len(snapshot(page, "big.ipynb")) == n - 1, "the deletion")
    page.keyboard.press("z")
    wait_for(page, lambda: [c["id"] for c in snapshot(page, "big.ipynb")] == [c["id"] for c in cells], "the undo")
    got = read_cells(session, "big.ipynb")
    assert [c["id"] for c in got] == [c["id"] for c in cells]
    assert source(got[n - 4]) == target["source"]
    assert not page.errors, page.errors


def find_and_replace(page: Any, session: Any, first: str, far: Any, twins: list[Any]) -> None:
    """Ctrl-F from the first code cell: a match in `far` and replacements in the `twins`."""
    # find reaches it (in the model), selects the match in its (now built) editor, and
    # replaces there as Ada's edit; the other people get it
    page.locator(f".cell[data-cell-id={first}] .cm-content").click()
    page.keyboard.press("Control+f")
    page.keyboard.type("from_bob")
    page.keyboard.press("Enter")
    expect(page.locator(".find-count")).to_have_text("1 of 1")
    expect(far).to_have_class(word("find-current"))
    expect(far).to_be_in_viewport(timeout=T)
    expect(far.locator(".cm-selectionBackground")).to_have_count(1, timeout=T)
    # the editor built for it shows the other person's cursor, with his name
    expect(far.locator(".cm-ySelectionInfo", has_text="Bob")).to_have_count(1, timeout=T)
    page.fill(".find-replacement", "from_ada")
    page.click(".find-replace")
    assert cell_source(session, "far", "from_ada") == "from_ada = 2\nfar_value = 1\n"
    # replace-all changes cells that have no editor without building one
    page.fill(".find-query", "twin_marker")
    expect(page.locator(".find-count")).to_have_text("1 of 2")
    page.locator(f".cell[data-cell-id={first}]").scroll_into_view_if_needed()
    wait_for(page, lambda: all(t.locator(".cm-editor").count() == 0 for t in twins), "the twins' editors dropped")
    page.fill(".find-replacement", "renamed")
    page.click(".find-replace-all")
    assert cell_source(session, "twin1", "renamed") == "renamed = 1\n"
    assert cell_source(session, "twin2", "renamed") == "renamed = 2\n"
    assert all(t.locator(".cm-editor").count() == 0 for t in twins)
    expect(twins[1]).to_contain_text("renamed = 2", timeout=T)
    page.keyboard.press("Escape")


def word(name: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(name)}\b")
