"""The owner's files change on disk during a session: merged in as CRDT operations."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pycrdt import Text

from gitrtc import safefs
from gitrtc.limits import Limits

from .conftest import Live, live_session
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
    assert not any("README.md" in e for e in live.session.events)
    assert len(await live.session.store.updates(live.room("README.md"))) <= 1


async def test_deleted_file_is_reported_and_kept(live: Live) -> None:
    async with live.client("src/tool.py") as client:
        await client.wait_synced()
        (live.repo / "src/tool.py").unlink()
        await async_wait_until(lambda: any("deleted on disk" in e for e in live.session.events), what="report")
        text = client.doc.get("source", type=Text)
        assert str(text) == "def f():\n    return 1\n"
        text.insert(0, "# back\n")
        restored = live.repo / "src/tool.py"
        want = "# back\ndef f():\n    return 1\n"
        await async_wait_until(
            lambda: restored.is_file() and restored.read_text() == want, what="restored by write-back, with the edit"
        )


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
        await async_wait_until(
            lambda: (live.repo / "README.md").read_text().startswith("Session: "),
            what="write-back resumes on the session's branch",
        )


async def test_broken_notebook_saved_on_disk_changes_nothing(live: Live) -> None:
    nb = live.repo / "analysis.ipynb"
    original = nb.read_bytes()
    async with live.client("analysis.ipynb") as client:
        await client.wait_synced()
        nb.write_text('{"cells": [ broken json')
        await async_wait_until(lambda: any("cannot be merged" in e for e in live.session.events), what="report")
        name = live.room("analysis.ipynb")
        assert live.session.codecs[name].dump(live.session.rooms[name].doc) == original  # the doc is intact
    # the save itself is not lost either: kept where the report says
    report = next(e for e in live.session.events if "cannot be merged" in e)
    kept = Path(report.rsplit("kept as ", 1)[1])
    assert kept.read_bytes() == b'{"cells": [ broken json'
    assert kept.is_relative_to(live.repo / ".git" / "rtc")


def test_a_file_slow_to_render_is_written_less_often() -> None:
    from gitrtc.disk import RENDER_DUTY, DiskSync, FileState

    typing = {"dirty": True, "first_dirty": 100.0, "last_change": 100.5, "rendered_at": 99.5}
    quick = FileState("small.md", "/r/small.md", render_seconds=0.001, **typing)
    sync = DiskSync(Path("/r"), lambda path: b"", lambda: True)
    assert sync._due(quick) == 100.75  # the quiet period after the last edit
    slow = FileState("big.ipynb", "/r/big.ipynb", render_seconds=0.2, **typing)
    assert sync._due(slow) == 99.5 + RENDER_DUTY * 0.2  # the loop is held ≤ 1/RENDER_DUTY of the time


async def test_a_write_back_due_while_a_room_loads_waits_for_the_room(
    repo: Path,
) -> None:
    # due at once: a write-back scheduled by the load itself would run while the load
    # still waits for the store, before the room can be rendered; no preload: each room
    # loads when its client joins
    limits = Limits(write_quiet_seconds=0.0, write_max_delay_seconds=0.0, preload_files=0)
    async with live_session(repo, ["README.md", "docs", "analysis.ipynb", "src"], limits) as live:
        for path in ("README.md", "analysis.ipynb", "docs/guide.md"):
            state = live.session.disk.files[path]
            assert state.task is None
            async with live.client(path) as client:
                await client.wait_synced()
            task = await async_wait_until(
                lambda s=state: s.task if s.task and s.task.done() else None,
                what=f"{path}: the load's write-back to run",
            )
            assert task.exception() is None, f"{path}: the write-back failed: {task.exception()!r}"


async def test_a_save_while_a_write_back_renders_is_merged_not_overwritten(tmp_path: Path) -> None:
    # a notebook's render takes a while in the disk thread; a save made meanwhile (and
    # seen by the watcher) must be merged before the write, never overwritten by it
    from gitrtc.disk import DiskSync

    (tmp_path / "a.md").write_bytes(b"base\n")
    rendering, go = threading.Event(), threading.Event()

    def render_later(path: str) -> Callable[[], bytes]:
        def render() -> bytes:
            rendering.set()
            go.wait(10)
            return b"the document\n"

        return render

    merged: list[bytes] = []

    async def on_disk_change(path: str, data: bytes, base: bytes | None) -> None:
        merged.append(data)

    sync = DiskSync(tmp_path, lambda path: b"", lambda: True, None, on_disk_change, render_later=render_later)
    sync.track("a.md", b"base\n")
    state = sync.files["a.md"]
    state.task = asyncio.ensure_future(sync.write("a.md"))
    try:
        assert await asyncio.to_thread(rendering.wait, 10)
        (tmp_path / "a.md").write_bytes(b"saved by the user meanwhile\n")
        await sync.check_paths(["a.md"])  # the watcher sees the save while the write renders
    finally:
        go.set()
        await state.task
    assert merged == [b"saved by the user meanwhile\n"]


async def test_a_save_right_after_a_write_back_is_merged_not_missed(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an editor saves in the instant between our rename and anything we look at afterwards
    target = live.repo / "README.md"
    saved: list[str] = []

    class EditorAfterRename:
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        def replace(self, src: str, dst: str, **dir_fds: int) -> None:
            os.replace(src, dst, **dir_fds)  # a name in the folder's descriptor (safefs)
            if dst == target.name and not saved:
                saved.append(target.read_text() + "Saved by an editor.\n")
                with open(target, "w") as out:  # in place, as many editors save
                    out.write(saved[0])

    monkeypatch.setattr(safefs, "os", EditorAfterRename())
    async with live.client("README.md") as client:
        await client.wait_synced()
        text = client.doc.get("source", type=Text)
        text.insert(0, "Typed. ")
        await async_wait_until(lambda: saved, what="the write-back")
        await async_wait_until(lambda: str(text) == saved[0], what="the editor's save merged")
        assert saved[0].startswith("Typed. # Project")
        assert target.read_text() == saved[0]


async def test_a_kernels_outputs_are_written_at_a_bounded_rate_and_an_edit_at_once() -> None:
    """A cell flooding output dirties its notebook many times a second: write-back of
    output-only changes waits `OUTPUT_WRITE_SECONDS` after the last render; any other
    change brings the write back to the usual quiet period (its timer moved sooner)."""
    from gitrtc.disk import OUTPUT_WRITE_SECONDS, DiskSync, FileState

    sync = DiskSync(Path("/r"), lambda path: b"", lambda: True)
    loop = asyncio.get_running_loop()
    now = loop.time()
    state = sync.files["nb.ipynb"] = FileState("nb.ipynb", "/r/nb.ipynb", rendered_at=now, render_seconds=0.001)
    try:
        sync.changed("nb.ipynb", coalesce=True)
        assert state.timer is not None
        assert state.timer.when() == pytest.approx(now + OUTPUT_WRITE_SECONDS, abs=0.05)
        sync.changed("nb.ipynb", coalesce=True)  # more output: still the same bound
        assert state.timer.when() == pytest.approx(now + OUTPUT_WRITE_SECONDS, abs=0.05)
        sync.changed("nb.ipynb")  # someone typed: the quiet period, not the outputs' bound
        assert state.timer is not None
        assert state.timer.when() <= loop.time() + sync.quiet + 1e-6  # float sums: when() may be a ulp above
    finally:
        if state.timer is not None:
            state.timer.cancel()


async def test_an_edit_made_while_a_file_is_renamed_is_written_at_its_new_name(tmp_path: Path) -> None:
    """A rename on disk moves the file's write-back state; the room names the old path
    until the move is done. An edit in that moment was a KeyError in the socket's handler
    (the editor's connection dropped, the edit never written): now it is written at the
    new name."""
    from gitrtc.disk import DiskSync

    (tmp_path / "old.md").write_text("v1\n")
    text = {"now": b"v1\n"}
    sync = DiskSync(tmp_path, lambda path: text["now"], lambda: True, quiet=0.05, max_delay=0.2)
    sync.track("old.md", b"v1\n")
    os.rename(tmp_path / "old.md", tmp_path / "new.md")
    moving = asyncio.ensure_future(sync.move("old.md", "new.md"))
    await asyncio.sleep(0)  # the move is looking at the disk (a thread); the room still says old.md
    assert "old.md" not in sync.files and "new.md" not in sync.files
    text["now"] = b"v2, typed during the rename\n"
    sync.changed("old.md")
    await moving
    await async_wait_until(
        lambda: (tmp_path / "new.md").read_bytes() == b"v2, typed during the rename\n", 5, "written at the new name"
    )
    assert not (tmp_path / "old.md").exists()
