"""Trees of any size (#19): a large tree's start reads no file that holds its blob at HEAD
(each is read when its room is first opened), a change writes one row of the store, not
the whole manifest, the index is read again only when it changed, and the folder watcher
is built off the event loop. Behaviour stays: the room shows the file, a save made on disk
before the first opening is merged and committed, a file that turns out binary leaves as
a whole-file share, the end commit is exact. `read_at_start=0` makes the small test tree
"large"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Text

from gitrtc import folderwatch
from gitrtc.limits import Limits
from gitrtc.manifest import FILES_KEY, MANIFEST_KEY, Manifest

from .conftest import FILES, Live, live_session
from .support import async_wait_until, git, make_repo

LARGE = Limits(read_at_start=0, preload_files=0)  # no preloading: what is read is what was opened
SHARED = ["README.md", "docs", "analysis.ipynb", "src"]


def stored_originals(live: Live) -> dict[str, bytes | None]:
    """Path → original bytes as the store's `files` table holds them (None: not read)."""
    db = sqlite3.connect(f"file:{live.session.store.path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT path, original FROM files").fetchall())
    finally:
        db.close()


def show_stat(repo: Path) -> str:
    return git(repo, "show", "--stat", "-M", "--format=%B", "HEAD")


async def test_a_large_start_reads_no_unchanged_file_until_its_room_opens(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {**FILES, "docs/notes.md": "Notes\n"})
    (repo / "docs/guide.md").write_text("Guide, changed before the start\n")  # not HEAD's: read now
    (repo / "docs/new.md").write_text("Untracked\n")  # not HEAD's either
    (repo / "src/tool.py").write_text("def f():\n    return 3\n")
    git(repo, "add", "src/tool.py")  # staged: the index matches the disk, not HEAD
    async with live_session(repo, SHARED, LARGE) as live:
        session = live.session
        paths = {f.path for f in session.manifest.files}
        assert {"README.md", "docs/notes.md", "docs/guide.md", "docs/new.md", "src/tool.py"} <= paths
        stored = stored_originals(live)
        read = {p for p, original in stored.items() if original is not None}
        assert read == {"docs/guide.md", "docs/new.md", "src/tool.py"}  # only what differs from HEAD was read
        assert set(session.disk.files) == read  # nor stat'ed one by one
        assert session.registry.read_on_open == 0
        async with live.client("README.md") as editor:
            await editor.wait_synced()
            text = editor.doc.get("source", type=Text)
            assert str(text) == FILES["README.md"]
            assert session.registry.read_on_open == 1
            assert stored_originals(live)["README.md"] == FILES["README.md"].encode()
            text.insert(len(str(text)), "A line from the session.\n")
            await async_wait_until(
                lambda: "from the session" in (repo / "README.md").read_text(), what="the write-back"
            )
        result = await session.end("Large tree session")
        assert result.commit
    stat = show_stat(repo)
    assert "README.md" in stat and "1 file changed" in stat, stat
    assert git(repo, "status", "--porcelain").splitlines() == [" M docs/guide.md", "M  src/tool.py", "?? docs/new.md"]


async def test_a_save_on_disk_before_the_first_opening_is_merged_and_committed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    async with live_session(repo, SHARED, LARGE) as live:
        await live.session.folders.ready.wait()
        (repo / "src/tool.py").write_text("def f():\n    return 2\n")  # the owner's save, nobody has it open
        async with live.client("src/tool.py") as editor:
            await editor.wait_synced()
            text = editor.doc.get("source", type=Text)
            await async_wait_until(lambda: "return 2" in str(text), what="the save to be merged")
        result = await live.session.end("Owner's save")
        assert result.commit
    assert git(repo, "show", "HEAD:src/tool.py") == "def f():\n    return 2\n"
    assert "src/tool.py" in show_stat(repo)
    assert git(repo, "status", "--porcelain") == ""


