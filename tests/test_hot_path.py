"""What the fast paths must never change: every reader gets every update once and in
order, a joiner gets the latest state, the log replays exactly, every editor is credited."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import sqlite3
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from gitrtc.errors import StoreError
from gitrtc.limits import DEFAULT, Limits
from gitrtc.origins import Participant
from gitrtc.store import Store, encode_row, pack, unpack

from .conftest import FILES, Live
from .support import RtcProcess, async_wait_until, edit, git, make_repo
from .test_cli import run_rtc, ws_url


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
            await async_wait_until(
                lambda: all(str(source(r)) == expected for r in readers), timeout=60, what="every reader has the burst"
            )
            for states in seen:  # each update applied once, in the writer's order: the text only grows
                assert len(states) == 2000
                assert all(b.startswith(a) and len(b) == len(a) + 1 for a, b in itertools.pairwise(states))
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


async def _store(path: Path, limits: Limits = DEFAULT) -> Store:
    store = Store(path, limits)
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
        db.executescript(
            "CREATE TABLE updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, data BLOB NOT NULL);"
        )
        db.executemany(
            "INSERT INTO updates (room, data) VALUES (?, ?)",
            [("r" if i % 2 else "q", u) for i, u in enumerate(updates)],
        )
    else:
        db.executescript(
            "CREATE TABLE updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL,"
            " data BLOB NOT NULL, n INTEGER NOT NULL DEFAULT 1, z INTEGER NOT NULL DEFAULT 0);"
            "CREATE INDEX updates_room ON updates (room, seq);"
        )
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


def _on_disk(path: Path) -> int:
    """A store's bytes on disk: the database, its WAL and the update journal."""
    files = (path, Path(f"{path}-wal"), path.with_name(path.stem + ".journal"))
    return sum(f.stat().st_size for f in files if f.exists())


@pytest.mark.parametrize("where", ["in the database", "in the journal"])
async def test_compaction_gives_the_space_back(tmp_path: Path, where: str) -> None:
    # in the database: each batch folded at once, as typed
    limits = Limits(journal_limit=0) if where == "in the database" else DEFAULT
    updates, final = _updates(3000)
    path = tmp_path / "s.sqlite"
    store = await _store(path, limits)
    store.append("other", b"\x00\x00")
    await store.flush()
    empty = _on_disk(path)  # tables, indexes, a WAL
    try:
        for i in range(0, len(updates) - 50, 50):  # many small batches, as typing makes them
            for update in updates[i : i + 50]:
                store.append("room", update)
            await store.flush()
        doc = Doc()
        for update in await store.updates("room"):
            doc.apply_update(update)
        for update in updates[-50:]:  # typed since: in the journal unless folded at once
            store.append("room", update)
            doc.apply_update(update)
        await store.flush()
        big = _on_disk(path)
        await store.compact("room", doc.get_update)
        small = _on_disk(path)
        assert small - empty < (big - empty) / 2, (empty, big, small)
        compacted = await store.updates("room")
        assert len(compacted) == 1  # the whole log replaced by one state update
        replay = Doc()
        replay.apply_update(compacted[0])
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


async def test_a_file_whose_log_is_damaged_is_refused_and_the_others_are_served(repo: Path) -> None:
    from .conftest import live_session

    # no preload: README's room loads on first use
    async with live_session(repo, ["README.md", "src"], Limits(preload_files=0)) as live:
        db = sqlite3.connect(live.session.store.path)
        db.execute("INSERT OR IGNORE INTO rooms (name) VALUES (?)", (live.room("README.md"),))
        db.execute(
            "INSERT INTO log (room, data, n, z) SELECT id, X'789c00', 1, 1 FROM rooms WHERE name = ?",
            (live.room("README.md"),),
        )
        db.commit()
        db.close()
        async with live.client("README.md") as client:
            assert await client.wait_closed() == 1011
        assert any("damaged log row" in e for e in live.session.events)
        async with live.client("src/tool.py") as other:
            await other.wait_synced()
            assert str(source(other)) == "def f():\n    return 1\n"


