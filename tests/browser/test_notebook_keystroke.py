"""What a keystroke and a cursor move cost in a notebook, structurally (issue 18: 16 ms
per key on a 464-cell notebook; benchmarks/editor.py measures the time): typing into one
cell, and another person typing and moving their cursor in another, do no work in the
other cells (no render, no editor update, no gutter redraw), counted through the page's
debug counters (web/src/debug.ts, window.__gitrtcCounts)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pycrdt import Array, Map, Text

from .conftest import expect, snapshot, wait_for
from .helpers import room_url
from .test_notebook_lazy import Person, cell_source

pytestmark = pytest.mark.browser

CELLS = 8


def notebook() -> str:
    cells = [
        {
            "cell_type": "code",
            "execution_count": i + 1,
            "id": f"c{i}",
            "metadata": {},
            "outputs": [{"name": "stdout", "output_type": "stream", "text": [f"out {i}\n"]}],
            "source": [f"x{i} = {i}\n", f"y{i} = x{i} * 2\n", f"print(y{i})"],
        }
        for i in range(CELLS)
    ]
    nb = {
        "cells": cells,
        "metadata": {"language_info": {"name": "python", "file_extension": ".py"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1) + "\n"


def counts(page: Any) -> dict[str, dict[str, int]]:
    return page.evaluate("window.__gitrtcCounts.read()")


def test_typing_in_one_cell_does_no_work_in_the_others(start_session, people):
    session = start_session({"big.ipynb": notebook()})
    page = people.page(viewport={"width": 1280, "height": 1400})
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("big.ipynb"))
    nb = page.locator(".doc-notebook")
    expect(nb).to_have_attribute("data-ready", "true")
    # every cell is near the visible area: each has its editor (the case where a remote
    # cursor used to redraw every editor)
    expect(nb.locator(".cell .cm-editor")).to_have_count(CELLS)
    bob = Person(room_url(session, "big.ipynb", "Bob"), "Bob")
    try:
        mine = page.locator(".cell[data-cell-id=c5] .cm-content")
        mine.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("#")
        cell_source(session, "c5", "#")
        page.evaluate("window.__gitrtcCounts.reset()")

        # Ada types into c5 while Bob types into c2 and moves his cursor there
        page.keyboard.type(" ada")
        bob.insert("c2", "bob = 1\n")
        bob.point_into_own_text(3)
        page.keyboard.type(" types")
        bob.point_into_own_text(5)
        bobs = page.locator(".cell[data-cell-id=c2]")
        expect(bobs.locator(".presence-tag[title='Bob is here']")).to_have_count(1)
        expect(bobs.locator(".cm-ySelectionInfo")).to_have_count(1)
        shown = {c["id"]: c["source"] for c in snapshot(page, "big.ipynb")}
        assert shown["c2"].startswith("bob = 1\n"), shown["c2"]
        assert cell_source(session, "c5", "# ada types").endswith("# ada types")

        got = counts(page)
        # the two cells in play did work (the counters count)
        assert got["editor"].get("c5", 0) >= len(" ada types"), got
        assert got["editor"].get("c2", 0) >= 1, got
        assert got["presence"].get("c2", 0) >= 1, got
        # and no other cell did any
        others = {f"c{i}" for i in range(CELLS)} - {"c2", "c5"}
        for kind, per_cell in got.items():
            assert not others & set(per_cell), (kind, per_cell)
        assert not page.errors, page.errors
    finally:
        bob.close()


HIGHLIT = "def f(x):\n    return 'text'  # note\n"
# (text of a token, what it is) in HIGHLIT
TOKENS = [("def", "keyword"), ("'text'", "string"), ("# note", "comment")]

CLASS_OF = """([root, token]) => {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.data.includes(token) && n.parentElement !== root && !n.parentElement.classList.contains('cm-line')) {
      return n.parentElement.className;
    }
  }
  return null;
}"""


def test_a_static_cell_is_highlighted_as_its_editor_will_be(start_session, people):
    # many cells, so that the last ones are far from the visible area: no editor, static view
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": HIGHLIT}
        for i in range(80)
    ]
    nb = {
        "cells": cells,
        "metadata": {"language_info": {"name": "python", "file_extension": ".py"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    session = start_session({"many.ipynb": json.dumps(nb, indent=1) + "\n"})
    page = people.page(viewport={"width": 1280, "height": 700})
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("many.ipynb"))
    expect(page.locator(".doc-notebook")).to_have_attribute("data-ready", "true")
    live = page.locator(".cell[data-cell-id=c0] .cm-content")
    expect(live).to_have_count(1)
    far = page.locator(".cell[data-cell-id=c79]")
    expect(far.locator(".cell-static span")).not_to_have_count(0)
    assert far.locator(".cm-editor").count() == 0
    expect(far.locator(".cell-static")).to_have_text(HIGHLIT + "\n")
    # far cells are invisible too: hit testing (after each layout, for hover) skips them
    assert far.evaluate("(c) => getComputedStyle(c).visibility") == "hidden"
    for token, what in TOKENS:
        in_editor = page.evaluate(CLASS_OF, [live.element_handle(), token])
        in_static = page.evaluate(CLASS_OF, [far.locator(".cell-static").element_handle(), token])
        assert in_editor, (token, what)
        assert in_static == in_editor, (token, what, in_static, in_editor)
    # the editors colour the three kinds differently, so the comparison means something
    assert len({page.evaluate(CLASS_OF, [live.element_handle(), t]) for t, _ in TOKENS}) == 3

    # a click into the highlighted static view puts the cursor where it was clicked (the
    # click in the same task as the scroll: before the cell, now near, builds its editor)
    page.evaluate(
        """(cell) => {
          cell.classList.remove('lazy-far');
          cell.style.contentVisibility = 'visible'; // laid out in this task, not at the next frame
          cell.scrollIntoView({ block: 'center' });
          const span = [...cell.querySelectorAll('.cell-static span')].find((s) => s.textContent.includes('note'));
          const box = span.getBoundingClientRect();
          span.dispatchEvent(new MouseEvent('mousedown', {
            bubbles: true, cancelable: true, button: 0, clientX: box.right - 1, clientY: box.top + box.height / 2,
          }));
        }""",
        far.element_handle(),
    )
    expect(far.locator(".cm-editor")).to_have_class(re.compile(r"\bcm-focused\b"))
    page.keyboard.type("!")
    shown = {c["id"]: c["source"] for c in snapshot(page, "many.ipynb")}
    assert shown["c79"] == HIGHLIT.replace("# note", "# note!"), shown["c79"]
    assert not page.errors, page.errors


def uint(data: bytes, pos: int) -> tuple[int, int]:
    """A lib0 var-uint at `pos`: (value, next position)."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def awareness_clients(frame: bytes) -> list[int] | None:
    """The client ids an awareness frame (y-websocket message 1) carries; None: not one."""
    kind, pos = uint(frame, 0)
    if kind != 1:
        return None
    _, pos = uint(frame, pos)  # the update's length
    count, pos = uint(frame, pos)
    ids = []
    for _ in range(count):
        client, pos = uint(frame, pos)
        _, pos = uint(frame, pos)  # clock
        size, pos = uint(frame, pos)
        pos += size  # the state (JSON)
        ids.append(client)
    return ids


