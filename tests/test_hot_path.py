"""What the fast paths must never change: every reader gets every update once and in
order, a joiner gets the latest state, the log replays exactly, every editor is credited."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from gitrtc.errors import StoreError
from gitrtc.origins import Participant
from gitrtc.store import Store, encode_row, pack, unpack

from .conftest import FILES, Live
from .support import RtcProcess, async_wait_until, git, make_repo
from .test_cli import edit, run_rtc, ws_url


def source(client) -> Text:  # type: ignore[no-untyped-def]
    return client.doc.get("source", type=Text)


async def test_a_burst_reaches_every_reader_complete_and_in_order(live: Live) -> None:
    async with live.client("README.md") as writer:
        await writer.wait_synced()
        readers = [live.client("README.md", name=f"R{i}") for i in range(3)]
        for r in readers:
            await r.__aenter__()
        try:
            for r in readers:
                await r.wait_synced()
            seen: list[list[str]] = [[] for _ in readers]
            texts = [source(r) for r in readers]
            for i, t in enumerate(texts):
                t.observe(lambda e, *_, i=i: seen[i].append(str(texts[i])))
            text = source(writer)
            for i in range(2000):  # one update each, sent back to back
                text.insert(len(text), chr(ord("a") + i % 26))
            expected = str(text)
            await async_wait_until(lambda: all(str(source(r)) == expected for r in readers), timeout=60,
                                   what="every reader has the burst")
            for states in seen:  # each update applied once, in the writer's order: the text only grows
                assert len(states) == 2000
                assert all(b.startswith(a) and len(b) == len(a) + 1 for a, b in zip(states, states[1:]))
        finally:
            for r in readers:
                await r.__aexit__(None, None, None)


async def test_a_joiner_gets_the_latest_state_after_the_first_joiner_was_served(live: Live) -> None:
    async with live.client("README.md") as first:
        await first.wait_synced()  # the server now holds the encoded state for new clients
        source(first).insert(0, "edited ")
        await async_wait_until(lambda: (live.repo / "README.md").read_text().startswith("edited "), what="disk")
        async with live.client("README.md", name="Second") as second:
            await second.wait_synced()
            assert str(source(second)).startswith("edited # Project")
        (live.repo / "README.md").write_text("from disk\n" + (live.repo / "README.md").read_text())
        await async_wait_until(lambda: str(source(first)).startswith("from disk\n"), what="disk change merged")
        async with live.client("README.md", name="Third") as third:
            await third.wait_synced()
            assert str(source(third)) == str(source(first))


async def _store(path: Path) -> Store:
    store = Store(path)
    await store.open()
    return store


def _updates(n: int) -> tuple[list[bytes], str]:
    doc = Doc()
    text = doc.get("source", type=Text)
    out: list[bytes] = []
    doc.observe(lambda e: out.append(e.update))
    for i in range(n):
        text.insert(len(text), str(i % 10))
    return out, str(text)


async def test_the_log_replays_every_update_in_order_across_packed_rows(tmp_path: Path) -> None:
    updates, final = _updates(500)
    store = await _store(tmp_path / "s.sqlite")
    for i, update in enumerate(updates):
        store.append("room", update)
        if i % 97 == 0:
            await asyncio.sleep(0)  # let some batches go to disk on their own
    store.append("other", updates[0])
    await store.close()
    rows = sqlite3.connect(tmp_path / "s.sqlite").execute("SELECT COUNT(*) FROM log").fetchone()[0]
    assert rows < 500  # batches are stored as packed rows, not one row per keystroke
    store = await _store(tmp_path / "s.sqlite")
    try:
        assert await store.updates("room") == updates
        assert await store.updates("other") == [updates[0]]
    finally:
        await store.close()
    doc = Doc()
    for update in updates:
        doc.apply_update(update)
    assert str(doc.get("source", type=Text)) == final


@pytest.mark.parametrize("layout", ["one row per update", "packed rows with named rooms"])
async def test_a_store_from_an_earlier_layout_opens_and_replays(tmp_path: Path, layout: str) -> None:
    updates, _ = _updates(6)
    db = sqlite3.connect(tmp_path / "old.sqlite")
    if layout == "one row per update":
        db.executescript("CREATE TABLE updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL,"
                         " data BLOB NOT NULL);")
        db.executemany("INSERT INTO updates (room, data) VALUES (?, ?)",
                       [("r" if i % 2 else "q", u) for i, u in enumerate(updates)])
    else:
        db.executescript("CREATE TABLE updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL,"
                         " data BLOB NOT NULL, n INTEGER NOT NULL DEFAULT 1, z INTEGER NOT NULL DEFAULT 0);"
                         "CREATE INDEX updates_room ON updates (room, seq);")
        rows = [("q", *encode_row(pack(updates[0::2])), 3), ("r", *encode_row(pack(updates[1::2])), 3)]
        db.executemany("INSERT INTO updates (room, data, z, n) VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    store = await _store(tmp_path / "old.sqlite")
    try:
        store.append("r", b"\x00\x00")
        store.append("new", b"\x00\x01")
        await store.flush()
        assert await store.updates("r") == [*updates[1::2], b"\x00\x00"]
        assert await store.updates("q") == updates[0::2]
        assert await store.updates("new") == [b"\x00\x01"]
        assert await store.rooms_with_updates() == {"q", "r", "new"}
    finally:
        await store.close()
    tables = {r[0] for r in sqlite3.connect(tmp_path / "old.sqlite").execute("SELECT name FROM sqlite_master")}
    assert "updates" not in tables  # moved, not copied


def test_a_packed_row_with_stray_bytes_is_refused() -> None:
    assert unpack(pack([b"ab", b"", b"c"]), 3) == [b"ab", b"", b"c"]
    with pytest.raises(StoreError):
        unpack(pack([b"ab", b"c"]) + b"x", 2)


async def test_credits_are_written_once_and_again_after_a_commit(tmp_path: Path) -> None:
    store = await _store(tmp_path / "c.sqlite")
    alice, bob = Participant("Alice", "a@x.org", "editor"), Participant("Bob", "b@x.org", "editor")
    try:
        for _ in range(3):
            store.append("r", b"\x00\x00", alice)
        store.append("r", b"\x00\x00", bob)
        assert await store.credits() == [("Alice", "a@x.org"), ("Bob", "b@x.org")]
        await store.clear_credits()
        store.append("r", b"\x00\x00", alice)
        assert await store.credits() == [("Alice", "a@x.org")]
    finally:
        await store.close()


def test_an_editor_is_credited_again_in_the_next_checkpoint(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md", "--persistent"])
    try:
        proc.wait_ready()
        url = ws_url(proc, "README.md", "Alice", "alice@example.org")
        asyncio.run(edit(url, lambda t: t.insert(0, "A. ")))
        assert run_rtc(repo, "commit", "-m", "one").returncode == 0
        asyncio.run(edit(url, lambda t: t.insert(0, "again ")))
        done = run_rtc(repo, "commit", "-m", "two")
        assert done.returncode == 0, done.stderr
        assert "Co-authored-by: Alice <alice@example.org>" in git(repo, "log", "-1", "--format=%B")
        assert git(repo, "show", "HEAD:README.md").startswith("again A. # Project")
    finally:
        proc.kill()


async def test_shared_files_are_loaded_before_anyone_opens_them(live: Live) -> None:
    rooms = [live.room(p) for p in ("README.md", "docs/guide.md", "analysis.ipynb", "src/tool.py")]
    await async_wait_until(lambda: all(r in live.session.rooms for r in rooms), what="preloaded rooms")
    async with live.client("README.md") as client:
        await client.wait_synced()
        assert str(source(client)) == (live.repo / "README.md").read_text()


async def test_compaction_gives_the_space_back(tmp_path: Path) -> None:
    updates, final = _updates(3000)
    path = tmp_path / "s.sqlite"
    store = await _store(path)
    store.append("other", b"\x00\x00")
    await store.flush()
    empty = path.stat().st_size + Path(f"{path}-wal").stat().st_size  # tables, indexes, a WAL
    try:
        for i in range(0, len(updates), 50):  # many small batches, as typing makes them
            for update in updates[i:i + 50]:
                store.append("room", update)
            await store.flush()
        big = path.stat().st_size + Path(f"{path}-wal").stat().st_size
        doc = Doc()
        for update in await store.updates("room"):
            doc.apply_update(update)
        await store.compact("room", doc.get_update)
        small = path.stat().st_size + Path(f"{path}-wal").stat().st_size
        assert small - empty < (big - empty) / 2, (empty, big, small)
        replay = Doc()
        for update in await store.updates("room"):
            replay.apply_update(update)
        assert str(replay.get("source", type=Text)) == final
    finally:
        await store.close()


async def test_a_damaged_log_row_is_a_store_error_not_a_crash(tmp_path: Path) -> None:
    updates, _ = _updates(300)
    path = tmp_path / "s.sqlite"
    store = await _store(path)
    try:
        for update in updates:
            store.append("room", update)
        store.append("short", b"x" * 4)
        store.append("short", b"y" * 4)
        await store.flush()
        db = sqlite3.connect(path)
        of = "room = (SELECT id FROM rooms WHERE name = ?)"
        db.execute(f"UPDATE log SET data = X'0011' WHERE {of}", ("short",))  # 2 bytes for 2 lengths
        db.execute(f"UPDATE log SET data = X'789c00' WHERE {of} AND z = 1", ("room",))  # broken zlib
        db.commit()
        db.close()
        for room in ("room", "short"):
            with pytest.raises(StoreError, match="log row"):
                await store.updates(room)
    finally:
        await store.close()


async def test_a_file_whose_log_is_damaged_is_refused_and_the_others_are_served(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitrtc import session as session_module

    from .conftest import live_session

    monkeypatch.setattr(session_module, "PRELOAD_FILES", 0)  # README's room loads on first use
    async with live_session(repo, ["README.md", "src"]) as live:
        db = sqlite3.connect(live.session.store.path)
        db.execute("INSERT OR IGNORE INTO rooms (name) VALUES (?)", (live.room("README.md"),))
        db.execute("INSERT INTO log (room, data, n, z) SELECT id, X'789c00', 1, 1 FROM rooms WHERE name = ?",
                   (live.room("README.md"),))
        db.commit()
        db.close()
        async with live.client("README.md") as client:
            assert await client.wait_closed() == 1011
        assert any("damaged log row" in e for e in live.session.events)
        async with live.client("src/tool.py") as other:
            await other.wait_synced()
            assert str(source(other)) == "def f():\n    return 1\n"


async def test_keystrokes_fill_a_row_in_place_and_every_one_replays(tmp_path: Path) -> None:
    """One durable commit per keystroke, yet not one row per keystroke: the room's newest
    row takes batches until it is full, then is compressed. Nothing is lost on a kill
    (rows are complete at every commit) or on a close (open rows are sealed)."""
    from gitrtc.store import ROW_TARGET

    updates, final = _updates(3000)
    path = tmp_path / "s.sqlite"
    store = await _store(path)
    for i, update in enumerate(updates):
        store.append("room" if i % 3 else "other", update)
        await store.flush()  # a transaction each, as keystrokes arrive one per tick
    db = sqlite3.connect(path)
    rows = db.execute("SELECT COUNT(*), SUM(z) FROM log").fetchone()
    size = sum(map(len, updates))
    assert rows[0] <= 2 * (size // ROW_TARGET + 2) and rows[1] >= 1  # full rows compressed
    # what a kill -9 now would leave: a second connection reads every committed update
    copy = Store(path)
    await copy.open()
    try:
        assert await copy.updates("room") == [u for i, u in enumerate(updates) if i % 3]
    finally:
        await copy.close()
    open_rows = "SELECT COUNT(*) FROM log WHERE z = 0 AND n > 1"
    assert db.execute(open_rows).fetchone()[0] >= 1  # each room's newest row, still taking batches
    await store.close()
    assert db.execute(open_rows).fetchone()[0] == 0  # sealed (compressed) on close
    store = await _store(path)
    try:
        assert await store.updates("other") == updates[0::3]
        replay = Doc()
        for update in await store.updates("room") + await store.updates("other"):
            replay.apply_update(update)
        assert str(replay.get("source", type=Text)) == final
    finally:
        await store.close()


async def test_the_wal_is_checkpointed_while_keystrokes_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's own checkpoint is off (it made keystrokes wait on fsync); the store's
    checkpoint thread keeps the WAL from growing without bound while appends go on, and
    the data is in the database file, not only in the WAL."""
    import gitrtc.store as store_module

    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY", 0.05)
    updates, _ = _updates(3000)
    path = tmp_path / "s.sqlite"
    store = await _store(path)
    wal = Path(str(path) + "-wal")
    peak = 0
    try:
        for i, update in enumerate(updates):
            store.append(f"room{i % 7}", update * 20)  # ~1 KB rows: every commit writes pages
            await store.flush()
            if i % 50 == 0:
                await asyncio.sleep(0.06)  # give the checkpoint thread its turn
                peak = max(peak, wal.stat().st_size)
    finally:
        await store.close()
    unchecked = len(updates) * 4096  # a page or more per commit, all kept without checkpoints
    assert peak < unchecked / 4, (peak, unchecked)
    assert path.stat().st_size > sum(map(len, updates))  # the rows reached the database file
    assert not wal.exists() or wal.stat().st_size == 0


def test_the_cli_runs_on_uvloop_where_it_is_installed() -> None:
    import asyncio

    from gitrtc import eventloop

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    expected = "uvloop" if eventloop.uvloop is not None else "asyncio"
    assert eventloop.run(loop_module()).startswith(expected)
