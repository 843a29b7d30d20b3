"""The durable session store: manifest, original file bytes, update log, credits.

One SQLite database per session under `.git/rtc/sessions/ID/store.sqlite` (WAL,
`synchronous=NORMAL`: a committed transaction survives the process being killed at any
moment; power loss may lose the last batch), and beside it the update journal
`store.journal` (see `journal.py`). All disk work runs on one dedicated thread so the
event loop never blocks on disk; appends from one event-loop tick are written together,
and each one's `after_durable` callback runs (in order, on the loop) only once they are
written — that is what makes "stored before forwarded" cheap. A batch of a room already
in the log is appended to the journal (one `write`); the journal is folded into the log
in one transaction when it passes `Limits.journal_limit`, before any other write to the log,
before every read of it, and at close and open (a kill leaves it unfolded).
Checkpoints (the WAL copied into the database, with two fsyncs) run on a second thread
and connection, so no keystroke waits for one. That thread also compresses the big rows
(`DEFER_FROM`: a kernel's image output) that the store thread writes as they are: a
keystroke's batch queued behind a 270 KB row waited for its zlib (~6-12 ms), now for a
plain insert."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import safefs
from .errors import StoreError
from .journal import Journal, encode
from .limits import DEFAULT, Limits
from .manifest import FILES_KEY
from .origins import Participant
from .worker import Worker

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    room TEXT PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL, original BLOB
);
CREATE TABLE IF NOT EXISTS rooms (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY, room INTEGER NOT NULL, data BLOB NOT NULL,
    n INTEGER NOT NULL, z INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_room ON log (room, seq);
CREATE TABLE IF NOT EXISTS credits (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL
);
"""

#: Appends waiting for the disk before a writer is made to wait (backpressure).
MAX_PENDING = 20_000


def _defer_to_the_loop() -> None:
    """(store and checkpoint threads) Be scheduled as a batch thread: woken with a
    transaction, it no longer preempts the event loop's thread on the same core mid-tick,
    but runs when the loop waits (or its share comes up), so a busy loop hands it bigger
    batches. W1 on one core: 22,000 hand-overs for 260,000 updates before, each two
    context switches. The checkpoint thread's compression of big rows, 6-12 ms each, yields
    to the loop the same way."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux: the default policy, which works too
        pass


def _packed_size(updates: list[bytes]) -> int:
    """Bytes of `updates` as one packed row: a length before each."""
    return sum(map(len, updates)) + 4 * len(updates)


def pack(updates: list[bytes]) -> bytes:
    """Several updates as one log row: their lengths (uint32 each), then their bytes."""
    return struct.pack(f"<{len(updates)}I", *map(len, updates)) + b"".join(updates)


#: Log rows at least this big are stored zlib-compressed when that makes them smaller.
COMPRESS_FROM = 128
#: Rows at least this big are written uncompressed by the store thread and compressed
#: later by the checkpoint thread (`Store._compress_sync`): compressing a 270 KB image
#: output took the store thread 6-12 ms, and every batch after it waited that long.
DEFER_FROM = 64 * 1024
#: The WAL is cut back to this size when it restarts (by default SQLite keeps it at its
#: peak). Successive commits mostly rewrite the same few pages, so a checkpoint copies little.
WAL_LIMIT = 64 * 1024
# The update journal is folded into the log once it holds `Limits.journal_limit` bytes
# (and whenever the log is read): a keystroke is one `write` to the journal, a fold one
# transaction. Checkpoints run every `Limits.checkpoint_every` seconds while appends go
# on. SQLite's own (every 1,000 pages, inside the commit that crosses the line, fsyncs
# included) made every tenth keystroke wait 1–2 ms; a checkpoint on its own connection
# and thread holds no writer up.


def encode_row(data: bytes) -> tuple[bytes, int]:
    """A log row's stored bytes and its `z` flag (1: zlib)."""
    if len(data) >= COMPRESS_FROM:
        packed = zlib.compress(data, 1)
        if len(packed) < len(data):
            return packed, 1
    return data, 0


def decode_row(data: bytes, z: int) -> bytes:
    """The bytes `encode_row` was given."""
    return zlib.decompress(data) if z else data


