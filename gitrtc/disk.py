"""Write-back of shared documents to the owner's working tree, and watching it.

Debounced (a quiet period after the last edit, bounded so continuous typing still saves
about every second), atomic (temp file in the same folder, fsync, rename, mode kept) and
off the event loop. A failed write (disk full, read-only) is reported per file and
retried on the next change; the session keeps running from its durable store. Writing is
frozen while the work tree is on another branch than the session's.

The watcher polls the shared files' stat data and, when it changed, compares content
hashes (never modification times: `touch` does nothing) with what the session last wrote
or read. A real out-of-band change (another editor, `git checkout -- file`, a formatter)
is handed to `on_disk_change` with the last bytes both sides agreed on, so it can merge
it three-way into the document as CRDT operations. A deleted file is
reported and kept; the next write-back restores it.

Shared paths are read, stat'ed and written through `safefs`, never through a symbolic
link: a file (or a folder above it) that becomes a link is reported and frozen — not read,
not written, its state `frozen: …` — until it is a regular file again (then merged like any
save); the end commit records such a file as the link itself (`links`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import safefs
from .errors import DocumentError, UnsafePathError

log = logging.getLogger(__name__)

QUIET_SECONDS = 0.25
MAX_DELAY_SECONDS = 1.0
#: A file whose rendering takes long (a large notebook: ~30 ms per MB) is written at most
#: once per this many rendering times, so write-back holds the event loop under 2% of the time.
RENDER_DUTY = 60
#: A file whose only changes since its last write-back are a kernel's outputs (`changed`
#: with `coalesce`) is written at most once per this many seconds: a cell flooding output
#: costs the disk (and the GIL, hashing and copying megabytes) a bounded rate; every
#: output is in the durable store and with every participant at once, and an edit by
#: anyone, a flush and the end write it as usual.
OUTPUT_WRITE_SECONDS = 2.0

#: The threads that read, stat and write shared files (for every session of the process).
#: Two: a burst of write-backs (100 files typed into at once) queues here instead of
#: keeping every thread of the default pool busy, each taking its turn with the GIL on
#: the event loop's core; that stalled every room's forwarding for 50–100 ms a second.
_DISK = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rtc-disk")
WRITERS = 2

Stat = tuple[int, int, int]
#: The poll's value for a file whose folder became a symbolic link (never a real stat).
THROUGH_LINK: Stat = (-1, -1, -1)


def digest(data: bytes) -> str:
    """Content hash used to recognise our own writes (never modification times)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> Stat:
    """Replace `path` with `data` atomically, keeping its permission bits (`mode` for a new
    file: 0o600 for gitrtc's own files under `.git/rtc`), never through a link in its last
    component (`safefs.replace_file`); the new file's stat, taken before it is in place, so
    a save by someone else right after is never mistaken for ours."""
    return _stat(safefs.replace_file(path.parent, path.name, data, mode))


def _stat(st: os.stat_result) -> Stat:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def shared_stat(root: Path, path: str) -> Stat | None:
    """(mtime_ns, size, inode) of shared file `path` itself (a link's own, not its
    target's), `THROUGH_LINK` when a folder above it is a link, None if it is gone."""
    try:
        st = safefs.lstat(root, path)
    except UnsafePathError:
        return THROUGH_LINK
    except OSError:
        return None
    return None if st is None else _stat(st)


def _poll(root: Path, paths: list[str]) -> list[Stat | None]:
    """(disk thread) `shared_stat` of every shared file, each folder opened once."""
    try:
        stats = safefs.lstat_all(root, paths)
    except OSError:  # the folder itself is gone: every file is
        return [None] * len(paths)
    out: list[Stat | None] = []
    for st in stats:
        if isinstance(st, UnsafePathError):
            out.append(THROUGH_LINK)
        else:
            out.append(None if st is None else _stat(st))
    return out


def file_stat(abspath: str) -> Stat | None:
    """(mtime_ns, size, inode) of a file, or None if it is gone or unreadable."""
    try:
        st = os.stat(abspath)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True, slots=True)