def test_presence_is_sent_only_when_it_changes_and_only_ones_own(start_session, people):
    session = start_session({"big.ipynb": notebook()})
    page = people.page()
    sent: list[list[int]] = []

    def watch(ws: Any) -> None:
        def on_frame(payload: Any) -> None:
            if isinstance(payload, bytes) and (ids := awareness_clients(payload)) is not None:
                sent.append(ids)

        ws.on("framesent", on_frame)

    page.on("websocket", watch)
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("big.ipynb"))
    expect(page.locator(".doc-notebook")).to_have_attribute("data-ready", "true")
    mine = page.locator(".cell[data-cell-id=c3] .cm-content")
    mine.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("#")
    cell_source(session, "c3", "#")
    bob = Person(room_url(session, "big.ipynb", "Bob"), "Bob")
    try:
        bob.insert("c1", "bob = 1\n")
        sent.clear()
        # Bob moves his cursor: Ada's page does not send his presence back to the server
        for at in (1, 3, 5):
            bob.point_into_own_text(at)
        bobs = page.locator(".cell[data-cell-id=c1]")
        expect(bobs.locator(".presence-tag[title='Bob is here']")).to_have_count(1)
        # Ada types along her line (in the middle of it too): her place and her cursor's
        # position in the text (a Yjs relative position) do not change, so nothing is sent
        page.keyboard.type(" typing along one line", delay=40)
        page.keyboard.press("Home")
        page.keyboard.press("ArrowRight")
        page.keyboard.type("middle ", delay=40)
        cell_source(session, "c3", "middle ")
        page.wait_for_timeout(400)  # longer than the session room's place debounce (150 ms)
        bob_id = bob.client.doc.client_id
        assert not [ids for ids in sent if bob_id in ids], sent
        # her cursor moved once (Home, →): at most that, and a 15 s presence renewal per room
        assert len(sent) <= 4, sent
        assert not page.errors, page.errors
    finally:
        bob.close()