def unpack(data: bytes, n: int) -> list[bytes]:
    """The updates of one log row (`n` of them; a row of one is stored as is)."""
    if n == 1:
        return [data]
    if len(data) < 4 * n:
        raise StoreError(f"a packed log row of {n} updates is only {len(data)} bytes")
    lengths = struct.unpack_from(f"<{n}I", data)
    out, pos = [], 4 * n
    for length in lengths:
        out.append(data[pos : pos + length])
        pos += length
    if pos != len(data):
        raise StoreError(f"a packed log row has {len(data) - pos} stray bytes")
    return out


#: A room's newest log row takes the next batches (rewritten in place) until it holds
#: about this many bytes; then it is compressed and a new row begins. A keystroke a
#: transaction would otherwise cost a row and an index entry bigger than itself. Small
#: enough that a row stays within its page: rewriting a row with overflow pages frees
#: and allocates pages at every keystroke, and the file grows with free pages.
ROW_TARGET = 1024


@dataclass(slots=True)
class _OpenRow:
    """A room's newest log row while it still takes batches (store thread only)."""

    seq: int
    updates: list[bytes]
    size: int


def _fits(row: _OpenRow | None, items: list[bytes]) -> bool:
    """Whether a batch can go into this open row in place."""
    return row is not None and row.size + _packed_size(items) <= ROW_TARGET


@dataclass(slots=True)
class _Pending:
    updates: list[tuple[str, bytes]] = field(default_factory=list)
    credits: list[Participant] = field(default_factory=list)
    callbacks: list[tuple[Callable[..., Callable[[], None] | None], tuple[Any, ...]]] = field(default_factory=list)
    #: (set by the store thread) The batch wrote the database, not only the journal.
    logged: bool = False


