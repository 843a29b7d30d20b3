"""`Limits`: every size, rate and period a session is bounded by, in one settings object.

Made once at the top (`rtc start`'s runner, the test fixtures) and passed down to the
parts that use it (`Session` → rooms, registry, disk bridge; the server app → the
WebSocket endpoint; `Store`). Tests construct one with `Limits(...)`/`replace` instead
of patching module constants. The defaults are the product's figures.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """A session's bounds (frozen: a part keeps the copy it was given)."""

    #: Largest message a client may send (a big notebook's first sync must fit).
    max_message_bytes: int = 64 * MiB
    #: Largest shared file (pycrdt holds the whole document in memory, several times).
    max_file_bytes: int = 20 * MiB
    #: Bytes queued for one reader before it is disconnected as too slow.
    max_queued_bytes: int = 64 * MiB
    #: Messages queued for one reader before it is disconnected as too slow.
    max_queued_frames: int = 200_000
    #: Sustained messages per second per connection (typing is ~10/s, a busy kernel
    #: ~100/s, a program replaying a whole editing history a few 10,000/s).
    rate: float = 50_000.0
    #: Messages a connection may send at once before it is slowed (a paste, a resync).
    burst: float = 100_000.0
    #: Presence (awareness) messages per second per connection, and at once: a cursor
    #: moving as fast as one types, and the renewal every 15 s; each is relayed to the room.
    presence_rate: float = 30.0
    presence_burst: float = 120.0
    #: Seconds a connection may take to send a whole request (after connecting or after its
    #: last answer) before it is closed (slowloris; `server/guard.py`).
    idle_timeout: float = 10.0
    #: Connections that have not yet shown a valid token, per address and in all (the total
    #: is also at most half the open-files limit); beyond, the oldest such one is closed.
    pending_per_address: int = 256
    pending_total: int = 4096
    #: Seconds between the server's pings; a peer silent for two periods is dropped.
    ping_every: float = 20.0
    #: Logged updates above which a room's log is compacted (at load, and once a minute).
    compact_after: int = 2_000
    #: Logged updates above which a busy room's log is compacted at the next look, so a
    #: restart never replays more than about this many (a replay costs ~4 µs per update).
    compact_soon: int = 20_000
    #: Seconds between looks for rooms whose log should be compacted.
    compact_look_every: float = 5.0
    #: Seconds between compactions of a room that is only a little behind.
    compact_every: float = 60.0
    #: Files loaded into their rooms right after the start, before anyone asks, within
    #: `preload_bytes` of original bytes.
    preload_files: int = 32
    #: Seconds a room must stay without connections and unsaved edits (two looks this
    #: far apart) before it is unloaded: memory stays bounded on a 100,000-file tree.
    unload_idle_after: float = 120.0
    #: Seconds a notebook room that had cells deleted or moved stays loaded with nobody
    #: connected: its graves (`lateedits`) live in memory, and an offline participant's
    #: edit of such a cell is brought back only while they are there.
    graves_hold: float = 24 * 3600.0
    preload_bytes: int = 32 * MiB
    #: A start of more files than this reads none of them (`launch`): each is listed by
    #: name (`.ipynb`: a notebook, else text) and read when its room is first opened;
    #: up to it, every file is read and classified by its content at once.
    read_at_start: int = 2000
    #: Seconds between full garbage collections over everything (`heap.steady`: in between,
    #: what survived a full collection is frozen, so collections skip it and stay short).
    heap_sweep_every: float = 600.0
    #: Journal bytes beyond which the store folds the journal into the log.
    journal_limit: int = 256 * 1024
    #: Seconds between the store's checkpoints while batches are written.
    checkpoint_every: float = 0.5
    #: A file is written back after this many quiet seconds since the last edit ...
    write_quiet_seconds: float = 0.25
    #: ... or at the latest this long after its first unsaved edit.
    write_max_delay_seconds: float = 1.0

    # -- the request channel (`requests.py`) --------------------------------------------
    #: Largest request a client may send (an `input()` answer, a list of cell ids).
    request_bytes: int = 64 * 1024
    #: Sustained requests per second per connection, and the burst allowed above it
    #: (beyond, a request is refused with an error answer, not delayed).
    request_rate: float = 20.0
    request_burst: float = 100.0
    #: Requests of one connection being worked on at once.
    requests_in_flight: int = 32

    # -- kernels (`kernels/`) -----------------------------------------------------------
    #: Characters of stream text one cell run keeps in the notebook (the rest goes to a file).
    cell_text: int = 256 * 1024
    #: Characters of output of any kind (images are base64 text) one cell run keeps.
    cell_output: int = 16 * MiB
    #: Seconds between two writes of one cell's outputs (a flood costs a few updates a second).
    output_flush_every: float = 0.08
    #: Private kernels one session may run at once (each is a process on the owner's machine).
    private_kernels: int = 4
    #: Cells one `run` request may name, and cells one kernel may have waiting.
    run_cells: int = 1_000
    kernel_queue: int = 1_000
    #: Characters of one `input()` answer.
    input_chars: int = 16 * 1024
    #: Cell states remembered per kernel (the newest are kept).
    cell_states: int = 10_000
    #: Seconds a kernel may take to start and answer its first request.
    kernel_start_timeout: float = 60.0
    #: Seconds between two looks at whether a kernel process is alive.
    kernel_watch_every: float = 0.5
    #: How much lower than the server's a kernel's CPU priority is (Unix `nice`; 0: the
    #: same): a cell spinning a core must not take the server's turn on a busy machine.
    kernel_nice: int = 10


DEFAULT = Limits()
