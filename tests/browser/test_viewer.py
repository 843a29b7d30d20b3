"""A viewer (read-only link) sees everything live and can change nothing."""

from __future__ import annotations

import pytest

from ..support import YClient
from .conftest import expect, join, run_async, screenshot, snapshot, wait_for
from .helpers import NOTEBOOK, README, read_cells, read_text, room_url

pytestmark = pytest.mark.browser


def test_viewer_sees_live_edits_and_cannot_change_anything(start_session, people):
    session = start_session({"README.md": README, "analysis.ipynb": NOTEBOOK})
    viewer = people.page()
    warnings: list[str] = []
    viewer.on("console", lambda m: warnings.append(m.text) if "ermission" in m.text else None)
    join(viewer, session.url_for("README.md", readonly=True), "Vic")

    expect(viewer.locator(".badge.viewonly")).to_have_text("view only")
    editor = viewer.locator(".doc-text .cm-content")
    expect(editor).to_have_attribute("contenteditable", "false")
    editor.click()
    viewer.keyboard.type("should not appear")
    viewer.keyboard.press("Enter")
    viewer.keyboard.press("Control+a")
    viewer.keyboard.press("Delete")
    assert snapshot(viewer, "README.md") == README

    # an editor's change arrives live in the viewer's page
    async def edit() -> None:
        from pycrdt import Doc, Text

        doc = Doc()
        text = doc.get("source", type=Text)
        async with YClient(room_url(session, "README.md", "Editor"), doc) as client:
            await client.wait_synced()
            text.insert(len(text), "Live line.\n")
        assert read_text(session, "README.md", README + "Live line.\n")

    run_async(edit())
    wait_for(viewer, lambda: snapshot(viewer, "README.md") == README + "Live line.\n", "the live edit at the viewer")

    # notebooks: no cell buttons, no adders, rendered Markdown stays rendered
    viewer.click(".file[data-path='analysis.ipynb']")
    nb = viewer.locator(".doc-notebook")
    expect(nb).to_have_attribute("data-ready", "true")
    expect(nb.locator(".cell")).to_have_count(4)
    assert nb.locator(".cell-toolbar, .nb-adders, select.cell-type").count() == 0
    screenshot(viewer, "viewer-notebook")
    nb.locator(".cell[data-cell-id=intro] .cell-rendered").click()
    expect(nb.locator(".cell[data-cell-id=intro] .cell-rendered")).to_be_visible()
    expect(nb.locator(".cell[data-cell-id=intro] .cell-editor")).to_be_hidden()
    cell = nb.locator(".cell[data-cell-id=total] .cm-content")
    expect(cell).to_have_attribute("contenteditable", "false")
    cell.click()
    viewer.keyboard.type("x = 1")
    viewer.keyboard.press("Shift+Enter")

    # nothing changed anywhere, and the client never even tried to send a change
    assert read_text(session, "README.md") == README + "Live line.\n"
    cells = read_cells(session, "analysis.ipynb")
    assert [c["id"] for c in cells] == ["intro", "load", "total", "outro"]
    assert "".join(cells[2]["source"]) == "sum(data)"
    assert not warnings, warnings
    assert not viewer.errors, viewer.errors
    # the viewer is listed as such for the others
    other = join(people.page(), session.url_for("README.md"), "Ed")
    expect(other.locator(".people .person[data-name=Vic] .person-role")).to_have_text("viewer")