class _WriteOutcome:
    changed_on_disk: Stat | None = None  # the file changed since last seen: nothing written
    written: str | None = None  # the new digest; None when the file already held the bytes
    stat: Stat | None = None  # the file's stat once written


def _write_back(
    root: Path, path: str, data: bytes, written: str | None, seen: Stat | None, check: bool
) -> _WriteOutcome:
    """(disk thread) Write `data` unless the file changed since `seen` (with `check`: it
    must be merged first) or already holds it; one trip to the thread per write-back."""
    if check:
        now = shared_stat(root, path)
        if now is not None and now != seen:
            return _WriteOutcome(changed_on_disk=now)
    new = digest(data)
    if new == written:
        return _WriteOutcome()
    return _WriteOutcome(written=new, stat=_stat(safefs.replace_file(root, path, data)))


@dataclass(slots=True)
class FileState:
    """Write-back state of one shared file, as the panel and `rtc status` show it."""

    path: str
    abspath: str  # the file on disk, joined once: the watcher stats every file twice a second
    written: str | None = None  # digest of the bytes last known to be on disk
    seen: Stat | None = None  # (mtime_ns, size, inode) at the last look
    synced: bytes | None = field(default=None, repr=False)  # last bytes disk and document agreed on
    missing: bool = False
    linked: str | None = None  # why the file is frozen: it or a folder above it is a symbolic link
    dirty: bool = False
    error: str | None = None
    first_dirty: float = 0.0
    last_change: float = 0.0
    rendered_at: float = 0.0
    render_seconds: float = 0.0
    #: Every change pending since the last write-back is a kernel's output (`changed`).
    outputs_only: bool = False
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """saved / unsaved / frozen / the error."""
        if self.linked:
            return f"frozen: {self.linked}"
        if self.error:
            return f"not saved: {self.error}"
        return "unsaved" if self.dirty else "saved"


