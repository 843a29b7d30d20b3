"""The room registry: each room loaded once (however many ask at the same instant),
from the durable log if it has it, else from the owner's file; its log kept compact.

A load from the file is itself logged, so a resumed session rebuilds exactly the same
CRDT history. Which rooms exist is the manifest's business; this module only loads,
keeps and compacts them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pygit2
from pycrdt import Doc, Map

from . import git, safefs
from .celldeletes import DeleteWatch
from .documents import Codec
from .errors import (
    DocumentError,
    NotShareableError,
    StaleEpochError,
    StoreError,
    UnknownRoomError,
    UnsafePathError,
)
from .limits import Limits
from .manifest import EPOCH, ROOM_NAME, FileEntry, Manifest
from .origins import DiskLoad, ServerEdit, StoreReplay
from .plugins.loader import open_codec, open_kind
from .rooms import Connection, Room
from .store import Store
from .validation import DocumentGuard


class RoomRegistry:
    """The session's loaded rooms, their codecs, and the shared files' original bytes."""

    def __init__(
        self, info: git.RepoInfo, manifest: Manifest, store: Store, limits: Limits, event: Callable[[str], None]
    ) -> None:
        self.info = info
        self.manifest = manifest
        self.store = store
        self.limits = limits
        self.rooms: dict[str, Room] = {}
        #: Told the bytes and stat of a file read at its first opening (`take_original`):
        #: the disk bridge tracks it from there.
        self.on_original: Callable[[str, bytes, os.stat_result | None], None] = lambda path, data, st: None
        #: Told, once its room is loaded, of a file read at its first opening whose disk
        #: no longer holds its original (the disk bridge merges the save in).
        self.on_stale: Callable[[str], None] = lambda path: None
        self.on_stale_original: Callable[[str, bytes], None] = lambda path, data: None
        self._stale: set[str] = set()
        self._in_store: set[str] = set()  # unloaded rooms: their original is read back from the store
        self.codecs: dict[str, Codec] = {}
        #: Room → the file's bytes at the start of the session (from the store).
        self.originals: dict[str, bytes] = {}
        self.files: dict[str, FileEntry] = {f.room: f for f in manifest.files}
        #: Called when a loaded room's document changed, with the change's origin (the disk
        #: bridge hooks in here); a room still loading reports its load once it is in.
        self.on_loaded_change: Callable[[Room, object], None] = lambda room, origin: None
        #: Where every room's REQUEST frames go (the session sets its `RequestChannel.receive`).
        self.requests: Callable[[Room, Connection, bytes], Awaitable[None]] | None = None
        #: Given to every room as its `Room.relay` (set by `relay.owner` with --redis).
        self.relay: Callable[[Room, bytes, Connection | None], None] | None = None
        #: Told when a file listed unread (a large tree's, see `launch`) turns out, at its
        #: first opening, not to be shareable as a document: (entry, why, its bytes if read).
        #: The file set makes it leave the session as skipped (or a whole-file share).
        self.on_not_shareable: Callable[[FileEntry, str, bytes | None], None] = lambda entry, why, data: None
        #: Files read when first opened (not at the start): how many, for tests and status.
        self.read_on_open = 0
        self._event = event
        self._loading: dict[str, asyncio.Task[Room]] = {}

    def check(self, name: str) -> None:
        """Raise `UnknownRoomError` or `StaleEpochError` unless `name` is a room here."""
        if name == self.manifest.session_room or name in self.files:
            return
        if ROOM_NAME.match(name):
            epoch = name.split(".", 1)[0]
            if EPOCH.match(epoch) and epoch != self.manifest.epoch and "." in name:
                raise StaleEpochError("this room belongs to an earlier session: reload")
        raise UnknownRoomError(f"no room named {name[:60]!r} in this session")

    async def room(self, name: str) -> Room:
        """The loaded room `name`, loading it once however many ask at the same time."""
        self.check(name)
        if name in self.rooms:
            return self.rooms[name]
        task = self._loading.get(name)
        if task is None:
            # a task, not a plain await: several callers share one load, and one caller
            # giving up (its client left) must not cancel it for the others
            task = asyncio.get_running_loop().create_task(self._load(name))
            self._loading[name] = task
            task.add_done_callback(lambda _t: self._loading.pop(name, None))
        return await asyncio.shield(task)

    async def _load(self, name: str) -> Room:
        entry = self.files.get(name)
        doc: Doc[Any] = Doc()
        room = Room(
            name, entry.path if entry else None, entry.kind if entry else "session", doc, self.store, self._on_change
        )
        room.requests = self.requests
        codec = None
        if entry is not None:
            if entry.room in self._in_store:  # unloaded: its original is the stored one
                stored = await self.store.original(entry.room)
                if stored is None:
                    raise StoreError(f"{entry.path}: its original bytes are missing from the session store")
                self.originals[entry.room] = stored
                self._in_store.discard(entry.room)
            elif entry.room not in self.originals:
                entry = await self.take_original(entry)
            codec = self._codec(entry)
        updates = await self.store.updates(name)
        loaded = False
        if updates:
            with doc.transaction(origin=StoreReplay()):
                for update in updates:
                    doc.apply_update(update)
            if len(updates) > self.limits.compact_after:
                await self.store.compact(name, doc.get_update)
        elif codec is not None and entry is not None:
            origin = DiskLoad(entry.path)
            loaded = room.edit(lambda: codec.load_into(doc, origin), origin)
        else:
            room.edit(lambda: self._init_session_doc(doc), ServerEdit())
        await self.store.flush()
        if codec is not None and entry is not None:
            self.codecs[name] = codec
            room.guard = DocumentGuard(doc, codec, entry.path)
            room.guard.learn(doc.get_update())
            if codec.kind == "notebook":
                room.cell_deletes = DeleteWatch(doc, room.guard)
        room.relay = self.relay  # read now: `relay.owner` may have set it while this loaded
        self.rooms[name] = room
        if name in self._stale and entry is not None:
            self._stale.discard(name)
            self.on_stale(entry.path)  # saved on disk since the start: merged like any save
        if loaded:
            # now that it can be rendered (see `_on_change`)
            self.on_loaded_change(room, DiskLoad(entry.path if entry else ""))
        return room

    async def take_original(self, entry: FileEntry) -> FileEntry:
        """Read a file listed unread (a large tree's) at its first opening. Its original
        (its bytes at the start) is its blob at the session's base (it held it at the
        start: `git.resolve_paths`; the session never changed it since); a disk that
        differs now (the owner saved it meanwhile) is merged in once the room is loaded,
        like any save (`on_stale`). The original is stored before the room logs anything
        and its kind settled by its content; the entry as it now is. A file that cannot
        be shared as a document (a link, binary, too large, gone) is reported to
        `on_not_shareable` and `UnknownRoomError` raised."""
        loop = asyncio.get_running_loop()
        try:
            data, disk, st = await loop.run_in_executor(
                None, _read_original, self.info.workdir, self.info.gitdir, self.manifest.base, entry.path
            )
        except UnsafePathError as exc:
            why = "a symbolic link (links are not shared)"
            if not exc.link:
                why = "in a folder that is a symbolic link (not followed)"
            return self._refuse(entry, why, None)
        except OSError as exc:
            return self._refuse(entry, f"cannot be read: {exc.strerror}", None)
        try:
            codec = open_codec(entry.path, data, self.limits.max_file_bytes)
        except NotShareableError as exc:
            return self._refuse(entry, str(exc).removeprefix(f"{entry.path}: "), data)
        if self.files.get(entry.room) is not entry:  # it moved or left while being read: as it is now
            current = self.files.get(entry.room)
            if current is None:
                raise UnknownRoomError(f"{entry.path} left the session")
            entry = current
        if codec.kind != entry.kind:
            entry = FileEntry(entry.path, codec.kind, entry.room)
            self.files[entry.room] = entry
            self.manifest.files = [entry if f.room == entry.room else f for f in self.manifest.files]
        await self.store.set_original(entry.room, entry.kind, data)
        self.originals[entry.room] = data
        self.read_on_open += 1
        stale = disk is not None and disk != data
        if stale:
            self.on_stale_original(entry.path, data)
            self._stale.add(entry.room)
        else:
            self.on_original(entry.path, data, st)
        if codec.warnings:
            self.manifest.warnings.extend((entry.path, w) for w in codec.warnings)
        return entry

    def read_yet(self, room: str) -> bool:
        """Whether a file's original was read (in memory, or in the store once unloaded):
        false only for a large tree's file nobody opened yet."""
        return room in self.originals or room in self._in_store

    def _refuse(self, entry: FileEntry, why: str, data: bytes | None) -> FileEntry:
        self.on_not_shareable(entry, why, data)
        raise UnknownRoomError(f"{entry.path}: not shared: {why}")

    def _codec(self, entry: FileEntry) -> Codec:
        original = self.originals[entry.room]
        return open_kind(entry.kind, entry.path, original, self.limits.max_file_bytes)  # the kind it is shared as

    def _init_session_doc(self, doc: Doc[Any]) -> None:
        info = doc.get("session", type=Map)
        info["session"] = self.manifest.session
        info["branch"] = self.info.branch_name
        info["state"] = "live"

    def _on_change(self, room: Room, origin: object) -> None:
        # A room still loading cannot be rendered yet: `_load` reports its change once it is in.
        if room.name in self.rooms:
            self.on_loaded_change(room, origin)

    def add(self, entry: FileEntry, original: bytes) -> None:
        """A file joined the session (`fileset`): its room can be loaded from now on."""
        self.files[entry.room] = entry
        self.originals[entry.room] = original
        self._in_store.discard(entry.room)

    def moved(self, entry: FileEntry) -> None:
        """A shared file now lives at `entry.path` (same room, same document)."""
        self.files[entry.room] = entry
        room = self.rooms.get(entry.room)
        if room is not None:
            room.path = entry.path

    def unload(self, name: str) -> None:
        """Drop a loaded room nobody uses from memory, its original bytes too (its log and
        the store's `files` row have them: the next `room(name)` replays it, the original
        read back from the store, not from the disk)."""
        self.rooms.pop(name, None)
        self.codecs.pop(name, None)
        if self.originals.pop(name, None) is not None:
            self._in_store.add(name)

    async def forget(self, name: str, reason: str) -> None:
        """A file left the session: its room is unloaded and its clients told why (4404)."""
        self.files.pop(name, None)
        self.codecs.pop(name, None)
        self.originals.pop(name, None)
        self._in_store.discard(name)
        room = self.rooms.pop(name, None)
        if room is not None:
            await room.close_all(UnknownRoomError.close_code, reason[:120])

    def render(self, path: str) -> bytes:
        """The bytes of shared file `path` as its (loaded) document reads now, checked
        (`DocumentError` if they must not be written)."""
        return self._guard(path).render()

    def render_later(self, path: str) -> Callable[[], bytes]:
        """`render` with the formatting left to a function that may run in a thread
        (`DocumentGuard.render_later`): write-back's way."""
        return self._guard(path).render_later()

    def _guard(self, path: str) -> DocumentGuard:
        guard = self.rooms[self.manifest.room_for(path)].guard
        assert guard is not None  # every shared file's room has one
        return guard

    async def preload(self, still_live: Callable[[], bool]) -> None:
        """Load the first shared files' rooms in the background (a few, up to a byte
        budget), so the first person to open one is not the one who waits for it."""
        budget = self.limits.preload_bytes
        for entry in self.manifest.files[: self.limits.preload_files]:
            budget -= len(self.originals.get(entry.room, b""))
            if budget < 0 or not still_live():
                return
            try:
                await self.room(entry.room)
            except (DocumentError, StoreError) as exc:
                self._event(f"{entry.path}: {exc}")  # the same error meets whoever opens it
            except UnknownRoomError:
                continue  # not shareable after all (read now, see `take_original`): it left

    async def compact_periodically(self) -> None:
        """Keep the log small in a long session (streaming outputs) and a restart fast:
        fold a room's log into one update once a minute, or sooner when it is busy."""
        loop = asyncio.get_running_loop()
        limits = self.limits
        last = loop.time()
        while True:
            await asyncio.sleep(limits.compact_look_every)
            minute = loop.time() - last >= limits.compact_every
            if minute:
                last = loop.time()
            for room in list(self.rooms.values()):
                logged = room.logged_since_compaction
                if logged > limits.compact_soon or (minute and logged > limits.compact_after):
                    room.logged_since_compaction = 0
                    try:
                        await self.store.compact(room.name, room.doc.get_update)
                    except StoreError as exc:
                        self._event(str(exc))


def _read_original(
    workdir: Path, gitdir: Path, base: str, path: str
) -> tuple[bytes, bytes | None, os.stat_result | None]:
    """(thread) A file's original (its regular-file blob at `base`, else its bytes on disk),
    its bytes on disk now (None if gone) and their stat. `UnsafePathError` for a link."""
    repo = pygit2.Repository(str(gitdir))
    try:
        obj = repo[base].peel(pygit2.Tree)[path]
    except (KeyError, ValueError):
        obj = None
    if obj is not None and obj.filemode == pygit2.enums.FileMode.LINK:
        link = UnsafePathError(f"{path}: a symbolic link")
        link.link = True
        raise link
    blob = obj.data if isinstance(obj, pygit2.Blob) else None
    stats: list[os.stat_result | None] = []
    disk = safefs.read_many(workdir, [path], stats)[0]
    if isinstance(disk, OSError):
        if blob is None or not isinstance(disk, FileNotFoundError):
            raise disk
        return blob, None, None
    return (disk if blob is None else blob), disk, stats[0]