class Store:
    """A session's durable state; every method that touches the disk is async."""

    def __init__(self, path: Path, limits: Limits = DEFAULT) -> None:
        self.path = path
        self._journal_limit = limits.journal_limit
        self._checkpoint_every = limits.checkpoint_every
        self._worker = Worker("rtc-store", initializer=_defer_to_the_loop)
        self._db: sqlite3.Connection | None = None
        #: Keystrokes of known rooms go here first (store thread only; see `journal.py`).
        self._journal = Journal(path.with_name(path.stem + ".journal"))
        #: What the journal holds and the log does not yet: (room id, updates) per batch.
        self._journaled: list[tuple[int, list[bytes]]] = []
        #: The checkpointing connection, used only on its own thread.
        self._checkpoints = Worker("rtc-checkpoint", initializer=_defer_to_the_loop)  # compression too
        self._checkpoint_db: sqlite3.Connection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        #: Checkpoints completed so far (the WAL is folded into the database file at each).
        self.checkpoints = 0
        self._wrote = asyncio.Event()
        #: Room name → its small integer id in the log, as far as looked up (store thread
        #: only): a row and its index entry carry a byte or two, not a 25-character name.
        self._room_ids: dict[str, int] = {}
        #: Room id → its newest row, still uncompressed and taking batches (store thread only).
        self._open_rows: dict[int, _OpenRow] = {}
        #: Big rows (`DEFER_FROM`) of the transaction being written (store thread only) ...
        self._written_raw: list[int] = []
        #: ... and, once it committed, those that the checkpoint thread is to compress
        #: (seqs; appended on the store thread, taken on the checkpoint thread).
        self._raw_rows: deque[int] = deque()
        #: Whether the checkpoint thread looked for big rows an earlier run left uncompressed.
        self._raw_scanned = False
        self._pending = _Pending()
        #: A batch is with the store thread (one at a time, so batches commit in order).
        self._writing = False
        self._idle = asyncio.Event()  # set while nothing is pending or being written
        self._idle.set()
        self._capacity = asyncio.Event()
        self._capacity.set()
        #: False while too many appends are waiting for the disk (see `wait_capacity`); an
        #: attribute, not a property: every update asks.
        self.has_capacity = True
        self._failure: BaseException | None = None
        #: Participants already credited since the last commit (one row each, not per edit).
        self._credited: set[str] = set()
        #: Called once, on the loop, when a write fails; the session decides what to do.
        self.on_failure: Callable[[BaseException], None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) the database."""
        await self._run(self._open_sync)
        self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_loop())

    def _open_sync(self) -> None:
        try:  # owner-only, whatever the umask: the manifest holds the tokens
            safefs.private_dir(self.path.parent)
            safefs.private_file(self.path)  # SQLite gives -wal and -shm the database's mode
            for end in ("-wal", "-shm"):
                left = self.path.with_name(self.path.name + end)
                if left.exists():
                    os.chmod(left, 0o600)  # made by an older gitrtc
        except OSError as exc:
            raise StoreError(f"cannot create the session store {self.path}: {exc}") from exc
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # a page freed by a commit goes back to the file system at that commit (stores
            # made before keep incremental mode: the mode is set when a database is made)
            db.execute("PRAGMA auto_vacuum=FULL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread's job
            db.executescript(SCHEMA)
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'updates'").fetchone():
                _migrate_named_rooms(db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the session store {self.path}: {exc}") from exc
        self._db = db
        try:
            self._recover_journal(db)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the session's update journal {self._journal.path}: {exc}") from exc

    def _recover_journal(self, db: sqlite3.Connection) -> None:
        """Fold what the journal holds from the last run (a kill leaves it there) into the log."""
        records = self._journal.open()
        if not records:
            return
        known = {row[0] for row in db.execute("SELECT id FROM rooms")}
        stray = [r for r in records if r[0] not in known]
        if stray:  # power loss lost a room's first commit: never guess which room they belong to
            aside = self._journal.path.with_name(self._journal.path.name + ".unknown-rooms")
            safefs.write_private(aside, b"".join(encode(room_id, [update]) for room_id, update in stray), append=True)
            log.warning("%d journaled updates of rooms the store does not know are kept in %s", len(stray), aside)
        self._journaled = [(room_id, [update]) for room_id, update in records if room_id in known]
        self._fold()
        self._journal.clear()  # the stray ones too, now kept aside

    async def close(self) -> None:
        """Flush what is pending and close the database."""
        await self.flush()
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            try:
                await self._checkpointer
            except asyncio.CancelledError:
                pass
            self._checkpointer = None
        await self._checkpoints.run(self._close_checkpoint_db)
        self._checkpoints.close()
        await self._run(self._close_sync)  # the last connection to close folds the WAL in
        self._worker.close()

    async def _checkpoint_loop(self) -> None:
        """Checkpoint at most every `checkpoint_every` seconds while batches write the
        database (a batch that went only to the journal leaves the WAL as it was)."""
        while True:
            await self._wrote.wait()
            await asyncio.sleep(self._checkpoint_every)
            self._wrote.clear()
            try:
                await self._checkpoints.run(self._compress_sync)
            except sqlite3.Error as exc:  # those rows stay as they are: uncompressed, and complete
                log.warning("could not compress log rows of %s: %s", self.path, exc)
            try:
                await self._checkpoints.run(self._checkpoint_sync)
            except sqlite3.Error as exc:  # the WAL still holds every commit: the next one retries
                log.warning("checkpoint of %s failed: %s", self.path, exc)
            else:
                self.checkpoints += 1

    def _checkpoint_connection(self) -> sqlite3.Connection:
        db = self._checkpoint_db
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpoint_db = db
        return db

    def _checkpoint_sync(self) -> None:
        self._checkpoint_connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _compress_sync(self) -> None:
        """(checkpoint thread) Compress the big rows the store thread wrote as they are, and
        once per run those an earlier run left so (killed before it got to them)."""
        db = self._checkpoint_connection()
        if not self._raw_scanned:
            self._raw_scanned = True
            left = db.execute("SELECT seq FROM log WHERE z = 0 AND length(data) >= ?", (DEFER_FROM,))
            self._raw_rows.extend(seq for (seq,) in left.fetchall())
        _compress_rows(db, self._raw_rows)

    def _close_checkpoint_db(self) -> None:
        if self._checkpoint_db is not None:
            self._checkpoint_db.close()
            self._checkpoint_db = None

    def _close_sync(self) -> None:
        if self._db is not None:
            try:
                self._fold()
            except (sqlite3.Error, OSError) as exc:  # the journal keeps them: the next open folds them
                log.warning("could not fold the update journal of %s: %s", self.path, exc)
            try:
                with self._db:
                    self._db.execute("BEGIN")
                    for row in self._open_rows.values():
                        self._seal(row)
                _compress_rows(self._db, self._raw_rows)  # folded just now, or not reached yet
            except sqlite3.Error as exc:  # the rows stay as they are: uncompressed, and complete
                log.warning("could not compress the last log rows of %s: %s", self.path, exc)
            self._open_rows = {}
            self._db.close()
            self._db = None
        self._journal.close(remove=not self._journaled and self._journal.size == 0)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._worker.run(fn, *args)

    # -- manifest and files ----------------------------------------------------------

    async def set_meta(self, values: dict[str, Any]) -> None:
        """Store manifest entries (JSON values)."""
        rows = [(k, json.dumps(v)) for k, v in values.items()]
        await self._run(self._write, "INSERT OR REPLACE INTO meta VALUES (?, ?)", rows)

    async def get_meta(self) -> dict[str, Any]:
        """The whole manifest, its shared files under `FILES_KEY` (see `files_meta`)."""
        rows = await self._run(self._read, "SELECT key, value FROM meta", ())
        meta = {k: json.loads(v) for k, v in rows}
        meta[FILES_KEY] = await self._run(lambda: files_meta(self._connection()))
        return meta

    async def add_file(self, room: str, path: str, kind: str, original: bytes) -> None:
        """Remember a shared file's original bytes (the base for dumps and patches)."""
        await self._run(
            self._write,
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
            [(room, path, kind, original)],
        )

    async def add_files(self, rows: list[tuple[str, str, str, bytes | None]]) -> None:
        """`add_file` for many (room, path, kind, original) at once, in one transaction;
        original None: not read yet (a large tree's files are read when first opened,
        `set_original`)."""
        await self._run(self._write, "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", rows)

    async def original(self, room: str) -> bytes | None:
        """A shared file's stored original bytes (None: not read yet, or no such file)."""
        rows = await self._run(self._read, "SELECT original FROM files WHERE room = ?", (room,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    async def set_original(self, room: str, kind: str, original: bytes) -> None:
        """A shared file's original bytes and kind, read when its room was first opened."""
        await self._run(self._write, "UPDATE files SET kind = ?, original = ? WHERE room = ?", [(kind, original, room)])

    async def remove_file(self, room: str) -> None:
        """Forget a file that left the session (its room's log stays, never replayed)."""
        await self._run(self._write, "DELETE FROM files WHERE room = ?", [(room,)])

    async def move_file(self, room: str, path: str) -> None:
        """Record that a shared file (its room) now lives at `path`."""
        await self._run(self._write, "UPDATE files SET path = ? WHERE room = ?", [(path, room)])

    def credit(self, who: Participant) -> None:
        """Credit `who` in the next commit without a document update (they created, moved
        or deleted a file); durable with the next batch."""
        if self._failure is not None:
            raise StoreError(f"the session store cannot be written: {self._failure}")
        if who.key not in self._credited:
            self._credited.add(who.key)
            self._pending.credits.append(who)
            if not self._writing:
                self._write_next()

    async def files(self) -> list[tuple[str, str, str, bytes | None]]:
        """All stored files as (room, path, kind, original bytes or None: not read yet)."""
        rows: list[tuple[str, str, str, bytes | None]] = await self._run(
            self._read, "SELECT room, path, kind, original FROM files", ()
        )
        return rows

    # -- the update log --------------------------------------------------------------

    def append(
        self,
        room: str,
        update: bytes,
        credit: Participant | None = None,
        after_durable: Callable[..., Callable[[], None] | None] | None = None,
        *args: Any,
    ) -> None:
        """Queue an update; `after_durable(*args)` runs on the loop once it is on disk.

        If it returns a function, that runs once every callback of the same batch has run
        (a reader's frames of a whole batch go out in one write).

        Raises `StoreError` if an earlier write failed: nothing is acknowledged after that.
        """
        if self._failure is not None:
            raise StoreError(f"the session store cannot be written: {self._failure}")
        pending = self._pending
        pending.updates.append((room, update))
        if credit is not None and credit.key not in self._credited:
            self._credited.add(credit.key)
            pending.credits.append(credit)
        if after_durable is not None:
            pending.callbacks.append((after_durable, args))
        if len(pending.updates) >= MAX_PENDING:
            self._capacity.clear()
            self.has_capacity = False
        if not self._writing:
            self._write_next()

    async def wait_capacity(self) -> None:
        """Wait while too many appends are waiting for the disk (writer backpressure)."""
        await self._capacity.wait()

    async def flush(self) -> None:
        """Wait until everything appended so far is durable."""
        while self._writing:
            await self._idle.wait()
        if self._failure is not None:
            raise StoreError(f"the session store cannot be written: {self._failure}")

    def _write_next(self) -> None:
        """Hand what is pending to the store thread as one transaction.

        Straight to the thread and straight back (`Worker.call`), without an asyncio
        task and futures in between: a keystroke crosses threads twice, and each extra
        step in that path showed in its latency on a busy core and in its CPU on an idle one.
        """
        batch, self._pending = self._pending, _Pending()
        self._capacity.set()
        self.has_capacity = True
        self._writing = True
        self._idle.clear()
        self._worker.call(self._commit, (batch,), self._written)

    def _commit(self, batch: _Pending) -> _Pending:
        """(store thread) Commit a batch; `_written` gets it back on the loop."""
        batch.logged = self._append_sync(batch.updates, batch.credits)
        return batch

    def _written(self, batch: _Pending, error: BaseException | None) -> None:
        """(loop) A batch is committed, or failed: forward it, or stop acknowledging."""
        if error is not None:
            if not isinstance(error, (sqlite3.Error, OSError, StoreError)):  # a bug: still reported
                log.error("writing to %s failed", self.path, exc_info=error)
                error = StoreError(f"unexpected {type(error).__name__}: {error}")
            # Not durable, so not forwarded: the callbacks of this batch never run.
            self._failure = error
            self._pending = _Pending()
            self._capacity.set()
            self.has_capacity = True
            self._writing = False
            self._idle.set()
            if self.on_failure is not None:
                self.on_failure(error)
            return
        if batch.logged:  # a checkpoint has something to copy
            self._wrote.set()
        finish: list[Callable[[], None]] = []
        for callback, args in batch.callbacks:
            try:
                after = callback(*args)
            except Exception:  # one reader's trouble must not hold back the next batches
                log.exception("forwarding a stored update failed")
                continue
            if after is not None:
                finish.append(after)
        for after in finish:
            try:
                after()
            except Exception:
                log.exception("forwarding a stored batch failed")
        if self._pending.updates or self._pending.credits:
            self._write_next()
        else:
            self._writing = False
            self._idle.set()

    def _append_sync(self, updates: list[tuple[str, bytes]], credits: list[Participant]) -> bool:
        """Write a batch; True if it wrote the database (not only the journal)."""
        by_room: dict[str, list[bytes]] = {}
        for room, update in updates:
            by_room.setdefault(room, []).append(update)
        if len(by_room) == 1 and not credits:
            # a keystroke: one write to the journal
            ((room, items),) = by_room.items()
            room_id = self._room_ids.get(room)
            if room_id is not None:
                self._journal.append(room_id, items)
                self._journaled.append((room_id, items))
                if self._journal.size < self._journal_limit:
                    return False
                self._fold()
                return True
        self._fold()  # first: the log keeps each room's updates in order

        def write(open_rows: dict[int, _OpenRow]) -> None:
            for room, items in by_room.items():
                self._log(self._room_id(room), items, open_rows)
            self._connection().executemany(
                "INSERT OR IGNORE INTO credits VALUES (?, ?, ?)",
                [(p.key, p.name, p.email) for p in credits],
            )

        self._in_transaction(write)
        return True

    def _fold(self) -> None:
        """Move what the journal holds into the log, one transaction, then empty it."""
        if not self._journaled:
            return
        by_id: dict[int, list[bytes]] = {}
        for room_id, items in self._journaled:
            by_id.setdefault(room_id, []).extend(items)

        def write(open_rows: dict[int, _OpenRow]) -> None:
            for room_id, items in by_id.items():
                self._log(room_id, items, open_rows)

        self._in_transaction(write)
        self._journaled = []
        self._journal.clear()  # if this fails, the next open folds them again: harmless repeats

    def _in_transaction(self, write: Callable[[dict[int, _OpenRow]], None]) -> None:
        """`write(open_rows)` as one transaction; the open rows it leaves count once it commits."""
        db = self._connection()
        open_rows = dict(self._open_rows)
        try:
            with db:
                db.execute("BEGIN")
                write(open_rows)
        except BaseException:
            self._forget_uncommitted_rooms()
            raise
        self._open_rows = open_rows
        self._raw_written()

    def _log(self, room_id: int, items: list[bytes], open_rows: dict[int, _OpenRow]) -> None:
        """Add a batch to the room's open row, or seal that and start a new one."""
        db = self._connection()
        size = _packed_size(items)
        row = open_rows.pop(room_id, None)
        if row is not None and _fits(row, items):
            updates = row.updates + items
            db.execute("UPDATE log SET data = ?, n = ? WHERE seq = ?", (pack(updates), len(updates), row.seq))
            open_rows[room_id] = _OpenRow(row.seq, updates, row.size + size)
            return
        if row is not None:
            self._seal(row)
        data = items[0] if len(items) == 1 else pack(items)
        if size >= ROW_TARGET:
            self._insert_row(room_id, data, len(items))
            return
        seq = db.execute(
            "INSERT INTO log (room, data, z, n) VALUES (?, ?, 0, ?)", (room_id, data, len(items))
        ).lastrowid
        assert seq is not None
        open_rows[room_id] = _OpenRow(seq, list(items), size)

    def _insert_row(self, room_id: int, data: bytes, n: int) -> None:
        """A full row: compressed now, or if big, as it is (see `DEFER_FROM`)."""
        db = self._connection()
        if len(data) < DEFER_FROM:
            db.execute("INSERT INTO log (room, data, z, n) VALUES (?, ?, ?, ?)", (room_id, *encode_row(data), n))
            return
        seq = db.execute("INSERT INTO log (room, data, z, n) VALUES (?, ?, 0, ?)", (room_id, data, n)).lastrowid
        assert seq is not None
        self._written_raw.append(seq)

    def _raw_written(self) -> None:
        """(store thread) The transaction committed: its big rows are the checkpoint thread's
        to compress (see `_forget_uncommitted_rooms` when it did not)."""
        self._raw_rows.extend(self._written_raw)
        self._written_raw = []

    def _seal(self, row: _OpenRow) -> None:
        """Store a full open row compressed (when that makes it smaller)."""
        data, z = encode_row(row.updates[0] if len(row.updates) == 1 else pack(row.updates))
        if z:
            self._connection().execute("UPDATE log SET data = ?, z = 1 WHERE seq = ?", (data, row.seq))

    async def updates(self, room: str) -> list[bytes]:
        """The room's logged updates, oldest first."""
        updates: list[bytes] = await self._run(self._updates_sync, room)
        return updates

    def _updates_sync(self, room: str) -> list[bytes]:
        # decompressing and splitting a long log is real work: done here, off the loop
        rows = self._read_log(
            "SELECT data, n, z FROM log WHERE room = (SELECT id FROM rooms WHERE name = ?) ORDER BY seq", (room,)
        )
        try:
            return [update for data, n, z in rows for update in unpack(decode_row(bytes(data), z), n)]
        except zlib.error as exc:
            raise StoreError(f"the session store holds a damaged log row for {room}: {exc}") from exc

    async def rooms_with_updates(self) -> set[str]:
        """Rooms that have anything in the log."""
        rows = await self._run(self._read_log, "SELECT name FROM rooms WHERE id IN (SELECT DISTINCT room FROM log)", ())
        return {r[0] for r in rows}

    async def compact(self, room: str, state: Callable[[], bytes]) -> None:
        """Replace the room's log with one update holding its whole state.

        `state` is called only once everything appended so far is on disk, and the
        rewrite is queued before any later append: nothing applied after it is lost.
        """
        await self.flush()
        await self._run(self._compact_sync, room, state())
        self._wrote.set()  # the checkpoint thread has a big row to compress, maybe

    def _compact_sync(self, room: str, state: bytes) -> None:
        db = self._connection()
        try:
            self._fold()
            with db:
                db.execute("BEGIN")
                room_id = self._room_id(room)
                db.execute("DELETE FROM log WHERE room = ?", (room_id,))
                self._insert_row(room_id, state, 1)
            self._open_rows.pop(room_id, None)
            self._raw_written()
            # give the freed pages back and cut the WAL down: the file shrinks with the log
            db.execute("PRAGMA incremental_vacuum").fetchall()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except (sqlite3.Error, OSError) as exc:
            self._forget_uncommitted_rooms()
            raise StoreError(f"the session store cannot be compacted: {exc}") from exc

    async def room_sizes(self) -> dict[str, int]:
        """Bytes of log per room."""
        rows = await self._run(
            self._read_log,
            "SELECT rooms.name, SUM(LENGTH(log.data)) FROM log JOIN rooms ON rooms.id = log.room GROUP BY log.room",
            (),
        )
        return {room: int(size) for room, size in rows}

    # -- credits ---------------------------------------------------------------------

    async def credits(self) -> list[tuple[str, str]]:
        """Participants whose edits were applied since the last commit: (name, email)."""
        await self.flush()
        rows = await self._run(self._read, "SELECT name, email FROM credits ORDER BY rowid", ())
        return [(n, e) for n, e in rows]

    async def clear_credits(self) -> None:
        """Forget credits (after a commit that recorded them)."""
        self._credited.clear()  # first: a credit appended from now on is written after the delete
        await self._run(self._write, "DELETE FROM credits", [()])

    # -- sync helpers (store thread only) --------------------------------------------

    def _room_id(self, room: str) -> int:
        """The room's id, made on first use (within the caller's transaction)."""
        found = self._room_ids.get(room)
        if found is None:
            db = self._connection()
            db.execute("INSERT OR IGNORE INTO rooms (name) VALUES (?)", (room,))
            found = db.execute("SELECT id FROM rooms WHERE name = ?", (room,)).fetchone()[0]
            self._room_ids[room] = found
        return found

    def _forget_uncommitted_rooms(self) -> None:
        """After a rolled-back transaction an id just made may be gone: look them up again
        (and start new rows: the open ones may not hold what memory says)."""
        self._room_ids = {}
        self._open_rows = {}
        self._written_raw = []

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"the session store {self.path} is not open")
        return self._db

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        db = self._connection()
        try:
            with db:
                db.execute("BEGIN")
                db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"the session store cannot be written: {exc}") from exc

    def _read_log(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """`_read`, once the journal is folded into the log."""
        try:
            self._fold()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"the session's update journal cannot be folded into its store: {exc}") from exc
        return self._read(sql, args)

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"the session store cannot be read: {exc}") from exc