async def test_keystrokes_go_to_the_journal_and_what_a_kill_leaves_replays_them_all(tmp_path: Path) -> None:
    """One durable write per keystroke, to the update journal, which is folded into the
    log as it fills (so it stays small) and at close. What a kill -9 leaves (the log and
    the journal as they are) replays every update, and a close leaves no journal."""
    import shutil

    # no checkpoints: files stay still while copied
    limits = Limits(journal_limit=16 * 1024, checkpoint_every=3600.0)
    updates, final = _updates(3000)
    path = tmp_path / "s.sqlite"
    journal = tmp_path / "s.journal"
    store = await _store(path, limits)
    peak = 0
    for i, update in enumerate(updates):
        store.append("room" if i % 3 else "other", update)
        await store.flush()  # a write each, as keystrokes arrive one per tick
        peak = max(peak, journal.stat().st_size)
    assert 0 < journal.stat().st_size and peak < 16 * 1024 + 1024  # folded as it filled
    db = sqlite3.connect(path)
    rows, compressed = db.execute("SELECT COUNT(*), SUM(z) FROM log").fetchone()
    assert rows < 100 and compressed >= 1  # folds are packed rows, not one row per keystroke
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("s.sqlite", "s.sqlite-wal", "s.journal"):
        shutil.copy2(tmp_path / name, killed / name)
    copy = await _store(killed / "s.sqlite", limits)
    try:
        assert await copy.updates("room") == [u for i, u in enumerate(updates) if i % 3]
        assert await copy.updates("other") == updates[0::3]
    finally:
        await copy.close()
    assert not (killed / "s.journal").exists()
    await store.close()
    assert not journal.exists()
    assert db.execute("SELECT COUNT(*) FROM log WHERE z = 0 AND n > 1").fetchone()[0] == 0  # sealed
    store = await _store(path, limits)
    try:
        replay = Doc()
        for update in await store.updates("room") + await store.updates("other"):
            replay.apply_update(update)
        assert str(replay.get("source", type=Text)) == final
    finally:
        await store.close()


async def test_a_journal_cut_short_by_a_crash_keeps_every_whole_record(tmp_path: Path) -> None:
    from gitrtc import journal as journal_module

    updates, _ = _updates(50)
    path = tmp_path / "s.sqlite"
    store = await _store(path)
    store.append("room", updates[0])
    await store.flush()  # the room is in the log: what follows goes to the journal
    for update in updates[1:]:
        store.append("room", update)
        await store.flush()
    journal = tmp_path / "s.journal"
    data = journal.read_bytes()
    assert journal_module.decode(data) == ([(1, u) for u in updates[1:]], len(data))
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("s.sqlite", "s.sqlite-wal"):
        (killed / name).write_bytes((tmp_path / name).read_bytes())
    (killed / "s.journal").write_bytes(data[:-3])  # the last record torn in mid-write
    await store.close()
    copy = await _store(killed / "s.sqlite")
    try:
        assert await copy.updates("room") == updates[:-1]
        copy.append("room", updates[-1])  # appends go on after the cut
        await copy.flush()
    finally:
        await copy.close()
    again = await _store(killed / "s.sqlite")
    try:
        assert await again.updates("room") == updates
    finally:
        await again.close()


async def test_the_wal_is_checkpointed_while_keystrokes_go_on(tmp_path: Path) -> None:
    """SQLite's own checkpoint is off (it made keystrokes wait on fsync); the store's
    checkpoint thread keeps the WAL from growing without bound while appends go on, and
    the data is in the database file, not only in the WAL."""
    # every batch folded: a commit per keystroke
    limits = Limits(checkpoint_every=0.05, journal_limit=0)
    updates, _ = _updates(3000)
    path = tmp_path / "s.sqlite"
    store = await _store(path, limits)
    wal = Path(str(path) + "-wal")
    peak = 0
    try:
        for i, update in enumerate(updates):
            store.append(f"room{i % 7}", update * 20)  # ~1 KB rows: every commit writes pages
            await store.flush()
            if i % 50 == 0:  # the checkpoint thread's turn, however slow the machine
                done = store.checkpoints
                await async_wait_until(lambda done=done: store.checkpoints > done, what="a checkpoint")
                peak = max(peak, wal.stat().st_size)
    finally:
        await store.close()
    unchecked = len(updates) * 4096  # a page or more per commit, all kept without checkpoints
    assert peak < unchecked / 4, (peak, unchecked)
    assert path.stat().st_size > sum(map(len, updates))  # the rows reached the database file
    assert not wal.exists() or wal.stat().st_size == 0


def _image_output(seed: int) -> bytes:
    """An update the size of a kernel's 200 KB image output (270 KB of base64)."""
    return base64.b64encode(random.Random(seed).randbytes(200_000))


def _log_rows(path: Path) -> list[tuple[int, int]]:
    """(z, stored bytes) of every log row, read beside the store (WAL: a reader of its own)."""
    db = sqlite3.connect(path)
    try:
        return [(z, size) for z, size in db.execute("SELECT z, LENGTH(data) FROM log ORDER BY seq")]
    finally:
        db.close()


