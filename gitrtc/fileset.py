"""The live file set: files joining, moving and leaving a running session.

A session shares folders, not a fixed list. Files created, renamed or deleted inside a
shared folder — on the owner's disk (`folderwatch`) or by a participant (`fileops`) —
join, move within, or leave the session here, and every client is told (the session
room's `files_version` / `files_changes`, see `announce`). A renamed file keeps its room:
the document, its history and the editors open on it move with it. The end commit
follows (`Manifest.added` / `removed`: additions, deletions, renames as git sees them).

What joins follows git: tracked files and untracked-but-not-ignored ones (git's own
ignore rules, through pygit2); a symbolic link, a binary, non-UTF-8 or too large file is
listed as not shared (`Manifest.skipped`), never read again. Nothing outside the shared
folders is ever listed, created, moved or deleted.

Work is never lost: a file deleted on disk while someone has it open, or with edits not
yet written, stays in the session (write-back restores it); a participant's delete is
refused while another has the file open; a second file created at a taken path is kept
under a clear name (`name (2).ext`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import stat
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet

from pycrdt import Map

from . import git, safefs
from .binaries import Binaries, bdigest, content_type, is_binary
from .bridge import DiskBridge, save_aside
from .disk import digest
from .errors import DocumentError, FileNameError, FileOpError, UnknownRoomError, UnsafePathError
from .filenames import check_new_path, check_rename, second_name
from .filescan import Found, GitView, look
from .limits import Limits
from .manifest import FileEntry, Manifest
from .origins import Participant, ServerEdit
from .registry import RoomRegistry
from .store import Store

#: The most changes one announcement carries; a client that sees more refetches the list.
MAX_ANNOUNCED = 500
DEFAULT_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


class FileSet:
    """The session's shared files as they come, move and go (one lock orders the changes)."""

    def __init__(
        self,
        info: git.RepoInfo,
        manifest: Manifest,
        registry: RoomRegistry,
        bridge: DiskBridge,
        store: Store,
        limits: Limits,
        event: Callable[[str], None],
        save_manifest: Callable[[], Awaitable[None]],
    ) -> None:
        self.info = info
        self.manifest = manifest
        self.registry = registry
        self.bridge = bridge
        self.store = store
        self.limits = limits
        self._event = event
        self._save = save_manifest
        self.lock = asyncio.Lock()
        self.binaries = Binaries(manifest, info.workdir, event)
        self.off_branch: set[str] = set()  # changed paths seen while off the session's branch
        #: Whether changes are taken in now (not while the session ends).
        self.live: Callable[[], bool] = lambda: True
        self._leaving: set[asyncio.Task[None]] = set()
        self.git_view = GitView(info.gitdir)  # the index, read again only when it changed
        self._paths = {f.path for f in manifest.files}
        registry.on_not_shareable = self.not_shareable

    # -- what is shared ---------------------------------------------------------------

    def entry(self, path: str) -> FileEntry | None:
        """The shared file at `path`, if any."""
        entry = self.registry.files.get(self.manifest.room_for(path))
        return entry if entry is not None and entry.path == path else None

    def paths(self) -> AbstractSet[str]:
        """Every shared path now (kept as files come, move and go: a batch of changes in
        a 100,000-file tree no longer builds a set of every path; read it, never keep it)."""
        return self._paths

    # -- changes seen on the owner's disk ---------------------------------------------

    async def disk_changed(self, changed: set[str]) -> None:
        """(folder watcher) Paths changed on disk (absolute): files that appeared join,
        files renamed move (same content, same kind), files deleted leave."""
        if not self.live():
            return
        if not self.bridge.on_branch():
            # another branch checked out (write-back is paused too): its files are not
            # the session's; looked at again once the work tree is back on the branch
            self.off_branch |= changed
            return
        changed, self.off_branch = changed | self.off_branch, set()
        async with self.lock:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(
                None,
                look,
                self.info.workdir,
                self.git_view,
                self.manifest.folders,
                changed,
                self.paths(),
                self.limits.max_file_bytes,
                frozenset(self.manifest.binaries),
            )
            changes = await self._take_in(found)
            if changes:
                await self._save()
                self.announce(changes)
        # saves of shared files in watched folders: merged here, not found by polling
        await self.bridge.disk.check_paths([p for p in dict.fromkeys(found.touched) if p in self.bridge.disk.files])

    async def _take_in(self, found: Found) -> list[dict[str, object]]:
        changes: list[dict[str, object]] = []
        by_digest: dict[str, str] = {}
        for path in found.gone:
            state = self.bridge.disk.files.get(path)
            if state is not None and state.written is not None:
                by_digest.setdefault(state.written, path)
        for path, (data, kind, warnings) in sorted(found.new.items()):
            old = by_digest.pop(digest(data), None)
            old_entry = self.entry(old) if old is not None else None
            if old is not None and old_entry is not None and old_entry.kind == kind:
                found.gone.remove(old)
                await self.move(old, path)
                changes.append({"op": "move", "from": old, "path": path, "kind": kind, "room": old_entry.room})
                self._event(f"{old} was renamed on disk to {path}: it moved in the session")
                continue
            entry = await self.add(path, data, kind, warnings)
            changes.append({"op": "add", "path": path, "kind": kind, "room": entry.room})
            self._event(f"{path} was created on disk: now shared")
        for path in found.gone:
            if self._in_use(path):
                continue  # kept: write-back restores it (the disk watcher reports it)
            await self.remove(path, "the file was deleted")
            changes.append({"op": "remove", "path": path})
            self._event(f"{path} was deleted on disk: it left the session")
        changes.extend(self._take_binaries(found))
        for path, why in sorted(found.skipped.items()):
            if (path, why) not in self.manifest.skipped:
                self.manifest.skipped = [s for s in self.manifest.skipped if s[0] != path] + [(path, why)]
                changes.append({"op": "skip", "path": path, "reason": why})
        return changes

    def _take_binaries(self, found: Found) -> list[dict[str, object]]:
        m, seen = self.manifest, self.binaries.seen
        changes: list[dict[str, object]] = []
        for path, new in sorted(found.binaries.items()):
            if (seen.get(path) or m.binaries.get(path)) == new:
                continue
            if path not in m.binaries:
                m.binaries[path] = ""  # new in the session: committed as an addition
                if path in m.removed:
                    m.removed.remove(path)
            seen[path] = new
            changes.append({"op": "binary", "path": path, "digest": new, "type": content_type(path)})
        for path in sorted(set(found.binaries_gone)):
            if m.binaries.pop(path, None) is not None:
                seen.pop(path, None)
                if path not in m.removed:
                    m.removed.append(path)
                m.skipped = [s for s in m.skipped if s[0] != path]
                changes.append({"op": "remove", "path": path})
        return changes

    async def put_binary(self, raw: object, data: bytes, who: Participant) -> str:
        """Replace (or create) a whole file with `data` (an image from the browser)."""
        path = check_new_path(raw, self.manifest.folders) if raw not in self.manifest.binaries else str(raw)
        if not is_binary(data, self.limits.max_file_bytes):
            raise FileOpError(
                f"{path}: only binary files up to {self.limits.max_file_bytes} bytes are replaced whole; "
                "text is edited in its document"
            )
        async with self.lock:
            self._check_live()
            if self.entry(path) is not None:
                raise FileOpError(f"{path} is a shared document: edit it, or delete it first")
            loop = asyncio.get_running_loop()
            if path not in self.manifest.binaries:
                await loop.run_in_executor(None, self._check_place, path, set(self.paths()))
            try:
                await loop.run_in_executor(
                    None, lambda: safefs.replace_file(self.info.workdir, path, data, make_folders=0o755)
                )
            except OSError as exc:
                raise FileOpError(f"{path}: cannot be written ({exc.strerror})") from None
            changes = self._take_binaries(Found(binaries={path: bdigest(data)}))
            self.store.credit(who)
            if changes:
                await self._save()
                self.announce([{**c, "by": who.name} for c in changes])
            return path

    def _in_use(self, path: str) -> bool:
        """Whether `path`'s document has someone on it or edits the disk has not seen."""
        entry = self.entry(path)
        if entry is None:
            return False
        room = self.registry.rooms.get(entry.room)
        state = self.bridge.disk.files.get(path)
        open_by = room is not None and any(not c.mirror for c in room.connections)  # a mirror holds all files
        return bool(open_by or (state is not None and state.dirty))

    def not_shareable(self, entry: FileEntry, why: str, data: bytes | None) -> None:
        """(registry hook) A file listed unread (a large tree's) is not shareable as a
        document after all, found at its first opening: it leaves the session's documents
        and is listed as skipped (a binary: shared whole), as a start that read it would
        have listed it; the end commit leaves it as it is on disk."""
        task = asyncio.get_running_loop().create_task(self._leave_unshareable(entry, why, data))
        self._leaving.add(task)
        task.add_done_callback(self._left)

    def _left(self, task: asyncio.Task[None]) -> None:
        self._leaving.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self._event(f"a file found not shareable could not leave the session ({exc})")

    async def _leave_unshareable(self, entry: FileEntry, why: str, data: bytes | None) -> None:
        m, path = self.manifest, entry.path
        async with self.lock:
            if self.entry(path) is None or self.entry(path) != entry:
                return  # moved or left meanwhile
            was_removed = path in m.removed
            await self.remove(path, f"not shared: {why}")
            if not was_removed and path in m.removed:
                m.removed.remove(path)  # still on disk as it was: nothing to commit
            m.skipped = [s for s in m.skipped if s[0] != path] + [(path, why)]
            changes: list[dict[str, object]] = [
                {"op": "remove", "path": path},
                {"op": "skip", "path": path, "reason": why},
            ]
            if data is not None and is_binary(data, self.limits.max_file_bytes):
                m.binaries[path] = bdigest(data)
                changes.append({"op": "binary", "path": path, "digest": m.binaries[path], "type": content_type(path)})
            await self._save()
            self.announce(changes)
            self._event(f"{path}: not shared ({why}), found when it was first opened")

    # -- the three changes -------------------------------------------------------------

    async def add(self, path: str, data: bytes, kind: str, warnings: list[str]) -> FileEntry:
        """`path` (holding `data` on disk) joins the session, in a room of its own."""
        m = self.manifest
        salt = secrets.token_hex(8)  # a new room each time: a path shared before has an old log
        room = f"{m.epoch}.{hashlib.sha256(f'{path}:{salt}'.encode()).hexdigest()[:16]}"
        entry = FileEntry(path, kind, room)
        await self.store.add_file(room, path, kind, data)
        m.files.append(entry)
        self._paths.add(path)
        m.rooms[path] = room
        m.added.append(room)
        if path in m.removed:
            m.removed.remove(path)
        m.skipped = [s for s in m.skipped if s[0] != path]
        m.warnings.extend((path, w) for w in warnings)
        self.registry.add(entry, data)
        self.bridge.disk.track(path, data)
        return entry

    async def remove(self, path: str, reason: str) -> None:
        """`path` leaves the session: its room is unloaded (its clients told `reason`)."""
        m = self.manifest
        entry = self.entry(path)
        if entry is None:
            return
        m.files = [f for f in m.files if f.room != entry.room]
        m.rooms.pop(path, None)
        self._paths.discard(path)
        if entry.room in m.added:
            m.added.remove(entry.room)
        if path not in m.removed:
            m.removed.append(path)
        m.baseline.pop(entry.room, None)
        await self.bridge.disk.untrack(path)
        await self.registry.forget(entry.room, f"{path}: {reason}")
        await self.store.remove_file(entry.room)

    async def move(self, old: str, new: str) -> FileEntry:
        """Shared file `old` now lives at `new`: same room, same document, same editors."""
        m = self.manifest
        entry = self.entry(old)
        assert entry is not None
        moved = FileEntry(new, entry.kind, entry.room)
        m.files = [moved if f.room == entry.room else f for f in m.files]
        self._paths.discard(old)
        self._paths.add(new)
        m.rooms.pop(old, None)
        m.rooms[new] = entry.room
        if entry.room not in m.added:
            m.added.append(entry.room)
        if old not in m.removed:
            m.removed.append(old)
        if new in m.removed:
            m.removed.remove(new)
        await self.bridge.disk.move(old, new)
        self.registry.moved(moved)
        for part in (self.registry.codecs.get(entry.room), getattr(self.registry.rooms.get(entry.room), "guard", None)):
            if part is not None and hasattr(part, "path"):
                part.path = new  # their messages name the file
        await self.store.move_file(entry.room, new)
        return moved

    # -- changes asked for by participants (`fileops`) ---------------------------------

    async def create(self, raw: object, kind: str, who: Participant) -> str:
        """Create a new empty file (`text`) or notebook at `raw`; the path it got (a
        second creation at a taken path is kept as `name (2).ext`)."""
        if kind not in ("text", "notebook"):
            raise FileNameError("kind must be text or notebook")
        path = check_new_path(raw, self.manifest.folders)
        if kind == "notebook" and not path.lower().endswith(".ipynb"):
            raise FileNameError(f"{path}: a notebook's name ends with .ipynb")
        async with self.lock:
            self._check_live()
            data = self._new_notebook() if kind == "notebook" else b""
            loop = asyncio.get_running_loop()
            taken = set(self.paths())
            while True:
                await loop.run_in_executor(None, self._check_place, path, taken)
                if path in taken:
                    path = second_name(path, taken)
                    continue
                try:
                    await loop.run_in_executor(None, safefs.create_file, self.info.workdir, path, data)
                except FileExistsError:
                    taken.add(path)
                    continue
                except UnsafePathError as exc:
                    raise FileNameError(f"{path}: {exc}") from None
                except OSError as exc:
                    raise FileOpError(f"{path}: cannot be created ({exc.strerror})") from None
                break
            entry = await self.add(path, data, kind, [])
            self.store.credit(who)
            await self._save()
            self.announce([{"op": "add", "path": path, "kind": kind, "room": entry.room, "by": who.name}])
            self._event(f"{who.name} created {path}")
            return path

    async def rename(self, old: object, raw: object, who: Participant) -> list[dict[str, object]]:
        """Move a shared file (or every shared file of a folder) to `raw`; the moves made."""
        if not isinstance(old, str):
            raise FileNameError("give the path to rename as a string")
        new = check_new_path(raw, self.manifest.folders)
        check_rename(old, new)
        async with self.lock:
            self._check_live()
            single = self.entry(old)
            if single is not None:
                pairs = [(old, new)]
            else:
                pairs = [(p, new + p[len(old) :]) for p in sorted(self.paths()) if p.startswith(old + "/")]
                if not pairs:
                    raise FileOpError(f"{old}: no such shared file or folder")
            taken = self.paths() - {p for p, _ in pairs}
            loop = asyncio.get_running_loop()
            for src, dst in pairs:
                entry = self.entry(src)
                assert entry is not None
                if dst in taken or (dst.startswith(old + "/") and single is None):
                    raise FileOpError(f"{dst} already exists (or lies inside {old}): choose another name")
                if _kind_of(dst) != _kind_of(src) and entry.kind == "notebook":
                    raise FileNameError(f"{src} → {dst}: a notebook keeps its .ipynb name")
                await loop.run_in_executor(None, self._check_place, dst, set(taken))
            if single is None and await loop.run_in_executor(None, safefs.lstat, self.info.workdir, new) is not None:
                raise FileOpError(f"{new} already exists: choose another name")
            for src, _dst in pairs:
                entry = self.entry(src)
                if entry is not None and not self.registry.read_yet(entry.room):
                    try:  # never read (a large tree's): its original is read where it is, before it moves
                        await self.registry.take_original(entry)
                    except UnknownRoomError as exc:
                        raise FileOpError(f"{exc}: not renamed") from None
                state = self.bridge.disk.files.get(src)
                if state is not None and state.dirty:
                    await self.bridge.disk.write(src)  # the disk holds the latest text before it moves
            try:
                if single is None:
                    await loop.run_in_executor(None, safefs.rename_file, self.info.workdir, old, new)
                else:
                    exists = await loop.run_in_executor(None, safefs.lstat, self.info.workdir, old)
                    if exists is not None:
                        await loop.run_in_executor(None, safefs.rename_file, self.info.workdir, old, new)
            except FileExistsError:
                raise FileOpError(f"{new} already exists: choose another name") from None
            except OSError as exc:
                raise FileOpError(f"{old}: cannot be renamed ({exc.strerror})") from None
            changes: list[dict[str, object]] = []
            for src, dst in pairs:
                moved = await self.move(src, dst)
                changes.append({"op": "move", "from": src, "path": dst, "kind": moved.kind, "room": moved.room})
            self.store.credit(who)
            await self._save()
            self.announce([{**c, "by": who.name} for c in changes])
            self._event(f"{who.name} renamed {old} to {new}")
            return changes

    async def delete(self, path: object, who: Participant) -> None:
        """Delete a shared file: refused while someone else has it open (their work is
        kept); its last version is kept under the session folder (`deleted/`)."""
        if not isinstance(path, str):
            raise FileNameError("give the path to delete as a string")
        async with self.lock:
            self._check_live()
            entry = self.entry(path)
            if entry is None and path in self.manifest.binaries:
                await self._delete_binary(path, who)
                return
            if entry is None:
                raise FileOpError(f"{path}: no such shared file")
            room = self.registry.rooms.get(entry.room)
            others = sorted(
                {
                    c.participant.name
                    for c in (room.connections if room else ())
                    if c.participant.key != who.key and not c.mirror
                }
            )
            if others:
                raise FileOpError(
                    f"{path} is open by {', '.join(others)}: not deleted, their work is kept; "
                    "ask them to close it first"
                )
            loop = asyncio.get_running_loop()
            try:
                last = self.registry.render(path) if room is not None else self.registry.originals.get(entry.room)
            except DocumentError:
                last = room.doc.get_update() if room is not None else b""
            if last is None:  # never read (a large tree's file nobody opened): as the disk holds it
                try:
                    last = await loop.run_in_executor(None, safefs.read_file, self.info.workdir, path)
                except OSError:
                    last = b""
            await self.bridge.disk.untrack(path)
            await loop.run_in_executor(None, save_aside, self.store.path.parent / "deleted" / path, last)
            try:
                await loop.run_in_executor(None, safefs.remove_file, self.info.workdir, path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.bridge.disk.track(path, last)
                raise FileOpError(f"{path}: cannot be deleted ({exc.strerror})") from None
            await self.remove(path, f"deleted by {who.name}")
            self.store.credit(who)
            await self._save()
            self.announce([{"op": "remove", "path": path, "by": who.name}])
            self._event(f"{who.name} deleted {path} (its last version is kept in the session folder)")

    async def _delete_binary(self, path: str, who: Participant) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, safefs.remove_file, self.info.workdir, path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise FileOpError(f"{path}: cannot be deleted ({exc.strerror})") from None
        changes = self._take_binaries(Found(binaries_gone=[path]))
        self.store.credit(who)
        await self._save()
        self.announce([{**c, "by": who.name} for c in changes])
        self._event(f"{who.name} deleted {path}")

    def _check_live(self) -> None:
        if not self.live():
            raise FileOpError("the session is ending: files can no longer be created, renamed or deleted")

    def _check_place(self, path: str, taken: set[str]) -> None:
        """(disk thread) Refuse a path whose folder is a file, that is a folder, or that
        git would ignore (it would not be shared)."""
        parts = path.split("/")
        for n in range(1, len(parts)):
            prefix = "/".join(parts[:n])
            st = safefs.lstat(self.info.workdir, prefix)
            if prefix in taken or (st is not None and not stat.S_ISDIR(st.st_mode)):
                raise FileNameError(f"{prefix} is a file: it cannot hold {path}")
        st = safefs.lstat(self.info.workdir, path)
        if st is not None:
            if stat.S_ISDIR(st.st_mode) or any(p.startswith(path + "/") for p in taken):
                raise FileNameError(f"{path} is a folder: choose another name")
            taken.add(path)  # a file not shared (ignored, not yet seen): never replaced
        repo, index = self.git_view.get()
        if path not in index and repo.path_is_ignored(path):
            raise FileNameError(f"{path} is ignored by .gitignore: it would not be shared")

    def _new_notebook(self) -> bytes:
        """An empty nbformat 4.5 notebook with the session's kernelspec (its first
        notebook's, else Python 3's)."""
        spec: object = DEFAULT_KERNELSPEC
        for f in self.manifest.files:
            if f.kind == "notebook":
                try:
                    meta = json.loads(self.registry.originals.get(f.room, b"{}")).get("metadata", {})
                except ValueError:
                    continue
                if isinstance(meta, dict) and isinstance(meta.get("kernelspec"), dict):
                    spec = meta["kernelspec"]
                    break
        notebook = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": secrets.token_hex(4),
                    "metadata": {},
                    "outputs": [],
                    "source": [],
                }
            ],
            "metadata": {"kernelspec": spec},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        return (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode()

    # -- telling the clients -----------------------------------------------------------

    def announce(self, changes: list[dict[str, object]]) -> None:
        """Tell every client the file list changed: the session room's `files_version`
        goes up by one and `files_changes` holds what changed (a client that missed a
        version, or gets `truncated`, refetches `GET /api/session`)."""
        m = self.manifest
        m.files_version += 1
        room = self.registry.rooms.get(m.session_room)
        if room is None:
            return
        version = m.files_version
        shown = changes[:MAX_ANNOUNCED]

        def write() -> None:
            info = room.doc.get("session", type=Map)
            info["files_changes"] = {"version": version, "changes": shown, "truncated": len(changes) > len(shown)}
            info["files_version"] = version

        room.edit(write, ServerEdit())


def _kind_of(path: str) -> str:
    return "notebook" if path.lower().endswith(".ipynb") else "text"
