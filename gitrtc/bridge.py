"""The bridge between the rooms and the owner's files on disk.

It writes documents back to their files (through `disk.DiskSync`), merges a file saved
by another program into its room as CRDT operations, pauses write-back while the work
tree is on another branch (the HEAD watcher), and after a crash reconciles what the
disk holds with what the session's log says.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from pathlib import Path

from pycrdt import Map

from . import git, safefs
from .conflicts import attach, merge_later
from .disk import DiskSync, Stat, file_stat
from .errors import DocumentError, UnsafePathError
from .joinformat import session_merge
from .limits import Limits
from .manifest import Manifest
from .origins import DiskMerge, ServerEdit, coalesced_on_disk, dirties_disk
from .registry import RoomRegistry
from .rooms import Room
from .store import Store


class DiskBridge:
    """Keeps each shared file and its room in step, in both directions."""

    def __init__(
        self,
        info: git.RepoInfo,
        manifest: Manifest,
        registry: RoomRegistry,
        store: Store,
        limits: Limits,
        event: Callable[[str], None],
    ) -> None:
        self.info = info
        self.manifest = manifest
        self.registry = registry
        self.store = store
        self._event = event
        self._head_seen: Stat | None = None  # HEAD's stat at the last read
        self._asides = itertools.count(1)  # numbers the disk saves that could not be merged
        self._head_on_branch = False
        self.disk = DiskSync(
            info.workdir,
            registry.render,
            self.on_branch,
            event,
            self.merge,
            quiet=limits.write_quiet_seconds,
            max_delay=limits.write_max_delay_seconds,
            on_error=self._on_save_error,
            render_later=registry.render_later,
        )
        registry.on_loaded_change = self.room_changed  # the one hook from the rooms to the disk
        registry.on_original = self.disk.track  # a file read at its first opening is tracked from there
        registry.on_stale_original = self.disk.track_stale
        registry.on_stale = self._merge_soon
        self._merging: set[asyncio.Task[None]] = set()

    def room_changed(self, room: Room, origin: object) -> None:
        """(room hook) A loaded room's document changed: write its file soon if the
        origin says the disk is now stale (`origins.dirties_disk`)."""
        if room.path is not None and dirties_disk(origin):
            self.disk.changed(room.path, coalesce=coalesced_on_disk(origin))

    def _merge_soon(self, path: str) -> None:
        """(registry hook) A file first opened now was saved on disk since the start:
        look at it now (its state has no stat yet), which merges the save into its room."""
        task = asyncio.get_running_loop().create_task(self.disk.check_paths([path]))
        self._merging.add(task)
        task.add_done_callback(self._merging.discard)  # `check_paths` reports its own failures

    def _on_save_error(self, path: str, error: str | None) -> None:
        """Show every participant which files cannot be written back (`save_errors` in the
        session room: path → error; the browser's status bar shows it)."""
        room = self.registry.rooms.get(self.manifest.session_room)
        if room is None:
            return
        errors = {p: s.error for p, s in self.disk.files.items() if s.error}
        room.edit(lambda: room.doc.get("session", type=Map).__setitem__("save_errors", errors), ServerEdit())

    async def watch(self) -> None:
        """Poll the shared files forever, merging out-of-band saves (a background task)."""
        await self.disk.watch()

    def on_branch(self) -> bool:
        """Whether the work tree is on the session's branch (asked at every write-back:
        HEAD is read again only when its stat changed; git replaces it to switch)."""
        head = os.path.join(self.info.gitdir, "HEAD")
        seen = file_stat(head)
        if seen is None:
            self._head_seen = None
            return False
        if seen != self._head_seen:
            try:
                with open(head, "rb") as handle:
                    self._head_on_branch = handle.read().strip() == f"ref: {self.info.branch}".encode()
            except OSError:
                return False
            self._head_seen = seen
        return self._head_on_branch

    async def merge(self, path: str, data: bytes, base: bytes | None) -> None:
        """Merge a file changed on disk by someone else into its room as CRDT operations."""
        name = self.manifest.room_for(path)
        room = await self.registry.room(name)
        codec = self.registry.codecs[name]
        attach(codec, "the owner's disk")  # notebooks: nbdime's merge, conflicts recorded
        origin = DiskMerge(path)
        try:
            edit = session_merge(room, codec, origin, self.registry.originals[name])  # joins follow its format
            changed = await merge_later(codec, room.doc, data, origin, base, edit)
        except DocumentError as exc:
            # the session's version stays (and is written back): the save is never lost,
            # it is kept beside the session with where it is said
            aside = self.store.path.parent / "disk-unmerged" / f"{path}.{next(self._asides)}"
            await asyncio.get_running_loop().run_in_executor(None, save_aside, aside, data)
            self._event(f"{path} changed on disk but cannot be merged: {exc}; your saved version is kept as {aside}")
            return
        if changed:
            self._event(f"{path} changed on disk: merged into the session")

    async def reconcile(self) -> None:
        """After a crash: find out what each file on disk is relative to the session.

        A file holding the session's last write-back is in sync; one still at its
        original bytes gets the session's edits written; one the owner changed while
        no session ran is merged in (an untouched room) or, when the session also has
        edits the disk never saw, kept aside in the session folder and reported.
        """
        touched = await self.store.rooms_with_updates()
        loop = asyncio.get_running_loop()
        for entry in self.manifest.files:
            original = self.registry.originals.get(entry.room)
            if original is None:
                continue  # never read (a large tree's file nobody opened): the disk alone holds it
            try:
                disk = await loop.run_in_executor(None, safefs.read_file, self.info.workdir, entry.path)
            except UnsafePathError as exc:
                self.disk.mark_linked(entry.path, exc)
                continue
            except OSError:
                disk = None
            if disk == original or disk is None:
                if entry.room in touched:
                    await self.registry.room(entry.room)
                    self.disk.changed(entry.path)
                continue
            await self.registry.room(entry.room)
            try:
                current = self.registry.render(entry.path)
            except DocumentError as exc:
                self._event(str(exc))
                continue
            if disk == current:
                self.disk.track(entry.path, disk)
            elif current == original:
                await self.merge(entry.path, disk, original)
            else:
                aside = self.store.path.parent / "disk-at-resume" / entry.path
                await loop.run_in_executor(None, save_aside, aside, disk)
                self.disk.changed(entry.path)
                self._event(
                    f"{entry.path} changed on disk while no session ran: the session's version "
                    f"is kept, the disk's is saved as {aside}"
                )

    async def settle(self) -> None:
        """Take in the last saves on disk, then write every dirty file (before a commit)."""
        await self.disk.check_all()  # a save made just before the stop belongs in the commit
        await self.store.flush()
        await self.disk.flush()


def save_aside(target: Path, data: bytes) -> None:
    """Keep a copy of a file's bytes under `.git/rtc` (owner-only, like all of it)."""
    safefs.private_dir(target.parent)
    safefs.write_private(target, data)
