"""The owner's files change on disk during a session: merged in as CRDT operations."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from pycrdt import Text

from gitrtc import disk as disk_module

from .conftest import Live
from .support import async_wait_until


async def test_disk_edit_is_merged_with_concurrent_client_edit(live: Live) -> None:
    async with live.client("README.md") as alice:
        await alice.wait_synced()
        text = alice.doc.get("source", type=Text)
        text.insert(len(text), "Alice's line.\n")
        disk = live.repo / "README.md"
        await async_wait_until(lambda: disk.read_text().endswith("Alice's line.\n"), what="write-back")
        # another editor rewrites the file in place, changing the title only
        disk.write_text(disk.read_text().replace("# Project", "# Better title"))
        await async_wait_until(lambda: str(text).startswith("# Better title"), what="merge to the client")
        assert str(text) == "# Better title\n\nHello world.\nAlice's line.\n"
        assert any("changed on disk" in e for e in live.session.events)


async def test_touch_changes_nothing_and_notebook_rewrite_merges_cells(live: Live) -> None:
    nb_path = live.repo / "analysis.ipynb"
    async with live.client("analysis.ipynb") as client:
        await client.wait_synced()
        before = client.doc.get_update()
        os.utime(live.repo / "README.md")
        nb = json.loads(nb_path.read_text())
        nb["cells"][1]["source"] = ["print('hello')"]
        tmp = nb_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(tmp, nb_path)  # saved via rename, as editors do
        from pycrdt import Array
        cells = client.doc.get("cells", type=Array)
        await async_wait_until(lambda: str(cells[1]["source"]) == "print('hello')", what="cell merge")
        assert len(cells) == 2 and cells[1]["id"] == "code1"
        assert before != client.doc.get_update()
    # touching README.md changed nothing: no merge, its log holds at most its (pre)load
    assert not any(e.startswith("README.md") for e in live.session.events)
    assert len(await live.session.store.updates(live.room("README.md"))) <= 1


async def test_deleted_file_is_reported_and_kept(live: Live) -> None:
    async with live.client("src/tool.py") as client:
        await client.wait_synced()
        (live.repo / "src/tool.py").unlink()
        await async_wait_until(lambda: any("deleted on disk" in e for e in live.session.events), what="report")
        text = client.doc.get("source", type=Text)
        assert str(text) == "def f():\n    return 1\n"
        text.insert(0, "# back\n")
        await async_wait_until(lambda: (live.repo / "src/tool.py").exists(), what="restored by write-back")
        assert (live.repo / "src/tool.py").read_text() == "# back\ndef f():\n    return 1\n"


async def test_checkout_of_another_branch_freezes_write_back(live: Live) -> None:
    from .support import git

    git(live.repo, "branch", "other")
    async with live.client("README.md") as client:
        await client.wait_synced()
        git(live.repo, "symbolic-ref", "HEAD", "refs/heads/other")  # as `git checkout other` leaves HEAD
        text = client.doc.get("source", type=Text)
        text.insert(0, "Session: ")
        await async_wait_until(lambda: live.session.disk.frozen, what="write-back frozen")
        assert any("write-back is paused" in e for e in live.session.events)
        assert not (live.repo / "README.md").read_text().startswith("Session: ")
        git(live.repo, "symbolic-ref", "HEAD", "refs/heads/main")
        text.insert(len(text), "!")
        await async_wait_until(lambda: (live.repo / "README.md").read_text().startswith("Session: "),
                               what="write-back resumes on the session's branch")


async def test_broken_notebook_saved_on_disk_changes_nothing(live: Live) -> None:
    nb = live.repo / "analysis.ipynb"
    original = nb.read_bytes()
    async with live.client("analysis.ipynb") as client:
        await client.wait_synced()
        nb.write_text('{"cells": [ broken json')
        await async_wait_until(lambda: any("cannot be merged" in e for e in live.session.events), what="report")
        name = live.room("analysis.ipynb")
        assert live.session.codecs[name].dump(live.session.rooms[name].doc) == original  # the doc is intact


def test_a_file_slow_to_render_is_written_less_often() -> None:
    from gitrtc.disk import RENDER_DUTY, DiskSync, FileState

    typing = dict(dirty=True, first_dirty=100.0, last_change=100.5, rendered_at=99.5)
    quick = FileState("small.md", "/r/small.md", render_seconds=0.001, **typing)
    assert DiskSync._due(quick) == 100.75  # the quiet period after the last edit
    slow = FileState("big.ipynb", "/r/big.ipynb", render_seconds=0.2, **typing)
    assert DiskSync._due(slow) == 99.5 + RENDER_DUTY * 0.2  # the loop is held ≤ 1/RENDER_DUTY of the time


async def test_a_write_back_due_while_a_room_loads_waits_for_the_room(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    # due at once: a write-back scheduled by the load itself would run while the load
    # still waits for the store, before the room can be rendered
    monkeypatch.setattr(disk_module, "QUIET_SECONDS", 0.0)
    monkeypatch.setattr(disk_module, "MAX_DELAY_SECONDS", 0.0)
    for path in ("README.md", "analysis.ipynb", "docs/guide.md"):
        async with live.client(path) as client:
            await client.wait_synced()
        await asyncio.sleep(0.05)
        state = live.session.disk.files[path]
        failed = state.task is not None and state.task.done() and state.task.exception() is not None
        assert not failed, f"{path}: the write-back failed: {state.task.exception()!r}"