async def test_a_file_found_binary_at_its_first_opening_leaves_as_a_whole_file(tmp_path: Path) -> None:
    data = b"\x00\x01binary\xff"
    repo = make_repo(tmp_path / "repo", {**FILES, "docs/data.txt": data})
    async with live_session(repo, SHARED, LARGE) as live:
        session = live.session
        room = live.room("docs/data.txt")
        assert any(f.path == "docs/data.txt" and f.kind == "text" for f in session.manifest.files)  # by its name
        async with live.client("docs/data.txt") as client:
            assert await client.wait_closed() == 4404
        await async_wait_until(lambda: "docs/data.txt" in session.manifest.binaries, what="it to leave")
        assert all(f.path != "docs/data.txt" for f in session.manifest.files)
        assert room not in session.registry.files
        assert any(p == "docs/data.txt" for p, _why in session.manifest.skipped)
        assert "docs/data.txt" not in session.manifest.removed  # still on disk: not a deletion
        result = await session.end("Nothing but a look")
    assert (repo / "docs/data.txt").read_bytes() == data
    assert git(repo, "status", "--porcelain") == ""
    assert result.commit is None or "docs/data.txt" not in show_stat(repo)


async def test_a_change_writes_a_row_not_the_whole_manifest_and_a_restart_has_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    async with live_session(repo, SHARED, Limits(read_at_start=0)) as live:
        session = live.session
        await session.folders.ready.wait()
        (repo / "docs/new.md").write_text("New\n")
        await async_wait_until(lambda: any(f.path == "docs/new.md" for f in session.manifest.files), what="join")
        await session.store.flush()
        meta = await session.store.get_meta()
        assert "files" not in meta[MANIFEST_KEY]  # the manifest's JSON no longer carries the file list
        assert len(json.dumps(meta[MANIFEST_KEY])) < 4000
        assert [f["path"] for f in meta[FILES_KEY]][-1] == "docs/new.md"  # the files table, a row per file
        rebuilt = Manifest.from_meta(meta)
        assert rebuilt.files == session.manifest.files
        assert rebuilt.room_for("docs/new.md") == session.manifest.room_for("docs/new.md")


async def test_the_index_is_read_again_only_when_it_changed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    async with live_session(repo, SHARED) as live:
        session = live.session
        await session.folders.ready.wait()
        for n in range(3):  # three batches of changes
            (repo / f"docs/new{n}.md").write_text(f"New {n}\n")
            await async_wait_until(
                lambda n=n: any(f.path == f"docs/new{n}.md" for f in session.manifest.files), what="join"
            )
        assert session.fileset.git_view.loads == 1
        git(repo, "add", "docs/new0.md")  # the index changed: read again at the next batch
        (repo / "docs/new3.md").write_text("New 3\n")
        await async_wait_until(lambda: any(f.path == "docs/new3.md" for f in session.manifest.files), what="join")
        assert session.fileset.git_view.loads == 2


async def test_the_folder_watcher_is_built_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built_in: list[threading.Thread] = []
    real = folderwatch.watchfiles.watch

    def spy(*args: Any, **kwargs: Any) -> Iterator[Any]:
        built_in.append(threading.current_thread())  # where the watcher is built and waited on
        yield from real(*args, **kwargs)

    monkeypatch.setattr(folderwatch.watchfiles, "watch", spy)
    repo = make_repo(tmp_path / "repo", FILES)
    async with live_session(repo, SHARED) as live:
        await live.session.folders.ready.wait()
        assert built_in and all(t is not threading.main_thread() for t in built_in)
        (repo / "docs/seen.md").write_text("Seen\n")  # and it watches
        await async_wait_until(
            lambda: any(f.path == "docs/seen.md" for f in live.session.manifest.files), what="the new file"
        )


