"""Connection loss and the end of a session, as a participant experiences them."""

from __future__ import annotations

import re

import pytest
from pycrdt import Doc, Text

from ..support import YClient, git
from .conftest import expect, join, run_async, screenshot, snapshot, wait_for
from .helpers import NOTEBOOK, README, read_text, room_url

pytestmark = pytest.mark.browser


class Network:
    """Cut a page's WebSockets to the server and refuse new ones, then let them through
    again: a real disconnect as the page sees it (the server stays up)."""

    def __init__(self, page) -> None:
        self.offline = False
        self.routes: list = []
        page.route_web_socket(re.compile(r"/rooms/"), self._route)

    def _route(self, ws) -> None:
        if self.offline:
            ws.close(code=1001, reason="offline")
            return
        server = ws.connect_to_server()
        self.routes.append((ws, server))

    def cut(self) -> None:
        self.offline = True
        for ws, server in self.routes:
            server.close(code=1001, reason="offline")
            ws.close(code=1001, reason="offline")
        self.routes.clear()

    def restore(self) -> None:
        self.offline = False


def test_offline_edits_are_kept_and_sent_on_reconnect(start_session, people):
    session = start_session({"README.md": README})
    page = people.page()
    net = Network(page)
    join(page, session.url_for("README.md"), "Ada")

    net.cut()
    expect(page.locator("body")).to_have_attribute("data-conn", "offline")
    expect(page.locator(".conn")).to_contain_text("Offline")
    screenshot(page, "offline")
    # still editable: edits are kept locally
    expect(page.locator(".doc-text .cm-content")).to_have_attribute("contenteditable", "true")
    page.click(".doc-text .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type("Typed offline.")
    assert snapshot(page, "README.md") == README + "Typed offline."

    # meanwhile someone else edits on the server
    async def other_edit() -> None:
        doc = Doc()
        text = doc.get("source", type=Text)
        async with YClient(room_url(session, "README.md", "Other"), doc) as client:
            await client.wait_synced()
            assert str(text) == README  # the offline edit has not arrived
            text.insert(0, "Server side. ")
        assert read_text(session, "README.md", "Server side. " + README) == "Server side. " + README

    run_async(other_edit())

    net.restore()
    expect(page.locator("body")).to_have_attribute("data-conn", "online", timeout=30_000)
    expected = "Server side. " + README + "Typed offline."
    wait_for(page, lambda: snapshot(page, "README.md") == expected, "the other edit in the page")
    assert read_text(session, "README.md", expected) == expected
    readme = session.repo / "README.md"
    wait_for(page, lambda: readme.read_text() == expected, "both edits on the owner's disk")


def test_session_end_shows_the_commit_and_stops_editing(start_session, people):
    session = start_session({"README.md": README, "analysis.ipynb": NOTEBOOK})
    page = join(people.page(), session.url_for("README.md"), "Ada", "ada@example.org")
    page.click(".doc-text .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type("Last words.")
    assert read_text(session, "README.md", README + "Last words.")
    page.click(".file[data-path='analysis.ipynb']")
    expect(page.locator(".doc-notebook")).to_have_attribute("data-ready", "true")
    commit = session.stop("Finish the notes")
    assert re.fullmatch(r"[0-9a-f]{40}", commit), commit
    banner = page.locator(".banner-ended")
    expect(banner).to_contain_text("Session ended")
    expect(banner.locator("code.commit")).to_have_attribute("data-commit", commit)
    expect(banner).to_contain_text("main")
    expect(page.locator("body")).to_have_attribute("data-session", "ended")
    expect(page.locator(".conn")).to_have_text("Session ended")
    # nothing is editable any more, in either open document
    expect(page.locator(".doc-notebook .cm-content").first).to_have_attribute("contenteditable", "false")
    assert page.locator(".doc-notebook .nb-adders:visible").count() == 0
    page.click(".file[data-path='README.md']")
    expect(page.locator(".doc-text .cm-content")).to_have_attribute("contenteditable", "false")
    screenshot(page, "session-ended")
    assert snapshot(page, "README.md") == README + "Last words."
    # the commit has the edit and credits the participant
    assert git(session.repo, "show", f"{commit}:README.md") == README + "Last words."
    assert "Co-authored-by: Ada <ada@example.org>" in git(session.repo, "log", "-1", "--format=%B", commit)

    # and the page will not reconnect: every room connection is closed for good
    def all_closed() -> bool:
        rooms = page.evaluate("() => window.gitrtc.connections()")
        assert len(rooms) == 3, rooms  # the session room, README.md, analysis.ipynb
        return all(not r["connected"] and not r["reconnecting"] for r in rooms)

    wait_for(page, all_closed, "every room connection closed for good")


def test_a_failing_write_back_shows_in_the_status_bar(start_session, people):
    session = start_session({"README.md": README})
    page = people.page()
    join(page, session.url_for("README.md"), "Ada")
    target = session.repo / "README.md"
    target.unlink()
    target.mkdir()  # the file cannot be replaced now (as on a full or read-only disk)
    editor = page.locator(".doc-text .cm-content")
    editor.click()
    page.keyboard.type("Unsaved ")
    conn = page.locator(".conn")
    expect(conn).to_have_attribute("data-save", "error", timeout=20_000)
    expect(conn).to_contain_text("1 file not saved")
    assert "README.md" in (conn.get_attribute("title") or "")
    target.rmdir()
    page.keyboard.type("again ")
    wait_for(page, lambda: target.is_file() and "Unsaved again " in target.read_text(), "the write-back to recover")
    expect(conn).not_to_have_attribute("data-save", "error", timeout=20_000)