def _compress_rows(db: sqlite3.Connection, seqs: deque[int]) -> None:
    """Compress the uncompressed rows `seqs` (taken from it) where that makes them smaller,
    each in its own short transaction. A row compacted away meanwhile is left alone, and one
    whose seq now names another row is compressed only if it is still the bytes read."""
    while seqs:
        seq = seqs.popleft()
        found = db.execute("SELECT data FROM log WHERE seq = ? AND z = 0", (seq,)).fetchone()
        if found is None:
            continue
        raw = bytes(found[0])
        data, z = encode_row(raw)  # the long part, holding no lock (zlib lets the GIL go)
        if z:
            db.execute("UPDATE log SET data = ?, z = 1 WHERE seq = ? AND z = 0 AND data = ?", (data, seq, raw))


def files_meta(db: sqlite3.Connection) -> list[dict[str, str]]:
    """The shared files (`Manifest.files`) as the `files` table holds them, in the order
    they joined (a rename keeps a file's place)."""
    try:
        rows = db.execute("SELECT room, path, kind FROM files ORDER BY rowid").fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"the session store cannot be read: {exc}") from exc
    return [{"path": path, "kind": kind, "room": room} for room, path, kind in rows]


def _migrate_named_rooms(db: sqlite3.Connection) -> None:
    """Move a store written before rooms had ids (table `updates`, named rooms, maybe
    without packed or compressed rows) into `rooms` and `log`, in one transaction."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(updates)")}
    n = "n" if "n" in columns else "1"
    z = "z" if "z" in columns else "0"
    with db:
        db.execute("BEGIN")
        db.execute("INSERT OR IGNORE INTO rooms (name) SELECT DISTINCT room FROM updates")
        db.execute(
            f"INSERT INTO log (seq, room, data, n, z) SELECT u.seq, rooms.id, u.data, {n}, {z}"
            " FROM updates AS u JOIN rooms ON rooms.name = u.room ORDER BY u.seq"
        )
        db.execute("DROP TABLE updates")
