"""Session: a live session over a repository's files, composed of small parts.

- `access.Access`: tokens, invites, kicks, who is connected;
- `registry.RoomRegistry`: the rooms, each loaded once, and their log's compaction;
- `bridge.DiskBridge`: write-back, merges of saves made on disk, the HEAD watcher,
  the reconcile after a crash;
- `ending.Ending`: `commit_now`, `pause`, `end`;
- `supervisor.Supervisor`: the background tasks (disk watcher, compactor, preloader,
  the shared folders' watcher `folderwatch.FolderWatch`);
- `fileset.FileSet`: the live file set (files created, renamed, deleted in a shared
  folder, on disk or by participants through `fileops`);
- `requests.RequestChannel`: the rooms' request channel, with its `kernel` service
  (`kernels.service.KernelService`: notebooks' code, when the owner allows it).

`Session` wires them together and owns their lifecycle: `async with session:` starts
it (originals read, disk tracked, tasks running) and closes it (tasks stopped, store
closed) however the block is left. Transport-agnostic: the server adapts WebSockets to
`rooms.Connection`s and calls `connect`; the CLI calls `end`. The UI reads `snapshot()`,
never the parts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from . import git
from .access import Access
from .bridge import DiskBridge
from .conflicts import ConflictService
from .disk import DiskSync
from .documents import Codec
from .ending import PRELOAD, WATCH, Ending, EndResult, OnCommit, default_message
from .errors import SessionEndedError
from .events import EventLog
from .filenames import inside
from .fileops import FileService
from .fileset import FileSet
from .folderwatch import FolderWatch, poll_ms
from .idle import unload_idle
from .kernels.service import KernelService
from .limits import DEFAULT, Limits
from .manifest import FileEntry, Manifest
from .plugins.services import add_services
from .registry import RoomRegistry
from .requests import RequestChannel
from .rooms import Connection, Room
from .store import Store
from .supervisor import Supervisor

__all__ = ["EndResult", "FileView", "Session", "SessionSnapshot", "default_message", "store_path"]

COMPACT = "compact"
FOLDERS = "folders"
UNLOAD = "unload"


@dataclass(frozen=True, slots=True)
class FileView:
    """One shared file as the UI shows it."""

    path: str
    kind: str
    save: str  # "saved" | "unsaved" | "not saved: why"
    error: bool


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """What the terminal UI shows of a session, read at one instant (immutable)."""

    session: str
    branch: str
    url: str
    readonly_url: str
    resumed: bool
    persistent: bool
    files: tuple[FileView, ...]
    participants: tuple[dict[str, Any], ...]
    events: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    warnings: tuple[tuple[str, str], ...]
    kernels: bool = False  # participants may run code on this machine
    file_count: int = 0  # every shared file (`files` may hold only the first ones)


class Session:
    """A live session over a repository's files (see the module docstring for its parts)."""

    def __init__(
        self, info: git.RepoInfo, manifest: Manifest, store: Store, resumed: bool, limits: Limits = DEFAULT
    ) -> None:
        self.manifest = manifest
        self.store = store
        self.resumed = resumed
        self.limits = limits
        self.url = ""
        self.readonly_url = ""
        self.events = EventLog()
        self.tasks = Supervisor(self.events)
        self.registry = RoomRegistry(info, manifest, store, limits, self.events)
        self.bridge = DiskBridge(info, manifest, self.registry, store, limits, self.events)
        self.access = Access(manifest, self.save_manifest, self.events)
        self.ending = Ending(info, manifest, store, self.registry, self.bridge, self.tasks, self.events)
        store.on_failure = lambda exc: self.events(f"session store write failed: {exc}")
        self.requests = RequestChannel(limits)
        self.kernels = KernelService(self)
        self.requests.register("kernel", self.kernels)
        self.requests.register("conflict", ConflictService())
        self.plugins = add_services(self)  # installed plugin services, on the same channel
        self.fileset = FileSet(
            info, manifest, self.registry, self.bridge, store, limits, self.events, self.save_manifest
        )
        self.fileset.live = lambda: self.state == "live"
        self.ending.binaries = self.fileset.binaries
        self.requests.register("files", FileService(self.fileset))
        self.folders = FolderWatch(
            info.workdir,
            manifest.folders,
            self.fileset.disk_changed,
            self.events,
            poll_every_ms=poll_ms(len(manifest.files)),
        )
        # files in watched folders are checked when the watcher sees them change, not polled
        self.bridge.disk.watched = lambda path: (
            self.folders.watching and (not path or "" in manifest.folders or inside(path, manifest.folders))
        )
        self.registry.requests = self.requests.receive
        self.access.on_left = self.requests.disconnected
        self.ending.before_stop = self.requests.close
        #: The relays serving this session's clients (`relay.owner` sets it with --redis).
        self.relays: Callable[[], list[dict[str, Any]]] = list

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self, files: list[tuple[str, str, bytes, os.stat_result | None]] | None = None) -> None:
        """Read the stored originals, begin tracking the files on disk, start the tasks.
        A new session passes its files as it just read them (room, path, bytes, stat):
        not read back from the store, not stat'ed again. Files not read yet (a large
        tree's, see `launch`) are neither read nor tracked here: their room's first
        opening does both (`RoomRegistry.take_original`)."""
        tracked = []
        stats: list[os.stat_result | None] | None = None
        originals = self.registry.originals
        if files is not None:
            stats = []
            for room, path, original, st in files:
                originals[room] = original
                tracked.append((path, original))
                stats.append(st)
        else:
            for room, path, _kind, stored in await self.store.files():
                if stored is not None:
                    originals[room] = bytes(stored)
                    tracked.append((path, bytes(stored)))
        await self.bridge.disk.track_all(tracked, stats)  # files not read yet: when first opened
        await self.registry.room(self.manifest.session_room)
        if self.resumed:
            await self.bridge.reconcile()
        self.tasks.start(WATCH, self.bridge.watch())
        self.tasks.start(COMPACT, self.registry.compact_periodically())
        self.tasks.start(FOLDERS, self.folders.run())
        self.tasks.start(
            UNLOAD,
            unload_idle(
                self.registry,
                self.bridge.disk,
                self.store,
                self.limits.unload_idle_after,
                lambda: self.kernels.enabled,
                lambda: self.state == "live",
                self.limits.graves_hold,
            ),
        )
        self.tasks.start(PRELOAD, self.registry.preload(lambda: self.state == "live"))

    async def close(self) -> None:
        """Stop the kernels, the background tasks, and close the store (after `end`, or when
        shutting down)."""
        await self.requests.close()
        await self.tasks.close()
        await self.store.close()

    # -- connections -----------------------------------------------------------------

    async def connect(self, name: str, conn: Connection) -> Room:
        """Join `conn` to room `name`; `SessionEndedError` once the session is ending."""
        if self.state != "live":
            raise SessionEndedError("the session has ended")
        room = await self.registry.room(name)
        if name == self.manifest.session_room:
            conn.may_write = False  # its document (the session's state) is the server's alone
        self.access.joined(conn, room)
        await room.join(conn)
        return room

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection (its presence is removed for the others)."""
        self.access.left(conn)

    # -- the parts' operations, for the server and the CLI ----------------------------

    def event(self, message: str) -> None:
        """Record something the owner should see (the panel shows the latest)."""
        self.events(message)

    def grant_for(self, token: str | None) -> tuple[str, str | None] | None:
        """(role, invite name) a token grants (see `Access.grant_for`)."""
        return self.access.grant_for(token)

    def role_for(self, token: str | None) -> str | None:
        """The role a token grants."""
        return self.access.role_for(token)

    async def invite(self, name: str, viewer: bool, no_run: bool = False) -> str:
        """A new personal link token for `name` (see `Access.invite`)."""
        return await self.access.invite(name, viewer, no_run)

    async def join(self, token: str | None, name: str) -> tuple[str, str | None]:
        """A personal credential for someone joining with `token` (see `Access.join`)."""
        return await self.access.join(token, name)

    async def kick(self, name: str) -> int:
        """Revoke `name`'s links and close their connections (see `Access.kick`)."""
        return await self.access.kick(name)

    def participants(self) -> list[dict[str, Any]]:
        """Who is connected (see `Access.participants`)."""
        return self.access.participants()

    async def room(self, name: str) -> Room:
        """The loaded room `name` (see `RoomRegistry.room`)."""
        return await self.registry.room(name)

    async def save_manifest(self, commit_only: bool = False) -> None:
        """Persist the manifest in the store (see `Ending.save_manifest`)."""
        await self.ending.save_manifest(commit_only)

    async def end(
        self,
        message: str | None,
        commit: bool = True,
        onto_branch: str | None = None,
        on_commit: OnCommit | None = None,
        take_current: bool = False,
    ) -> EndResult:
        """End the session with one commit (see `Ending.end`)."""
        return await self.ending.end(message, commit, onto_branch, on_commit, take_current)

    async def commit_now(self, message: str | None, take_current: bool = False) -> EndResult:
        """One commit of the current state; the session goes on (see `Ending.commit_now`)."""
        return await self.ending.commit_now(message, take_current)

    async def pause(self) -> EndResult:
        """Stop serving a persistent session without ending it (see `Ending.pause`)."""
        return await self.ending.pause()

    async def changed_files(self) -> dict[str, bytes]:
        """Path → bytes of every shared file changed since the last commit."""
        return await self.ending.changed_files()

    # -- state, read by the server's views and the UI ----------------------------------

    @property
    def info(self) -> git.RepoInfo:
        """The repository; `head` is the session's base (it moves with each commit)."""
        return self.ending.info

    @property
    def state(self) -> str:
        """ "live", "ending" or "ended"."""
        return self.ending.state

    @property
    def result(self) -> EndResult | None:
        """The last end's result (None before any)."""
        return self.ending.result

    @property
    def ended(self) -> asyncio.Event:
        """An `asyncio.Event` set once the session has ended."""
        return self.ending.ended

    @property
    def rooms(self) -> dict[str, Room]:
        return self.registry.rooms

    @property
    def codecs(self) -> dict[str, Codec]:
        return self.registry.codecs

    @property
    def originals(self) -> dict[str, bytes]:
        return self.registry.originals

    @property
    def files(self) -> dict[str, FileEntry]:
        return self.registry.files

    @property
    def disk(self) -> DiskSync:
        return self.bridge.disk

    @property
    def connections(self) -> dict[Connection, Room]:
        return self.access.connections

    def snapshot(self, max_files: int | None = None) -> SessionSnapshot:
        """An immutable view of the session for the terminal UI; with `max_files`, only
        the first files (the panel redraws four times a second: 100,000 rows each time
        were its idle CPU on a large tree), `file_count` says how many there are."""
        states = self.bridge.disk.files
        files = []
        for entry in self.manifest.files[:max_files]:
            state = states.get(entry.path)
            files.append(
                FileView(
                    entry.path,
                    entry.kind,
                    state.label if state else "saved",
                    bool(state and (state.error or state.linked)),
                )
            )
        m = self.manifest
        return SessionSnapshot(
            session=m.session,
            branch=self.info.branch_name,
            url=self.url,
            readonly_url=self.readonly_url,
            resumed=self.resumed,
            persistent=m.persistent,
            files=tuple(files),
            participants=tuple(self.access.participants()),
            events=tuple(self.events.lines),
            skipped=tuple(m.skipped),
            warnings=tuple(m.warnings),
            kernels=self.kernels.enabled,
            file_count=len(m.files),
        )


def store_path(gitdir: Path, session_id: str) -> Path:
    """Where a session's durable store lives."""
    return gitdir / "rtc" / "sessions" / session_id / "store.sqlite"
