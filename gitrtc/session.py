"""Session: the shared files' rooms, participants, write-back and the end commit.

Transport-agnostic: the server adapts WebSockets to `rooms.Connection`s and calls
`connect`/`disconnect`; the CLI calls `end`. Rooms are loaded on first use (once, even
when several clients arrive at the same instant) from the durable log if it has them,
else from the owner's file — and that load is itself logged, so a resumed session
rebuilds exactly the same CRDT history.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map

from . import git
from .disk import DiskSync, Stat, digest, file_stat
from .documents import Codec, open_codec
from .errors import (
    CommitError,
    DocumentError,
    SessionEndedError,
    StaleEpochError,
    StoreError,
    UnknownInviteError,
    UnknownRoomError,
)
from .manifest import EPOCH, ROOM_NAME, FileEntry, Manifest
from .kernels.service import KernelService
from .origins import DiskLoad, DiskMerge, StoreReplay
from .requests import RequestChannel
from .rooms import Connection, Room
from .store import Store

log = logging.getLogger(__name__)

CLOSE_ENDED = 4410
CLOSE_REMOVED = 4403
CLOSE_RESTART = 1012
#: Logged updates above which a room's log is compacted (at load, and once a minute).
COMPACT_AFTER = 2_000
#: Logged updates above which a busy room's log is compacted at the next look, so a
#: restart never replays more than about this many (a replay costs ~4 µs per update).
COMPACT_SOON = 20_000
#: Seconds between looks for rooms whose log should be compacted.
COMPACT_LOOK_EVERY = 5.0
#: Seconds between compactions of a room that is only a little behind.
COMPACT_EVERY = 60.0
#: Files loaded into their rooms right after the start, before anyone asks (so the first
#: person to open one is not the one who waits for it), within this many original bytes.
PRELOAD_FILES = 32
PRELOAD_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EndResult:
    """How a session ended: the commit (if any) and what to tell the user."""

    commit: str | None
    branch: str
    files: tuple[str, ...]
    coauthors: tuple[str, ...]
    message: str
    ended: bool  # False when the session stays resumable (commit failed)
    paused: bool = False  # a persistent session stopped serving; rtc start resumes it


class Session:
    """A live session over a repository's files."""

    def __init__(self, info: git.RepoInfo, manifest: Manifest, store: Store, resumed: bool) -> None:
        self.info = info
        self.manifest = manifest
        self.store = store
        self.resumed = resumed
        self.state = "live"
        self.rooms: dict[str, Room] = {}
        self.codecs: dict[str, Codec] = {}
        self.originals: dict[str, bytes] = {}
        self.files: dict[str, FileEntry] = {f.room: f for f in manifest.files}
        self.events: deque[str] = deque(maxlen=50)
        self.connections: dict[Connection, Room] = {}
        self.ended = asyncio.Event()
        self.result: EndResult | None = None
        self.url = ""
        self.readonly_url = ""
        self._loading: dict[str, asyncio.Task[Room]] = {}
        self._end_lock = asyncio.Lock()
        self._head_seen: Stat | None = None  # HEAD's stat at the last read
        self._head_on_branch = False
        self.disk = DiskSync(info.workdir, self._render, self._on_branch, self.event, self._merge_disk)
        self._watcher: asyncio.Task[None] | None = None
        self._compactor: asyncio.Task[None] | None = None
        self._preloader: asyncio.Task[None] | None = None
        store.on_failure = lambda exc: self.event(f"session store write failed: {exc}")
        #: The rooms' request channel and its services (kernels run code when enabled).
        self.requests = RequestChannel()
        self.kernels = KernelService(self)
        self.requests.register("kernel", self.kernels)

    # -- setup -----------------------------------------------------------------------

    async def start(self) -> None:
        """Read the stored originals and begin tracking the files on disk."""
        for room, path, _kind, original in await self.store.files():
            self.originals[room] = bytes(original)
            self.disk.track(path, bytes(original))
        await self.room(self.manifest.session_room)
        if self.resumed:
            await self._reconcile_disk()
        self._watcher = asyncio.get_running_loop().create_task(self.disk.watch())
        self._compactor = asyncio.get_running_loop().create_task(self._compact_periodically())
        self._preloader = asyncio.get_running_loop().create_task(self._preload())

    async def _preload(self) -> None:
        """Load the first shared files' rooms in the background (a few, up to a byte budget)."""
        budget = PRELOAD_BYTES
        for entry in self.manifest.files[:PRELOAD_FILES]:
            budget -= len(self.originals.get(entry.room, b""))
            if budget < 0 or self.state != "live":
                return
            try:
                await self.room(entry.room)
            except (DocumentError, StoreError) as exc:
                self.event(f"{entry.path}: {exc}")  # the same error meets whoever opens it

    async def _compact_periodically(self) -> None:
        """Keep the log small in a long session (streaming outputs) and a restart fast:
        fold a room's log into one update once a minute, or sooner when it is busy."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(COMPACT_LOOK_EVERY)
            minute = loop.time() - last >= COMPACT_EVERY
            if minute:
                last = loop.time()
            for room in list(self.rooms.values()):
                logged = room.logged_since_compaction
                if logged > COMPACT_SOON or (minute and logged > COMPACT_AFTER):
                    room.logged_since_compaction = 0
                    try:
                        await self.store.compact(room.name, room.doc.get_update)
                    except StoreError as exc:
                        self.event(str(exc))

    async def _reconcile_disk(self) -> None:
        """After a crash: find out what each file on disk is relative to the session.

        A file holding the session's last write-back is in sync; one still at its
        original bytes gets the session's edits written; one the owner changed while
        no session ran is merged in (an untouched room) or, when the session also has
        edits the disk never saw, kept aside in the session folder and reported.
        """
        touched = await self.store.rooms_with_updates()
        loop = asyncio.get_running_loop()
        for entry in self.manifest.files:
            original = self.originals[entry.room]
            try:
                disk = await loop.run_in_executor(None, (self.info.workdir / entry.path).read_bytes)
            except OSError:
                disk = None
            if disk == original or disk is None:
                if entry.room in touched:
                    await self.room(entry.room)
                    self.disk.changed(entry.path)
                continue
            room = await self.room(entry.room)
            current = self.codecs[entry.room].dump(room.doc)
            if disk == current:
                self.disk.track(entry.path, disk)
            elif current == original:
                await self._merge_disk(entry.path, disk, original)
            else:
                aside = self.store.path.parent / "disk-at-resume" / entry.path
                await loop.run_in_executor(None, _save_aside, aside, disk)
                self.disk.changed(entry.path)
                self.event(f"{entry.path} changed on disk while no session ran: the session's version "
                           f"is kept, the disk's is saved as {aside}")

    async def _merge_disk(self, path: str, data: bytes, base: bytes | None) -> None:
        """Merge a file changed on disk by someone else into its room as CRDT operations."""
        name = self.manifest.room_for(path)
        room = await self.room(name)
        codec = self.codecs[name]
        origin = DiskMerge(path)
        try:
            changed = room.edit(lambda: codec.apply_file(room.doc, data, origin, base=base), origin)
        except DocumentError as exc:
            self.event(f"{path} changed on disk but cannot be merged: {exc}")
            return
        if changed:
            self.event(f"{path} changed on disk: merged into the session")

    def event(self, message: str) -> None:
        """Record something the owner should see (the panel shows the latest)."""
        log.info("%s", message)
        self.events.append(f"{time.strftime('%H:%M:%S')}  {message}")

    def _on_branch(self) -> bool:
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

    # -- auth and rooms --------------------------------------------------------------

    def grant_for(self, token: str | None) -> tuple[str, str | None] | None:
        """(role, invite name) a token grants; every token is compared, in constant time."""
        if not token:
            return None
        found: tuple[str, str | None] | None = None
        for role, expected in self.manifest.tokens.items():
            if hmac.compare_digest(token.encode(), expected.encode()):
                found = (role, None)
        for invite in self.manifest.invites:
            if hmac.compare_digest(token.encode(), invite["token"].encode()):
                found = (invite["role"], invite["name"])
        return found

    def role_for(self, token: str | None) -> str | None:
        """The role a token grants (see `grant_for`)."""
        grant = self.grant_for(token)
        return grant[0] if grant else None

    async def save_manifest(self, commit_only: bool = False) -> None:
        """Persist the manifest (invites, port, baseline) in the store; `commit_only`:
        just the base and baseline a commit moved."""
        await self.store.set_meta(self.manifest.to_meta(commit_only))

    async def invite(self, name: str, viewer: bool, no_run: bool = False) -> str:
        """A new personal link token for `name` (editor, or viewer; `no_run`: an editor who
        may not run code)."""
        name = " ".join(name.split())[:80]
        if not name:
            raise UnknownInviteError("an invite needs a name")
        token = secrets.token_urlsafe(24)
        invite = {"name": name, "role": "viewer" if viewer else "editor", "token": token}
        if no_run and not viewer:
            invite["run"] = False  # read by `KernelService.refusal`
        self.manifest.invites.append(invite)
        await self.save_manifest()
        self.event(f"invited {name} ({'viewer' if viewer else 'editor'})")
        return token

    async def kick(self, name: str) -> int:
        """Revoke `name`'s links at once and close their connections; how many closed."""
        before = len(self.manifest.invites)
        self.manifest.invites = [i for i in self.manifest.invites if i["name"] != name]
        if len(self.manifest.invites) == before:
            raise UnknownInviteError(f"nobody named {name!r} was invited: see rtc status")
        await self.save_manifest()
        gone = [c for c in self.connections if c.participant.invite == name]
        await asyncio.gather(*(c.close(CLOSE_REMOVED, "removed from the session") for c in gone))
        self.event(f"removed {name}: {len(gone)} connection(s) closed")
        return len(gone)

    def check_room(self, name: str) -> None:
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
        self.check_room(name)
        if name in self.rooms:
            return self.rooms[name]
        task = self._loading.get(name)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(name))
            self._loading[name] = task
            task.add_done_callback(lambda _t: self._loading.pop(name, None))
        return await asyncio.shield(task)

    async def _load(self, name: str) -> Room:
        entry = self.files.get(name)
        doc = Doc()
        room = Room(name, entry.path if entry else None, entry.kind if entry else "session",
                    doc, self.store, self._on_change)
        room.requests = self.requests.receive
        codec = None
        if entry is not None:
            codec = self._codec(entry)
        updates = await self.store.updates(name)
        loaded = False
        if updates:
            with doc.transaction(origin=StoreReplay()):
                for update in updates:
                    doc.apply_update(update)
            if len(updates) > COMPACT_AFTER:
                await self.store.compact(name, doc.get_update)
        elif codec is not None and entry is not None:
            loaded = room.edit(lambda: codec.load_into(doc, DiskLoad(entry.path)), DiskLoad(entry.path))
        else:
            room.edit(lambda: self._init_session_doc(doc), DiskLoad(""))
        await self.store.flush()
        if codec is not None and entry is not None:
            self.codecs[name] = codec
        self.rooms[name] = room
        if loaded and entry is not None:
            self.disk.changed(entry.path)  # now that it can be rendered (see `_on_change`)
        return room

    def _codec(self, entry: FileEntry) -> Codec:
        original = self.originals[entry.room]
        codec = open_codec(entry.path, original)
        if codec.kind != entry.kind:
            raise DocumentError(f"{entry.path}: stored as {entry.kind}, now reads as {codec.kind}")
        return codec

    def _init_session_doc(self, doc: Doc) -> None:
        info = doc.get("session", type=Map)
        info["session"] = self.manifest.session
        info["branch"] = self.info.branch_name
        info["state"] = "live"

    def _on_change(self, room: Room, origin: object) -> None:
        # A room still loading cannot be rendered yet: `_load` notes its change once it is in.
        if room.path is not None and room.name in self.rooms:
            self.disk.changed(room.path)

    def _render(self, path: str) -> bytes:
        room_name = self.manifest.room_for(path)
        return self.codecs[room_name].dump(self.rooms[room_name].doc)

    # -- connections -----------------------------------------------------------------

    async def connect(self, name: str, conn: Connection) -> Room:
        """Join `conn` to room `name`; `SessionEndedError` once the session is ending."""
        if self.state != "live":
            raise SessionEndedError("the session has ended")
        room = await self.room(name)
        self.connections[conn] = room
        conn.on_close = lambda: self.disconnect(conn)
        await room.join(conn)
        return room

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection (its presence is removed for the others)."""
        room = self.connections.pop(conn, None)
        if room is not None:
            room.leave(conn)
            self.requests.disconnected(conn)

    def participants(self) -> list[dict[str, Any]]:
        """Who is connected, with their role and the files they have open."""
        people: dict[str, dict[str, Any]] = {}
        for conn, room in self.connections.items():
            p = conn.participant
            entry = people.setdefault(
                f"{p.key}/{p.role}", {"name": p.name, "email": p.email, "role": p.role, "files": []}
            )
            if room.path is not None and room.path not in entry["files"]:
                entry["files"].append(room.path)
        return list(people.values())

    def describe(self, role: str) -> dict[str, Any]:
        """The public `/api/session` view."""
        return {
            "session": self.manifest.session,
            "epoch": self.manifest.epoch,
            "role": role,
            "state": self.state,
            "branch": self.info.branch_name,
            "base": self.manifest.base,
            "session_room": self.manifest.session_room,
            "files": [{"path": f.path, "kind": f.kind, "room": f.room} for f in self.manifest.files],
            "participants": self.participants(),
            "commit": self.result.commit if self.result else None,
            "kernels": self.kernels.describe(),
        }

    async def status(self) -> dict[str, Any]:
        """The owner's view for `rtc status`: URLs, files with save state and store size."""
        sizes = await self.store.room_sizes()
        files = []
        for f in self.manifest.files:
            state = self.disk.files.get(f.path)
            files.append({
                "path": f.path, "kind": f.kind, "room": f.room,
                "open": f.room in self.rooms,
                "save": state.label if state else "saved",
                "store_bytes": sizes.get(f.room, 0),
            })
        return {
            **self.describe("owner"),
            "url": self.url,
            "readonly_url": self.readonly_url,
            "files": files,
            "skipped": [{"path": p, "reason": r} for p, r in self.manifest.skipped],
            "store_bytes": sum(sizes.values()),
            "resumed": self.resumed,
            "events": list(self.events),
        }

    async def pause(self) -> EndResult:
        """Stop serving a persistent session without ending it: flush, close connections."""
        async with self._end_lock:
            for task in (self._watcher, self._preloader):
                if task is not None:
                    task.cancel()
            await self.requests.close()  # kernels end (their outputs so far are in the doc)
            await self.disk.check_all()
            await self.store.flush()
            await self.disk.flush()
            await asyncio.gather(*(r.close_all(CLOSE_RESTART, "server restarting: reconnect")
                                   for r in self.rooms.values()))
            return EndResult(None, self.info.branch_name, (), (),
                             "persistent session paused: rtc start resumes it with the same links",
                             False, paused=True)

    async def close(self) -> None:
        """Stop watching and close the store (after `end`, or when shutting down)."""
        await self.requests.close()
        for task in (self._watcher, self._compactor, self._preloader):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        await self.store.close()

    # -- the end ---------------------------------------------------------------------

    async def end(self, message: str | None, commit: bool = True, onto_branch: str | None = None,
                  on_commit: Callable[[EndResult], Awaitable[None]] | None = None) -> EndResult:
        """Stop edits, flush, commit once, tell every client, close every connection.

        With `onto_branch`, the commit goes on a new branch of that name made at the
        session's base (the way out when the owner's branch moved in a conflicting way).
        `on_commit` is awaited as soon as the commit is on the branch, before the
        bookkeeping and the goodbyes (`rtc stop` answers then).
        """
        async with self._end_lock:
            if self.result is not None and self.result.ended:
                return self.result
            self.state = "ending"
            for task in (self._watcher, self._preloader):
                if task is not None:
                    task.cancel()
            await self.requests.close()  # kernels end first: their last outputs go in the commit
            await self.disk.check_all()  # a save made just before the stop belongs in the commit
            for room in self.rooms.values():
                room.accepting = False
            await self.store.flush()
            await self.disk.flush()
            result = await self._finish(message, commit, onto_branch, on_commit)
            self.result = result
            if not result.ended:
                self.state = "live"
                self._watcher = asyncio.get_running_loop().create_task(self.disk.watch())
                for room in self.rooms.values():
                    room.accepting = True
                self.event(result.message)
                return result
            self.state = "ended"
            await self._announce_end(result)
            self.ended.set()
            return result

    async def _finish(self, message: str | None, commit: bool, onto_branch: str | None = None,
                      on_commit: Callable[[EndResult], Awaitable[None]] | None = None) -> EndResult:
        if not commit:
            changes = await self.changed_files()
            return EndResult(None, self.info.branch_name, tuple(sorted(changes)), (), "ended without a commit", True)
        return await self._commit(message, onto_branch, on_commit)

    async def commit_now(self, message: str | None) -> EndResult:
        """Record the current state as one commit and keep the session going (`rtc commit`).

        `ended` in the result means "committed (or nothing to commit)"; co-authors are
        those who edited since the previous commit.
        """
        async with self._end_lock:
            if self.state != "live":
                raise SessionEndedError("the session is ending")
            await self.disk.check_all()
            await self.store.flush()
            await self.disk.flush()
            result = await self._commit(message, None)
            self.event(result.message)
            return result

    async def _commit(self, message: str | None, onto_branch: str | None,
                      on_commit: Callable[[EndResult], Awaitable[None]] | None = None) -> EndResult:
        changes = await self.changed_files()
        info = self.info
        branch = onto_branch or info.branch_name
        if not changes:
            return EndResult(None, branch, (), (), "nothing changed: no commit", True)
        text = message or default_message(sorted(changes))
        credits = await self.store.credits()
        try:
            repo = git.open_repo(info.workdir)
            if onto_branch:
                ref = await asyncio.to_thread(git.create_branch, repo, onto_branch, info.head)
                info = replace(info, branch=ref)
            done = await asyncio.to_thread(git.commit_session, repo, info, changes, text, credits,
                                           onto_branch is None)
        except CommitError as exc:
            return EndResult(None, branch, tuple(sorted(changes)), (), str(exc), False)
        if done.commit is None:
            return EndResult(None, branch, (), (), "nothing changed against the branch: no commit", True)
        result = EndResult(done.commit, branch, done.files, done.coauthors,
                           f"1 commit on {branch} {done.commit[:7]}", True)
        if on_commit is not None:
            await on_commit(result)
        if onto_branch is None:
            await self._committed(done.commit, changes)
        return result

    async def _committed(self, commit: str, changes: dict[str, bytes]) -> None:
        """After a commit on the branch: it is the new base, and its content the new baseline."""
        self.info = replace(self.info, head=commit)
        self.manifest.base = commit
        for path, data in changes.items():
            self.manifest.baseline[self.manifest.room_for(path)] = digest(data)
        await self.save_manifest(commit_only=True)
        await self.store.clear_credits()

    async def changed_files(self) -> dict[str, bytes]:
        """Path → bytes for every shared file whose document differs from the last commit
        (or, before any, from the file at the start)."""
        touched = await self.store.rooms_with_updates()
        out: dict[str, bytes] = {}
        for entry in self.manifest.files:
            if entry.room not in self.rooms and entry.room not in touched:
                continue
            room = await self.room(entry.room)
            data = self.codecs[entry.room].dump(room.doc)
            baseline = self.manifest.baseline.get(entry.room) or digest(self.originals[entry.room])
            if digest(data) != baseline:
                out[entry.path] = data
        return out

    async def _announce_end(self, result: EndResult) -> None:
        session_room = self.rooms.get(self.manifest.session_room)
        if session_room is not None:
            def mark() -> None:
                info = session_room.doc.get("session", type=Map)
                info["state"] = "ended"
                info["commit"] = result.commit
                info["branch"] = result.branch
                info["message"] = result.message
            session_room.accepting = True
            try:
                session_room.edit(mark, DiskLoad(""))
                await self.store.flush()
            except StoreError as exc:
                self.event(str(exc))
            for conn in list(session_room.connections):
                await conn.drain()
        reason = json.dumps({"commit": result.commit, "branch": result.branch})[:120]
        await asyncio.gather(*(r.close_all(CLOSE_ENDED, reason) for r in self.rooms.values()))


def _save_aside(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def default_message(paths: list[str]) -> str:
    """A commit message for a session ended without `-m`."""
    if len(paths) == 1:
        head = f"Edit {paths[0]} in a live session"
    else:
        head = f"Edit {len(paths)} files in a live session"
    return head + "\n\n" + "\n".join(f"- {p}" for p in paths)


def store_path(gitdir: Path, session_id: str) -> Path:
    """Where a session's durable store lives."""
    return gitdir / "rtc" / "sessions" / session_id / "store.sqlite"