async def test_a_big_row_is_written_as_it_is_and_compressed_by_the_checkpoint_thread(tmp_path: Path) -> None:
    """A kernel's image output: the store thread writes it uncompressed (the keystrokes
    queued behind it wait for an insert, not for 6-12 ms of zlib), the checkpoint thread
    compresses it later, at close what is left is compressed, a row a killed run left
    uncompressed is compressed by the next run; the log replays the same bytes throughout."""
    images = [_image_output(i) for i in range(4)]
    path = tmp_path / "s.sqlite"
    store = await _store(path, Limits(checkpoint_every=3600))  # no checkpoint until the close
    try:
        store.append("nb", images[0])  # a new room: straight into the log
        await store.flush()
        store.append("nb", images[1])  # a known one: the journal, folded (past its limit)
        await store.flush()
        assert _log_rows(path) == [(0, len(images[0])), (0, len(images[1]))]
        assert await store.updates("nb") == images[:2]
    finally:
        await store.close()
    rows = _log_rows(path)
    assert [z for z, _ in rows] == [1, 1] and all(size < len(images[0]) for _, size in rows)

    db = sqlite3.connect(path)  # as a run killed before compressing it leaves a row
    db.execute("UPDATE log SET data = ?, z = 0 WHERE seq = (SELECT MIN(seq) FROM log)", (images[0],))
    db.commit()
    db.close()
    store = await _store(path, Limits(checkpoint_every=0.01))
    try:
        assert await store.updates("nb") == images[:2]
        store.append("nb", images[2])
        store.append("other", b"x")  # two rooms: a batch for the log, not the journal
        await store.flush()
        assert (0, len(images[2])) in _log_rows(path)
        await async_wait_until(lambda: all(z == 1 for z, size in _log_rows(path) if size > 1000), what="compressed")
        assert await store.updates("nb") == images[:3]
        await store.compact("nb", lambda: images[3])  # the state of a whole notebook: big too
        assert await store.updates("nb") == images[3:]
        await async_wait_until(lambda: all(z == 1 for z, size in _log_rows(path) if size > 1000), what="compressed")
    finally:
        await store.close()
    store = await _store(path)
    try:
        assert await store.updates("nb") == images[3:]
        assert await store.updates("other") == [b"x"]
    finally:
        await store.close()


def test_the_cli_runs_on_uvloop_where_it_is_installed() -> None:
    import asyncio

    from gitrtc import eventloop

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    expected = "uvloop" if eventloop.uvloop is not None else "asyncio"
    assert eventloop.run(loop_module()).startswith(expected)


def test_a_journal_stops_at_a_zero_filled_or_garbled_tail() -> None:
    from gitrtc import journal as journal_module

    good = journal_module.encode(3, [b"first", b"second"]) + journal_module.encode(7, [b"third"])
    expected = [(3, b"first"), (3, b"second"), (7, b"third")]
    assert journal_module.decode(good) == (expected, len(good))
    # power loss can leave a file's end as zeros; a bit flip garbles a record
    assert journal_module.decode(good + bytes(64)) == (expected, len(good))
    flipped = bytearray(good)
    flipped[-1] ^= 0x01
    cut = len(good) - len(journal_module.encode(7, [b"third"]))
    assert journal_module.decode(bytes(flipped)) == (expected[:2], cut)


async def test_journaled_updates_of_a_room_the_log_does_not_know_are_set_aside(tmp_path: Path) -> None:
    """Power loss can keep a journal record whose room's first commit was lost: its room
    id may later name another room, so its updates are kept aside, never replayed."""
    from gitrtc import journal as journal_module

    updates, _ = _updates(3)
    path = tmp_path / "s.sqlite"
    store = await _store(path)
    store.append("room", updates[0])
    await store.close()
    journal = tmp_path / "s.journal"
    journal.write_bytes(journal_module.encode(1, [updates[1]]) + journal_module.encode(99, [updates[2]]))
    store = await _store(path)
    try:
        assert await store.updates("room") == updates[:2]
        store.append("new room", updates[2])  # a room made now gets the next id, not 99's updates
        assert await store.updates("new room") == [updates[2]]
    finally:
        await store.close()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM log WHERE room = 99").fetchone()[0] == 0
    aside = tmp_path / "s.journal.unknown-rooms"
    assert journal_module.decode(aside.read_bytes())[0] == [(99, updates[2])]
    assert not journal.exists()
