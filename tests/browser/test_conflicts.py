"""A notebook merge conflict in the browser: marked on its cell with both versions side
by side, resolved with "Keep theirs" as an ordinary edit, then committed."""

from __future__ import annotations

import json
import re
import subprocess

import nbformat
import pytest
from pycrdt import Array, Map

from gitrtc.conflicts import attach
from gitrtc.documents import open_codec

from ..support import RTC, YClient, git
from .conftest import expect, join, run_async, snapshot, wait_for
from .helpers import NOTEBOOK

pytestmark = pytest.mark.browser


def test_conflict_shown_resolved_by_keep_theirs_and_committed(start_session, people):
    session = start_session({"analysis.ipynb": NOTEBOOK})
    page = join(people.page(), session.url_for("analysis.ipynb"), "Ada", "ada@example.org")
    wait_for(page, lambda: len(snapshot(page, "analysis.ipynb")) == 4, "the notebook")
    original = NOTEBOOK.encode() if isinstance(NOTEBOOK, str) else NOTEBOOK
    theirs = json.loads(original)
    load = next(c for c in theirs["cells"] if c["id"] == "load")
    load["source"] = ["data = [1, 2, 4]\n", "print('loaded')"]
    room = session.room("analysis.ipynb")
    url = f"{session.ws_base}{room}?token={session.info['token']}&name=Joan&email=joan@example.org"

    async def diverge() -> None:
        async with YClient(url) as client:
            await client.wait_synced()
            cells = client.doc.get("cells", type=Array)
            i = next(i for i, c in enumerate(cells) if c["id"] == "load")
            cells[i]["source"].insert(len("data = [1, 2, 3]"), "  # mine")  # typed live
            # a join folder saved its own change of the same line, from the original:
            codec = open_codec("analysis.ipynb", original)
            attach(codec, "the join folder of Joan")
            codec.apply_file(client.doc, json.dumps(theirs).encode(), "joan", base=original)
            state = client.doc.get("state", type=Map)
            assert any(k.startswith("conflict:") for k in state.keys())
            await client.flush()

    run_async(diverge())
    box = page.locator(".cell[data-cell-id=load] .conflict-box")
    expect(box).to_be_visible()
    expect(box.locator(".conflict-mine pre")).to_contain_text("data = [1, 2, 3]  # mine")
    expect(box.locator(".conflict-theirs pre")).to_contain_text("data = [1, 2, 4]")
    expect(page.locator(".cell[data-cell-id=load]")).to_have_class(re.compile("has-conflict"))
    refused = session.rtc.stop("-m", "too early")
    assert refused.returncode != 0 and "--take-current" in refused.stderr
    box.locator(".conflict-keep-theirs").click()
    expect(page.locator(".conflict-box")).to_have_count(0)
    wait_for(
        page,
        lambda: (
            next(c for c in snapshot(page, "analysis.ipynb") if c["id"] == "load")["source"]
            == "data = [1, 2, 4]\nprint('loaded')"
        ),
        "the resolution",
    )
    session.stop("Resolved")
    text = git(session.repo, "show", "HEAD:analysis.ipynb")
    nbformat.validate(nbformat.reads(text, as_version=4))
    got = next(c for c in json.loads(text)["cells"] if c["id"] == "load")
    assert "".join(got["source"]) == "data = [1, 2, 4]\nprint('loaded')"
    assert "Co-authored-by: Ada <ada@example.org>" in git(session.repo, "log", "-1", "--format=%B")


def test_an_offline_edit_of_a_cell_deleted_meanwhile_comes_back_flagged(start_session, people):
    """Ada's browser is offline while she types in a cell that Bob deletes meanwhile: on
    reconnect the cell is back with her edit (the server brings it back, `lateedits`),
    flagged on the cell, listed by `rtc status --json`; "Keep theirs" confirms the delete."""
    from .test_connection import Network

    session = start_session({"analysis.ipynb": NOTEBOOK})
    page = people.page()
    net = Network(page)
    join(page, session.url_for("analysis.ipynb"), "Ada", "ada@example.org")
    wait_for(page, lambda: len(snapshot(page, "analysis.ipynb")) == 4, "the notebook")

    def source(cid: str) -> str | None:
        return next((c["source"] for c in snapshot(page, "analysis.ipynb") if c["id"] == cid), None)

    net.cut()
    expect(page.locator("body")).to_have_attribute("data-conn", "offline")
    page.click(".cell[data-cell-id=total] .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type("  # offline")
    wait_for(page, lambda: source("total") == "sum(data)  # offline", "the offline edit")
    url = f"{session.ws_base}{session.room('analysis.ipynb')}?token={session.info['token']}&name=Bob"

    async def delete() -> None:
        async with YClient(url) as client:
            await client.wait_synced()
            cells = client.doc.get("cells", type=Array)
            del cells[next(i for i, c in enumerate(cells) if c["id"] == "total")]
            await client.flush()

    run_async(delete())
    net.restore()
    expect(page.locator("body")).to_have_attribute("data-conn", "online", timeout=30_000)
    box = page.locator(".cell[data-cell-id=total] .conflict-box")
    expect(box).to_be_visible()
    wait_for(page, lambda: source("total") == "sum(data)  # offline", "the cell back with the edit")
    assert [c["id"] for c in snapshot(page, "analysis.ipynb")] == ["intro", "load", "total", "outro"]
    status = subprocess.run([*RTC, "status", "--json"], cwd=session.repo, capture_output=True, text=True)
    listed = json.loads(status.stdout)["conflicts"]
    assert [(c["path"], c["cell"], c["kind"]) for c in listed] == [("analysis.ipynb", "total", "deleted")]
    box.locator(".conflict-keep-theirs").click()  # the deleting side: the delete stands
    wait_for(page, lambda: source("total") is None, "the delete confirmed")
    session.stop("Deleted")
    committed = json.loads(git(session.repo, "show", "HEAD:analysis.ipynb"))
    assert [c["id"] for c in committed["cells"]] == ["intro", "load", "outro"]
