"""The live file set of an `rtc join` folder: files created, renamed and deleted follow.

Both ways, one change at a time (one worker orders them):

- the session → here: the session room's `files_version` moved (or a file's link was
  closed with 4404): the listing is read again (`GET /api/session`) and compared by room
  with what is mirrored. A new room is mirrored (its file written here), a room at a new
  path is renamed here, a room gone is removed here — and a file gone from the session
  that was changed here (a save here since it was mirrored, or bytes the session never
  had) is first kept aside under the state folder's `kept/STAMP/PATH` (the path is said).
- here → the session: a folder watcher (`folderwatch.FolderWatch` over the join folder)
  reports batches; `look_here` (a disk thread) says which tracked files are gone and which
  new files git would list inside the session's shared folders. A gone file and a new one
  with the bytes last agreed on are a rename; the rest are deletes and creates. Each goes
  through the public API the browser uses (`POST /api/files`); a refusal is said and the
  file put back (a delete the session refused is written again, a refused rename moved back).

A file created here joins as an empty file (or a fresh notebook) made by the server; its
bytes here are then merged into that new document like any local save.

Whole files (images, data: the session's `binaries`) follow as whole files: a new or
changed one in the session is fetched (`GET /api/raw`) and written here, one gone is
removed here (kept aside if changed here); one made or changed here is sent whole (`PUT
/api/raw`), one deleted here is deleted in the session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import pygit2

from . import git, joinnames, safefs
from .binaries import bdigest, is_binary
from .disk import digest
from .documents import MAX_FILE_BYTES
from .errors import DocumentError, JoinError, UnsafePathError
from .filenames import inside
from .folderwatch import FolderWatch
from .origins import DiskMerge

if TYPE_CHECKING:
    from .joinnames import SharedFile
    from .mirror import Mirror

log = logging.getLogger(__name__)

#: Seconds before the listing is read again after a failed read.
RETRY_SECONDS = 2.0


@dataclass(slots=True)
class LocalFound:
    """(disk thread) What changed in the join folder."""

    new: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (bytes, kind)
    gone: list[str] = field(default_factory=list)  # mirrored files no longer here
    touched: list[str] = field(default_factory=list)  # mirrored files that changed
    skipped: dict[str, str] = field(default_factory=dict)  # new files not sent, and why
    binaries: dict[str, bytes] = field(default_factory=dict)  # whole files new or changed here
    binaries_gone: list[str] = field(default_factory=list)


def look_here(
    folder: Path,
    changed: set[str],
    tracked: frozenset[str],
    folders: list[str],
    checkout: git.Checkout | None,
    max_bytes: int = MAX_FILE_BYTES,
    binaries: frozenset[str] = frozenset(),
) -> LocalFound:
    """(disk thread) Look at the changed paths (absolute) of the join folder: mirrored
    files gone or changed, and new files inside the session's shared folders that git
    would list here (not ignored), with their bytes."""
    found = LocalFound()
    gone: set[str] = set()
    repo = pygit2.Repository(str(checkout.gitdir)) if checkout is not None else None

    def ignored(rel: str) -> bool:
        if repo is None or checkout is None:
            return False
        in_repo = (folder / rel).relative_to(checkout.workdir).as_posix()
        return in_repo not in repo.index and repo.path_is_ignored(in_repo)

    def consider(rel: str, st: os.stat_result) -> None:
        if rel in binaries:
            if stat.S_ISREG(st.st_mode):
                try:
                    data = safefs.read_file(folder, rel)
                except OSError:
                    return
                if is_binary(data, max_bytes):
                    found.binaries[rel] = data
            return
        name = rel.rsplit("/", 1)[-1]
        if rel in tracked or rel in found.new or name.endswith(".rtc-tmp") or not inside(rel, folders):
            return
        if not stat.S_ISREG(st.st_mode) or ignored(rel):
            return
        if st.st_size > max_bytes:
            found.skipped[rel] = f"{st.st_size} bytes is over the {max_bytes}-byte limit for shared files"
            return
        try:
            data = safefs.read_file(folder, rel)
        except OSError:
            return  # gone again, or a link now: the next event says what it is
        kind = "notebook" if rel.lower().endswith(".ipynb") else "text"
        if is_binary(data, max_bytes):
            found.binaries[rel] = data  # shared whole
            return
        found.new[rel] = (data, kind)

    for absolute in changed:
        try:
            rel = Path(absolute).relative_to(folder).as_posix()
        except ValueError:
            continue
        parts = rel.split("/")
        if rel == "." or any(p.casefold() == ".git" for p in parts) or parts[0] == joinnames.STATE_FOLDER:
            continue
        if rel in tracked:
            found.touched.append(rel)
        try:
            st = safefs.lstat(folder, rel)
        except UnsafePathError:
            continue  # under a folder that is a link: nothing is read or sent there
        if st is None or not stat.S_ISREG(st.st_mode):  # gone, or a folder: which mirrored files went?
            for p in binaries:
                if (p == rel or p.startswith(rel + "/")) and not _exists(folder, p):
                    found.binaries_gone.append(p)
            for p in tracked:
                if p == rel or p.startswith(rel + "/"):
                    try:
                        there = safefs.lstat(folder, p)
                    except UnsafePathError:
                        continue
                    if there is None:
                        gone.add(p)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            for top, dirs, files in os.walk(folder / rel):
                dirs[:] = [d for d in dirs if d.casefold() != ".git" and d != joinnames.STATE_FOLDER]
                base = Path(top).relative_to(folder).as_posix()
                for name in files:
                    try:
                        consider(f"{base}/{name}", os.lstat(os.path.join(top, name)))
                    except OSError:
                        continue
        else:
            consider(rel, st)
    found.gone = sorted(gone)
    return found


class JoinFiles:
    """Keeps `mirror`'s set of files and the join folder's in step, both ways."""

    def __init__(self, mirror: Mirror, http: aiohttp.ClientSession, checkout: git.Checkout | None) -> None:
        self.m = mirror
        self.http = http
        self.checkout = checkout
        self._wake = asyncio.Event()  # something to do: a listing to read, paths to look at
        self._listing_due = False
        self._local: set[str] = set()  # paths changed here, not yet looked at
        self._creating: set[str] = set()  # created from here: merge the file here into the new room
        self._refused: dict[str, str] = {}  # path → why it was not sent (said once)
        self._unmirrored: set[str] = set()  # rooms that cannot be written here (said once)
        self.binaries: dict[str, str] = {}  # whole files mirrored here: path → digest last agreed
        self.watch = FolderWatch(mirror.folder, [""], self._local_changed, mirror.say)
        mirror.on_files_changed = self.listing_changed
        mirror.on_room_gone = lambda room: self.listing_changed()
        mirror.disk.watched = lambda path: self.watch.watching

    def listing_changed(self) -> None:
        """The session's file list changed: read it again (once, however many changes came)."""
        self._listing_due = True
        self._wake.set()

    async def _local_changed(self, paths: set[str]) -> None:
        self._local |= paths
        self._wake.set()

    async def run(self) -> None:
        """Take the changes of both sides in order, until cancelled."""
        watcher = asyncio.ensure_future(self.watch.run())
        try:
            await self.watch.ready.wait()
            # what changed here before the watches were in place (they see the rest)
            await self.m.disk.check_all()
            self.listing_changed()
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._local:
                    changed, self._local = self._local, set()
                    try:
                        await self.take_local(changed)
                    except (JoinError, aiohttp.ClientError, OSError) as exc:
                        self.m.say(f"changes here could not be sent to the session ({exc}): save again to retry")
                if self._listing_due:
                    self._listing_due = False
                    try:
                        await self.follow_session()
                    except (JoinError, aiohttp.ClientError, OSError) as exc:
                        log.info("the session's file list was not read: %s", exc)
                        asyncio.get_running_loop().call_later(RETRY_SECONDS, self.listing_changed)
        finally:
            watcher.cancel()

    # -- the session → here -------------------------------------------------------------

    async def follow_session(self) -> None:
        """Read the session's listing and make the files here follow it."""
        m = self.m
        info = await m._get_json(self.http, "/api/session")
        listing = joinnames.shared_files(info.get("files"))
        m.folders = joinnames.folders(info.get("folders"))
        by_room = {f.room: f for f in listing}
        for path, f in list(m.files.items()):
            if f.room not in by_room:
                await self._drop(path, "it was deleted in the session")
        moves = [(m.path_of[f.room], f.path) for f in listing if m.path_of.get(f.room, f.path) != f.path]
        while moves:
            ready = [(old, new) for old, new in moves if new not in m.files]
            if not ready:  # a cycle (a ↔ b): one of them goes through a free name first
                old, new = moves[0]
                spare = f"{new}.rtc-moving"
                await self._move(old, spare)
                moves[0] = (spare, new)
                continue
            for old, new in ready:
                await self._move(old, new)
                m.say(f"{old} was renamed to {new} in the session: renamed here")
            moves = [mv for mv in moves if mv not in ready]
        for f in listing:
            if f.room not in m.path_of and f.room not in self._unmirrored:
                await self._add(f)
        await self._follow_binaries(info.get("binaries"))

    async def _follow_binaries(self, listed: object) -> None:
        """The session's whole files: new or changed ones fetched and written here, gone
        ones removed here (a copy kept if it was changed here)."""
        m = self.m
        wanted: dict[str, str] = {}
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                wanted[joinnames.relative_path(entry.get("path"))] = entry["digest"][:64]
        for path in sorted(set(self.binaries) - set(wanted)):
            agreed = self.binaries.pop(path)
            local = await asyncio.to_thread(_read, m.folder, path)
            if local is None:
                continue
            if bdigest(local) != agreed:
                kept = await asyncio.to_thread(self._keep, path, local)
                m.say(f"{path}: it was deleted in the session; your version here is kept at {kept}")
            await asyncio.to_thread(safefs.remove_file, m.folder, path)
            m.say(f"{path} was removed here: it was deleted in the session")
        for path, want in sorted(wanted.items()):
            if self.binaries.get(path) == want or path in m.files:
                continue
            local = await asyncio.to_thread(_read, m.folder, path)
            if local is not None and bdigest(local) == want:
                self.binaries[path] = want  # already here
                continue
            data = await m._get_bytes(self.http, f"/api/raw?path={quote(path)}")
            if local is not None and path in self.binaries and bdigest(local) != self.binaries[path]:
                kept = await asyncio.to_thread(self._keep, path, local)
                m.say(f"{path}: replaced by the session's; your version here is kept at {kept}")
            from .mirror import write_local

            try:
                await asyncio.to_thread(write_local, m.folder, path, data)
            except (JoinError, OSError) as exc:
                m.say(f"{path}: the session's file cannot be written here ({exc})")
                continue
            self.binaries[path] = bdigest(data)
            m.say(f"{path} (a whole file) was written here from the session")

    def _keep(self, path: str, data: bytes) -> Path:
        """(thread) Keep a copy of this folder's `path` under the state folder's `kept/`."""
        assert self.m.state is not None
        return self.m.state.write(f"kept/{time.strftime('%Y%m%d-%H%M%S')}/{path}", data)

    async def _drop(self, path: str, why: str) -> None:
        """`path` left the session: removed here; kept aside first if it was changed here."""
        m = self.m
        state = await m.disk.untrack(path)
        changed_here = path in m.edited_here
        m.edited_here.discard(path)
        await m.close_link(path)
        try:
            local = await asyncio.to_thread(safefs.read_file, m.folder, path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            m.say(f"{path}: {why}, but the file here cannot be read ({exc.strerror}): left as it is")
            return
        if changed_here or state is None or local != state.synced:
            kept = await asyncio.to_thread(self._keep, path, local)
            m.say(f"{path}: {why}; your version here is kept at {kept}")
        try:
            await asyncio.to_thread(safefs.remove_file, m.folder, path)
        except FileNotFoundError:
            pass
        m.say(f"{path} was removed here: {why}")

    async def _move(self, old: str, new: str) -> None:
        """Shared file `old` is at `new` in the session now: the same here."""
        m = self.m
        if old in m.disk.files and await asyncio.to_thread(_exists, m.folder, old):
            await m.disk.check_paths([old])  # a save here not merged yet goes first, not lost in the move

        def move_here() -> Path | None:
            kept = None
            there = safefs.lstat(m.folder, old)
            if there is None:
                return None  # moved here already (our own rename), or gone: written at `new`
            target = safefs.lstat(m.folder, new)
            if target is not None and stat.S_ISREG(target.st_mode):
                kept = self._keep(new, safefs.read_file(m.folder, new))
                safefs.remove_file(m.folder, new)
            safefs.rename_file(m.folder, old, new)
            return kept

        try:
            kept = await asyncio.to_thread(move_here)
        except OSError as exc:
            m.say(f"{old} → {new}: cannot be renamed here ({exc.strerror or exc}); the session's text goes to {new}")
            kept = None
        if kept is not None:
            m.say(f"{new}: a file here was in the way of a rename; it is kept at {kept}")
        m.rekey(old, new)
        if old in m.edited_here:
            m.edited_here.discard(old)
            m.edited_here.add(new)
        await m.disk.move(old, new)
        state = m.disk.files.get(new)
        if state is not None and state.missing:
            m.disk.changed(new)  # not here: written from the document
        elif state is not None:
            # a save here after the rename and before this move took the file's stat is
            # not seen by its stat: looked at by content once now, merged if it differs
            state.seen = None
            await m.disk.check_paths([new])

    async def _add(self, f: SharedFile) -> None:
        """A file joined the session: mirrored here (a file created here is merged into it)."""
        m = self.m
        from .mirror import _first_sync

        original = await m._get_bytes(self.http, f"/api/original/{f.room}")
        client = m.open_link(f, original)
        task = m.follow(self.http, f.room)
        try:
            await _first_sync([client], [task])
        except JoinError:  # it left again before it synced
            await m.close_link(f.path)
            return
        codec, doc = m.codecs[f.path], m.docs[f.path]
        data = codec.dump(doc)
        try:
            local = await asyncio.to_thread(safefs.read_file, m.folder, f.path)
        except FileNotFoundError:
            local = None
        except OSError as exc:
            await self._not_here(f, exc.strerror or str(exc))
            return
        if f.path in self._creating and local is not None:
            self._creating.discard(f.path)
            try:
                codec.apply_file(doc, local, DiskMerge(f.path), base=data)
            except DocumentError as exc:
                m.say(f"{f.path}: your file cannot be merged into the session ({exc}); it is kept here")
                kept = await asyncio.to_thread(self._keep, f.path, local)
                m.say(f"{f.path}: your version is kept at {kept}")
            else:
                m.edited_here.add(f.path)
                m.say(f"{f.path} created here: now shared in the session")
            data = codec.dump(doc)
        elif local is not None and local != data:
            kept = await asyncio.to_thread(self._keep, f.path, local)
            m.say(f"{f.path} joined the session; the different file that was here is kept at {kept}")
        else:
            m.say(f"{f.path} was created in the session: mirrored here")
        if local != data:
            from .mirror import write_local

            try:
                await asyncio.to_thread(write_local, m.folder, f.path, data)
            except (JoinError, OSError) as exc:
                await self._not_here(f, str(exc))
                return
        m.disk.track(f.path, data)
        m._remember(f.path, data)

    async def _not_here(self, f: SharedFile, why: str) -> None:
        """A file of the session that cannot be written here: said once, not mirrored."""
        self._unmirrored.add(f.room)
        self.m.say(f"{f.path} joined the session but cannot be written here ({why}); not mirrored")
        await self.m.close_link(f.path)

    # -- here → the session -------------------------------------------------------------

    async def take_local(self, changed: set[str]) -> None:
        """Send what changed in the join folder: renames, deletes, creates; merge saves."""
        m = self.m
        found = await asyncio.to_thread(
            look_here,
            m.folder,
            changed,
            frozenset(m.files),
            m.folders,
            self.checkout,
            MAX_FILE_BYTES,
            frozenset(self.binaries),
        )
        agreed: dict[str, str] = {}
        for path in found.gone:
            state = m.disk.files.get(path)
            if state is not None and state.synced is not None:
                agreed.setdefault(digest(state.synced), path)
        for path, (data, _kind) in sorted(found.new.items()):
            old = agreed.pop(digest(data), None)
            if old is not None and _kind_of(old) == _kind_of(path):
                found.gone.remove(old)
                del found.new[path]
                await self._rename(old, path)
        for path in found.gone:
            await self._delete(path)
        for path, (_data, kind) in sorted(found.new.items()):
            await self._create(path, kind)
        for path, why in found.skipped.items():
            self._refuse(path, why)
        for path, data in sorted(found.binaries.items()):
            if self.binaries.get(path) != bdigest(data):
                await self._put_binary(path, data)
        for path in sorted(set(found.binaries_gone)):
            if path in self.binaries:
                status, answer = await self._post({"op": "delete", "path": path})
                if status == 200:
                    self.binaries.pop(path, None)
                    m.say(f"{path} deleted here: deleted in the session")
                else:
                    self._refuse(path, joinnames.label(answer.get("error") or f"answer {status}"))
        await m.disk.check_paths([p for p in dict.fromkeys(found.touched) if p in m.disk.files])

    def _refuse(self, path: str, why: str) -> None:
        if self._refused.get(path) != why:
            self._refused[path] = why
            self.m.say(f"{path}: not shared ({why})")

    async def _post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """`POST /api/files` as this participant: the status and the JSON answer."""
        m = self.m
        body = {**body, "name": m.name, "email": m.email}
        async with self.http.post(m.link.http + "/api/files", json=body) as response:
            try:
                answer = json.loads(await response.content.read(1024 * 1024))
            except ValueError:
                answer = {}
            return response.status, answer if isinstance(answer, dict) else {}

    async def _put_binary(self, path: str, data: bytes) -> None:
        """Send a whole file made or changed here (`PUT /api/raw`)."""
        m = self.m
        url = f"{m.link.http}/api/raw?path={quote(path)}&name={quote(m.name)}&email={quote(m.email)}"
        async with self.http.put(url, data=data) as response:
            try:
                answer = json.loads(await response.content.read(64 * 1024))
            except ValueError:
                answer = {}
            if response.status != 200:
                error = answer.get("error") if isinstance(answer, dict) else None
                self._refuse(path, joinnames.label(error or f"answer {response.status}"))
                return
        known = path in self.binaries
        self.binaries[path] = bdigest(data)
        m.say(f"{path} {'changed' if known else 'made'} here: sent whole to the session")

    async def _rename(self, old: str, new: str) -> None:
        m = self.m
        status, answer = await self._post({"op": "rename", "path": old, "to": new})
        if status != 200:
            why = joinnames.label(answer.get("error") or f"answer {status}")
            m.say(f"{old} → {new}: the session refused the rename ({why}); moved back")
            try:
                await asyncio.to_thread(safefs.rename_file, m.folder, new, old)
            except OSError as exc:
                m.say(f"{new}: cannot be moved back ({exc.strerror or exc}); {old} is written again")
                m.disk.changed(old)
            return
        for moved in answer.get("moved") or []:
            src, dst = moved.get("from"), moved.get("path")
            if isinstance(src, str) and isinstance(dst, str) and src in m.files and dst not in m.files:
                await self._move(joinnames.relative_path(src), joinnames.relative_path(dst))
        m.say(f"{old} renamed here to {new}: renamed in the session")

    async def _delete(self, path: str) -> None:
        m = self.m
        status, answer = await self._post({"op": "delete", "path": path})
        if status != 200:
            why = joinnames.label(answer.get("error") or f"answer {status}")
            m.say(f"{path}: the session refused the delete ({why}); it is written here again")
            if path in m.disk.files:
                m.disk.changed(path)
            return
        await m.disk.untrack(path)
        m.edited_here.discard(path)
        if path in m.files:
            await m.close_link(path)
        m.say(f"{path} deleted here: deleted in the session")

    async def _create(self, path: str, kind: str) -> None:
        m = self.m
        status, answer = await self._post({"op": "create", "path": path, "kind": kind})
        got = answer.get("path")
        if status != 200 or not isinstance(got, str):
            self._refuse(path, joinnames.label(answer.get("error") or f"answer {status}"))
            return
        got = joinnames.relative_path(got)
        if got != path:  # the name was taken meanwhile: ours is kept under the session's new name
            try:
                await asyncio.to_thread(safefs.rename_file, m.folder, path, got)
            except OSError as exc:
                m.say(f"{path}: created in the session as {got}, but not renamed here ({exc.strerror or exc})")
                return
            m.say(f"{path} was taken in the session: yours is shared as {got}")
        self._creating.add(got)
        await self.follow_session()


def _read(folder: Path, rel: str) -> bytes | None:
    """(thread) The bytes of `rel` here, or None (gone, a link, not a regular file)."""
    try:
        return safefs.read_file(folder, rel)
    except OSError:
        return None


def _exists(folder: Path, rel: str) -> bool:
    """(thread) Whether `rel` is there (a link or a path through one counts as not)."""
    try:
        return safefs.lstat(folder, rel) is not None
    except OSError:
        return False


def _kind_of(path: str) -> str:
    return "notebook" if path.lower().endswith(".ipynb") else "text"