class DiskSync:
    """Schedules and performs write-backs; `render(path)` gives the bytes to write (or raises
    `DocumentError`: the file is not written and the error is shown until a write succeeds)."""

    def __init__(
        self,
        workdir: Path,
        render: Callable[[str], bytes],
        branch_ok: Callable[[], bool],
        on_event: Callable[[str], None] | None = None,
        on_disk_change: Callable[[str, bytes, bytes | None], Awaitable[None]] | None = None,
        on_synced: Callable[[str, bytes], None] | None = None,
        quiet: float = QUIET_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        on_error: Callable[[str, str | None], None] | None = None,
        render_later: Callable[[str], Callable[[], bytes]] | None = None,
    ) -> None:
        self.workdir = workdir
        #: Seconds without edits before a write, and the longest a write waits while typing goes on.
        self.quiet = quiet
        self.max_delay = max_delay
        self._render = render
        #: Where given, write-back takes the document's value on the loop and formats it in
        #: a disk thread (`DocumentGuard.render_later`); `render` stays the loop's own way.
        self._render_later = render_later
        self._branch_ok = branch_ok
        self._on_event = on_event or (lambda message: None)
        self.files: dict[str, FileState] = {}
        #: Files being renamed (`move`): old path → state, an edit meanwhile marks it dirty.
        self._moving: dict[str, FileState] = {}
        #: Whether a folder watcher reports changes of `path` (then it is not polled);
        #: `watched("")` says whether a watcher runs at all.
        self.watched: Callable[[str], bool] = lambda path: False
        self._generation = 0  # bumped when the tracked set changes
        self.frozen = False
        #: Write-backs in progress at once: more wait their turn, so a burst (every file
        #: typed into at once comes due together) is spread over many loop iterations.
        self._slots = asyncio.Semaphore(WRITERS)
        self._on_disk_change = on_disk_change
        #: Told the bytes each time the file on disk and the document agree (a write, a merge).
        self._on_synced = on_synced or (lambda path, data: None)
        #: Told each time a file's write-back error appears, changes or clears (None).
        self._on_error = on_error or (lambda path, error: None)

    def track(self, path: str, on_disk: bytes, seen: os.stat_result | None = None) -> None:
        """Start tracking a file whose current disk content is `on_disk` (`seen`: its stat
        taken as it was read, else taken now). A shared file not read yet (a large tree's,
        see `launch`) is not tracked: the disk alone holds it, a change there is nothing
        to merge; its first opening reads it and tracks it from there."""
        abspath = os.path.join(self.workdir, path)
        self._generation += 1
        self.files[path] = FileState(
            path,
            abspath,
            written=digest(on_disk),
            seen=shared_stat(self.workdir, path) if seen is None else _stat(seen),
            synced=on_disk,
        )

    def track_stale(self, path: str, original: bytes) -> None:
        """Track a file whose disk may no longer hold `original` (what the session's
        document was loaded from): not seen yet, so the next look merges what it holds."""
        self.track(path, original)
        self.files[path].seen = None

    async def track_all(
        self, files: list[tuple[str, bytes]], read_stats: Sequence[os.stat_result | None] | None = None
    ) -> None:
        """`track` many files, their stats taken in one trip to the disk thread (a start
        of 100,000 files must not stat them one by one on the event loop), or given as
        they were when the files were read (`read_stats`: a stat taken before the read,
        so a change during it is seen)."""
        paths = [path for path, _data in files]
        if read_stats is not None and all(st is not None for st in read_stats):
            stats: list[Stat | None] = [None if st is None else _stat(st) for st in read_stats]
        else:
            stats = await asyncio.get_running_loop().run_in_executor(_DISK, _poll, self.workdir, paths)
        root = os.fspath(self.workdir)
        self._generation += 1
        for (path, data), seen in zip(files, stats, strict=True):
            self.files[path] = FileState(path, f"{root}/{path}", written=digest(data), seen=seen, synced=data)

    async def watch(self, interval: float = 0.5) -> None:
        """Poll the shared files forever, merging out-of-band changes (run as a task);
        files a folder watcher reports on (`watched`) are not polled."""
        polled: list[str] = []
        key: tuple[int, bool] | None = None
        while True:
            await asyncio.sleep(interval)
            # which files to poll changes only when the set or the watcher's state does:
            # not recomputed every half second for 100,000 files
            now = (self._generation, self.watched(""))
            if now != key:
                key, polled = now, [p for p in self.files if not self.watched(p)]
            if self._branch_ok():
                await self.check_paths(polled)

    async def check_all(self, polled_only: bool = False) -> None:
        """Look at every shared file once and merge what changed (also done at the end)."""
        if not self._branch_ok():
            return
        watched = self.watched
        paths = [p for p in self.files if not watched(p)] if polled_only else list(self.files)
        await self.check_paths(paths)

    async def check_paths(self, paths: list[str]) -> None:
        """Look at these shared files once and merge what changed (a folder watcher
        calls this with the files it saw change)."""
        if not paths or not self._branch_ok():
            return
        stats = await asyncio.get_running_loop().run_in_executor(_DISK, _poll, self.workdir, paths)
        for path, stat in zip(paths, stats, strict=True):
            state = self.files.get(path)  # None: it left the session meanwhile (`untrack`)
            if state is None or stat == state.seen:
                continue  # the common case, without a coroutine per file
            try:
                await self._check(path, stat)
            except Exception as exc:  # keep watching the other files; say what failed
                log.exception("merging %s failed", path)
                self._on_event(f"{path}: a change on disk could not be merged ({exc})")

    async def _check(self, path: str, stat: Stat | None, own_write_pending: bool = True) -> None:
        state = self.files.get(path)
        if state is None or stat == state.seen:
            return
        if stat is not None and own_write_pending and state.task is not None and not state.task.done():
            # our own write is in progress: it compares the disk with `seen` before
            # writing, so `seen` stays as it was and the write finds this save and merges
            # it first (taking the new stat here would make the write overwrite the save)
            return
        state.seen = stat
        if stat is None:
            self._unlinked(state, "the symbolic link was removed")
            if not state.missing:
                state.missing = True
                state.written = None
                self._on_event(f"{path} was deleted on disk: kept in the session, restored at the next save")
            return
        state.missing = False
        try:
            data = await asyncio.get_running_loop().run_in_executor(_DISK, safefs.read_file, self.workdir, path)
        except UnsafePathError as exc:
            self.mark_linked(path, exc)
            return
        except OSError as exc:
            self._on_event(f"{path}: cannot read the changed file ({exc.strerror})")
            return
        self._unlinked(state, "it is a regular file again")
        new = digest(data)
        if new == state.written:
            return
        state.written = new
        base, state.synced = state.synced, data
        if self._on_disk_change is not None:
            await self._on_disk_change(path, data, base)
        self._on_synced(path, data)

    async def untrack(self, path: str) -> FileState | None:
        """Stop tracking `path` (it left the session or moves): its pending write-back
        is cancelled, one in progress awaited; its last state."""
        state = self.files.get(path)
        if state is None:
            return None
        if state.task is not None and not state.task.done():
            await asyncio.shield(state.task)  # meanwhile a due timer only sets itself again
        if state.timer is not None:  # cancelled after the wait: an edit during it sets one too
            state.timer.cancel()
            state.timer = None
        self._generation += 1
        return self.files.pop(path, None)

    async def move(self, old: str, new: str) -> None:
        """Track `old`'s state under `new` (the file was renamed): what the disk and the
        document last agreed on moves with it; unsaved edits are written at `new`."""
        state = self.files.get(old)
        if state is None:
            return
        # the room still says `old` until the move is done: an edit meanwhile lands here
        self._moving[old] = state
        try:
            await self.untrack(old)
            state.path = new
            state.abspath = os.path.join(self.workdir, new)
            state.seen = await asyncio.get_running_loop().run_in_executor(_DISK, shared_stat, self.workdir, new)
        finally:
            del self._moving[old]
        state.missing = state.seen is None
        self._generation += 1
        self.files[new] = state
        if state.dirty:
            self.changed(new)

    def mark_linked(self, path: str, exc: UnsafePathError) -> None:
        """`path` is (or is under) a symbolic link now: report it once and freeze it."""
        state = self.files[path]
        if state.linked is None:
            state.linked = str(exc)
            what = "committed as a link" if exc.link else "committed with the session's version"
            self._on_event(f"{exc}: frozen — not read, not written, {what}; your edits stay in the session")

    def _unlinked(self, state: FileState, why: str) -> None:
        if state.linked is not None:
            state.linked = None
            self._on_event(f"{state.path}: {why}: no longer frozen")
            if state.dirty:
                self.changed(state.path)  # edits made while frozen are written now

    async def links(self) -> dict[str, str]:
        """Path → link text of the frozen files that are themselves symbolic links now
        (what the end commit records for them, as git would)."""
        frozen = [state.path for state in self.files.values() if state.linked is not None]
        if not frozen:
            return {}

        def read() -> dict[str, str]:
            out = {}
            for path in frozen:
                try:
                    text = safefs.readlink(self.workdir, path)
                except OSError:
                    continue  # a folder above is the link, or it is gone: not a link to commit
                if text is not None:
                    out[path] = text
            return out

        return await asyncio.get_running_loop().run_in_executor(_DISK, read)

    def changed(self, path: str, coalesce: bool = False) -> None:
        """The document of `path` changed: write it soon (`coalesce`: the change is a
        kernel's output, which may wait for `OUTPUT_WRITE_SECONDS`).

        Called for every edit, so it only notes the time; the one pending timer works out
        when the file is due (a quiet period, or the maximum delay while typing goes on).
        """
        state = self.files.get(path)
        # renamed right now: `move` finds it dirty and sets the timer at its new name
        moving = state is None
        if state is None:
            state = self._moving[path]
        loop = asyncio.get_running_loop()
        state.last_change = now = loop.time()
        if not state.dirty:
            state.dirty = True
            state.first_dirty = now
            state.outputs_only = coalesce
        elif state.outputs_only and not coalesce:
            state.outputs_only = False
            if state.timer is not None and state.timer.when() > self._due(state):
                state.timer.cancel()  # set for outputs only: an edit is due sooner
                state.timer = None
        if state.timer is None and not moving:
            state.timer = loop.call_at(self._due(state), self._start_write, path)

    def _due(self, state: FileState) -> float:
        due = min(state.last_change + self.quiet, state.first_dirty + self.max_delay)
        if state.outputs_only:
            due = max(due, state.rendered_at + OUTPUT_WRITE_SECONDS)
        return max(due, state.rendered_at + RENDER_DUTY * state.render_seconds)

    def _start_write(self, path: str) -> None:
        state = self.files.get(path)
        if state is None:  # it left the session or moved (`untrack` cancels, a late timer may still fire)
            return
        loop = asyncio.get_running_loop()
        due = self._due(state)
        if state.dirty and due > loop.time():
            state.timer = loop.call_at(due, self._start_write, path)  # edits came in since
            return
        state.timer = None
        if state.task is not None and not state.task.done():
            state.timer = loop.call_later(self.quiet, self._start_write, path)
            return
        state.task = loop.create_task(self.write(path))

    async def write(self, path: str) -> None:
        """Write `path` now if its document differs from what is on disk."""
        async with self._slots:
            await self._write(path)

    async def _write(self, path: str) -> None:
        state = self.files.get(path)
        if state is None:
            return
        if not self._branch_ok():
            if not self.frozen:
                self.frozen = True
                self._on_event("the work tree left the session's branch: write-back is paused")
            return
        if self.frozen:
            self.frozen = False
            self._on_event("back on the session's branch: write-back resumed")
        if state.linked is not None:
            state.dirty = True  # frozen: written once the path is a regular file again
            return
        state.dirty = state.outputs_only = False
        loop = asyncio.get_running_loop()
        check = True
        while True:
            started = time.perf_counter()
            try:
                if self._render_later is None:
                    data = self._render(path)
                else:
                    data = await loop.run_in_executor(_DISK, self._render_later(path))
            except DocumentError as exc:  # the document cannot be written as it is: say so, keep it dirty
                state.dirty = True
                if state.error != str(exc):
                    self._on_event(str(exc))
                self._set_error(state, str(exc))
                return
            state.render_seconds = time.perf_counter() - started
            state.rendered_at = loop.time()
            try:
                outcome = await loop.run_in_executor(
                    _DISK, _write_back, self.workdir, path, data, state.written, state.seen, check
                )
            except UnsafePathError as exc:
                state.dirty = True
                self.mark_linked(path, exc)
                return
            except OSError as exc:
                state.dirty = True
                self._set_error(state, exc.strerror or str(exc))
                self._on_event(f"{path}: cannot write ({state.error}); kept in the session store")
                return
            if outcome.changed_on_disk is None:
                break
            # a save that happened since the last poll is merged first, never overwritten
            await self._check(path, outcome.changed_on_disk, own_write_pending=False)
            if _frozen(state):  # `_check` may have frozen it (a link now)
                state.dirty = True
                return
            check = False
        if outcome.written is None:  # the file already holds these bytes
            self._set_error(state, None)
            return
        state.written = outcome.written
        state.seen = outcome.stat
        state.synced = data
        self._set_error(state, None)
        self._on_synced(path, data)

    def _set_error(self, state: FileState, error: str | None) -> None:
        if state.error != error:
            state.error = error
            self._on_error(state.path, error)

    async def flush(self) -> None:
        """Write every dirty file now and wait for writes in progress."""
        for state in self.files.values():
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
        pending = [s.task for s in self.files.values() if s.task is not None and not s.task.done()]
        if pending:
            await asyncio.gather(*pending)
        for state in list(self.files.values()):
            if state.dirty:
                await self.write(state.path)


def _frozen(state: FileState) -> bool:
    """Whether `state`'s file is frozen as a symbolic link (asked again after an await)."""
    return state.linked is not None