def test_the_editor_box_follows_its_editor(start_session, people):
    """A cell's editor box is a layout boundary of a set height (.cell-editor.sized): it
    follows the editor as lines come and go, so nothing is cut off or left blank."""
    session = start_session({"big.ipynb": notebook()})
    page = people.page()
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("big.ipynb"))
    expect(page.locator(".doc-notebook")).to_have_attribute("data-ready", "true")
    cell = page.locator(".cell[data-cell-id=c1]")
    box = cell.locator(".cell-editor")
    expect(box).to_have_class(re.compile(r"\bsized\b"))
    assert box.evaluate("(b) => getComputedStyle(b).contain") == "size layout style"

    def fits() -> bool:
        got = box.evaluate("(b) => [b.clientHeight, b.querySelector('.cm-editor').offsetHeight]")
        return got[0] == got[1]

    start = box.bounding_box()["height"]
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    for _ in range(4):
        page.keyboard.press("Enter")
    page.keyboard.type("z = 1")
    cell_source(session, "c1", "\n\n\n\nz = 1")
    wait_for(page, fits, "the box grown with the editor")
    grown = box.bounding_box()["height"]
    assert grown > start + 3 * 15, (start, grown)
    for _ in range(9):
        page.keyboard.press("Backspace")
    wait_for(page, fits, "the box shrunk with the editor")
    assert box.bounding_box()["height"] == start
    assert not page.errors, page.errors


CURSOR_ANIMATION = "(c) => getComputedStyle(c.closest('.cm-editor').querySelector('.cm-cursorLayer')).animationName"


def test_typing_starts_no_animation_and_hidden_toolbars_have_no_opacity(start_session, people):
    """Each key restarted CodeMirror's cursor blink (an animation start: an extra frame's
    work per key), and every cell's hidden toolbar was an opacity effect (each key's
    layerization grew with the notebook): the cursor is solid while typing and blinks
    after a pause; a hidden toolbar is transparent, still there to click and tab to."""
    session = start_session({"big.ipynb": notebook()})
    page = people.page(viewport={"width": 1280, "height": 1400})
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("big.ipynb"))
    expect(page.locator(".doc-notebook")).to_have_attribute("data-ready", "true")
    mine = page.locator(".cell[data-cell-id=c5] .cm-content")
    mine.click()
    page.keyboard.press("Control+End")
    # while typing: no cursor animation, so none is started per key
    names = []
    for key in "typing":
        page.keyboard.type(key)
        names.append(mine.evaluate(CURSOR_ANIMATION))
    assert names == ["none"] * len(names), names
    # after a pause the cursor blinks again
    wait_for(page, lambda: mine.evaluate(CURSOR_ANIMATION).startswith("cm-blink"), "the cursor blinking again")
    cell_source(session, "c5", "typing")

    # other cells' toolbars: no opacity effect, transparent; shown on hover
    other = page.locator(".cell[data-cell-id=c1]")
    toolbar = other.locator(".cell-toolbar")
    assert toolbar.evaluate("(t) => getComputedStyle(t).opacity") == "1"
    run = other.locator(".cell-run")
    assert run.evaluate("(b) => getComputedStyle(b).color") == "rgba(0, 0, 0, 0)"
    other.hover()
    wait_for(page, lambda: run.evaluate("(b) => getComputedStyle(b).color") != "rgba(0, 0, 0, 0)", "the toolbar shown")
    # the focused cell's toolbar shows too
    mine_run = page.locator(".cell[data-cell-id=c5] .cell-run")
    assert mine_run.evaluate("(b) => getComputedStyle(b).color") != "rgba(0, 0, 0, 0)"
    assert not page.errors, page.errors