async def test_a_resumed_large_session_serves_its_unread_files_and_commits_exactly(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    async with live_session(repo, SHARED, LARGE) as live:
        async with live.client("README.md") as editor:
            await editor.wait_synced()
            text = editor.doc.get("source", type=Text)
            text.insert(0, "Edited. ")
            await async_wait_until(lambda: (repo / "README.md").read_text().startswith("Edited. "), what="write")
        await live.session.store.flush()
        files = list(live.session.manifest.files)
    # the process went away without ending: the next start resumes the store
    async with live_session(repo, SHARED, LARGE) as live:
        session = live.session
        assert session.resumed and session.manifest.files == files  # the rows, not the manifest's JSON
        assert set(session.registry.originals) == {live.room("README.md")}  # still only the one opened
        async with live.client("src/tool.py") as reader:
            await reader.wait_synced()
            assert str(reader.doc.get("source", type=Text)) == FILES["src/tool.py"]
        result = await session.end("Resumed")
        assert result.commit
    stat = show_stat(repo)
    assert "README.md" in stat and "1 file changed" in stat, stat
    assert git(repo, "show", "HEAD:README.md").startswith("Edited. ")


async def test_the_terminal_panel_reads_only_the_rows_it_shows(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    async with live_session(repo, SHARED, LARGE) as live:
        snap = live.session.snapshot(2)
        assert len(snap.files) == 2 and snap.file_count == len(live.session.manifest.files) > 2
        assert live.session.snapshot().file_count == len(live.session.snapshot().files)


@pytest.mark.parametrize("limits", [LARGE, Limits(preload_files=0)], ids=["large", "small"])
async def test_an_unloaded_room_drops_its_original_and_reopens_from_the_store(tmp_path: Path, limits: Limits) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    async with live_session(repo, SHARED, limits) as live:
        registry, room = live.session.registry, live.room("docs/guide.md")
        async with live.client("docs/guide.md") as editor:
            await editor.wait_synced()
            editor.doc.get("source", type=Text).insert(0, "Edited. ")
            await async_wait_until(lambda: (repo / "docs/guide.md").read_text().startswith("Edited. "), what="write")
        await async_wait_until(lambda: not registry.rooms[room].connections, what="the client to leave")
        read = registry.read_on_open
        registry.unload(room)  # what `idle.unload_idle` does to a room nobody uses
        assert room not in registry.rooms and room not in registry.originals  # memory bounded
        (repo / "docs/guide.md").write_text("Changed on disk meanwhile\n")  # not where the original comes from
        async with live.client("docs/guide.md") as reader:
            await reader.wait_synced()
            await async_wait_until(
                lambda: str(reader.doc.get("source", type=Text)) == "Changed on disk meanwhile\n", what="the merge"
            )
        assert registry.originals[room] == FILES["docs/guide.md"].encode()  # from the store
        assert registry.read_on_open == read
        result = await live.session.end("Unloaded and back")
        assert result.commit
    assert git(repo, "show", "HEAD:docs/guide.md") == "Changed on disk meanwhile\n"


def test_polling_looks_less_often_on_a_large_tree() -> None:
    assert folderwatch.poll_ms(10) == folderwatch.POLL_MS == 1000
    assert folderwatch.poll_ms(100_000) == 10_000  # each look stats every file


async def test_the_polling_fallback_built_off_the_loop_still_sees_a_new_file(tmp_path: Path) -> None:
    seen: list[set[str]] = []

    async def changed(paths: set[str]) -> None:
        seen.append(paths)

    (tmp_path / "docs").mkdir()
    watch = folderwatch.FolderWatch(tmp_path, ["docs"], changed, print, force_polling=True, poll_every_ms=50)
    task = asyncio.get_running_loop().create_task(watch.run())
    try:
        await watch.ready.wait()
        (tmp_path / "docs/new.md").write_text("New\n")
        await async_wait_until(lambda: any(str(tmp_path / "docs/new.md") in batch for batch in seen), what="it")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not watch.watching