def is_doc_update(frame: Any) -> bool:
    """A y-websocket sync message carrying a document update (message 0, sync type 2)."""
    return isinstance(frame, bytes) and frame[:2] == b"\x00\x02"


BURST = 30


def test_others_edits_that_arrive_together_are_applied_together_all_in_order(start_session, people):
    # web/src/remotebatch.ts: updates that come in while the page is busy (or within its
    # hold, 50 ms, of each other) are applied in one transaction, one editor update, not
    # one each; none is lost and the text is in the order it was typed
    session = start_session({"big.ipynb": notebook()})
    page = people.page(viewport={"width": 1280, "height": 1400})
    received: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: received.append(f) if is_doc_update(f) else None))
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("big.ipynb"))
    nb = page.locator(".doc-notebook")
    expect(nb).to_have_attribute("data-ready", "true")
    expect(nb.locator(".cell[data-cell-id=c2] .cm-editor")).to_have_count(1)
    bob = Person(room_url(session, "big.ipynb", "Bob"), "Bob")
    try:
        page.evaluate("window.__gitrtcCounts.reset()")
        received.clear()
        # the page is busy for a while (a long task) while Bob types BURST keys, each its
        # own update, so they all reach the page before it can look at any of them
        page.evaluate(
            "() => { setTimeout(() => { const end = performance.now() + 2500; while (performance.now() < end); }, 0); }"
        )
        typed = "".join(f"{i} " for i in range(BURST))

        async def burst() -> None:
            cells = bob.client.doc.get("cells", type=Array)
            src = next(c for c in cells if isinstance(c, Map) and c.get("id") == "c2")["source"]
            assert isinstance(src, Text)
            at = 0
            for i in range(BURST):
                src.insert(at, f"{i} ")
                at += len(f"{i} ")
                await bob.client.flush()

        bob.call(burst())
        shown = lambda: {c["id"]: c["source"] for c in snapshot(page, "big.ipynb")}["c2"]  # noqa: E731
        wait_for(page, lambda: shown().startswith(typed), f"Bob's {BURST} keys in c2")
        assert shown() == typed + "x2 = 2\ny2 = x2 * 2\nprint(y2)"
        expect(page.locator(".cell[data-cell-id=c2] .cm-content")).to_contain_text(typed.strip())
        # they came as BURST messages (the server does not merge them) and made far fewer
        # editor updates (each used to make its own)
        assert len(received) >= BURST, len(received)
        updates = counts(page)["editor"].get("c2", 0)
        assert 1 <= updates <= 3, updates
        assert not page.errors, page.errors
    finally:
        bob.close()


def test_others_edits_held_are_applied_before_this_persons_next_key(start_session, people):
    # web/src/remotebatch.ts: others' edits wait for this person's next key (up to the
    # hold, here made a minute) and are applied in its keydown, before it: drawn in the
    # key's own frame, and the key lands on the text with them
    session = start_session({"big.ipynb": notebook()})
    page = people.page(viewport={"width": 1280, "height": 1400})
    page.add_init_script("window.__gitrtcHoldMs = 60000")
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("big.ipynb"))
    nb = page.locator(".doc-notebook")
    expect(nb).to_have_attribute("data-ready", "true")
    mine = page.locator(".cell[data-cell-id=c5] .cm-content")
    mine.click()
    page.keyboard.press("Control+End")
    bob = Person(room_url(session, "big.ipynb", "Bob"), "Bob")
    try:
        bob.insert("c2", "bob = 1\n")
        wait_for(page, lambda: page.evaluate("window.__gitrtcHeld()") >= 1, "Bob's edit held")
        shown = lambda: {c["id"]: c["source"] for c in snapshot(page, "big.ipynb")}  # noqa: E731
        assert not shown()["c2"].startswith("bob"), shown()["c2"]
        page.keyboard.press("!")
        # no waiting: the key's own keydown applied it
        now = shown()
        assert now["c2"] == "bob = 1\nx2 = 2\ny2 = x2 * 2\nprint(y2)", now["c2"]
        assert now["c5"].endswith("print(y5)!"), now["c5"]
        assert page.evaluate("window.__gitrtcHeld()") == 0
        assert not page.errors, page.errors
    finally:
        bob.close()
