"""The ending of a session: commit now, pause, or end (stop edits, commit, say goodbye).

One lock orders them; each first settles the disk (last saves in, every file written)
so the commit holds exactly what everyone sees. A commit that fails leaves the session
live and resumable; `EndResult` says what happened.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from pycrdt import Map

from . import git
from .binaries import Binaries, bdigest
from .bridge import DiskBridge, save_aside
from .conflicts import attach, merge_later, open_conflicts
from .disk import digest
from .errors import CommitError, DocumentError, RestartingError, SessionEndedError, StoreError
from .joinformat import session_merge
from .manifest import Manifest
from .origins import DiskMerge, ServerEdit
from .registry import RoomRegistry
from .sessionfile import rtc_dir
from .store import Store
from .supervisor import Supervisor

#: The background task that watches the disk (stopped while a session ends or pauses).
WATCH = "watch"
#: The store's meta key of the moved-branch versions already merged (`Ending._absorbed`).
ABSORBED_KEY = "merge.absorbed"
PRELOAD = "preload"

OnCommit = Callable[["EndResult"], Awaitable[None]]


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


class Ending:
    """Commits and the end of the session; owns the session's state and commit base."""

    def __init__(
        self,
        info: git.RepoInfo,
        manifest: Manifest,
        store: Store,
        registry: RoomRegistry,
        bridge: DiskBridge,
        tasks: Supervisor,
        event: Callable[[str], None],
    ) -> None:
        #: The repository, with `head` the session's base (it moves with each `commit_now`).
        self.info = info
        self.manifest = manifest
        self.store = store
        self.registry = registry
        self.bridge = bridge
        self.tasks = tasks
        self._event = event
        self.state = "live"  # "live" | "ending" | "ended"
        self.result: EndResult | None = None
        self.ended = asyncio.Event()
        self._lock = asyncio.Lock()
        #: Path → why, for documents the last `changed_files` could not render (never
        #: committed as such; see `_held_back`).
        self.unwritable: dict[str, str] = {}
        #: Awaited first when the session ends or pauses (the session stops its kernels
        #: there, so their last outputs are in the commit).
        self.before_stop: Callable[[], Awaitable[None]] | None = None
        #: Path → which moved-branch version of a notebook is already merged into its
        #: document (`_absorb_moved_branch`: base commit and a digest of the tip's bytes),
        #: so that a refused commit, or a resumed session, does not merge it twice (a
        #: second merge would bring back conflicts people resolved). Kept in the store
        #: under `ABSORBED_KEY`; None until read from there.
        self._absorbed: dict[str, str] | None = None
        #: The session's whole-file shares, committed from the disk (`binaries.py`).
        self.binaries: Binaries | None = None

    async def save_manifest(self, commit_only: bool = False) -> None:
        """Persist the manifest (invites, port, baseline) in the store; `commit_only`:
        just the base and baseline a commit moved."""
        await self.store.set_meta(self.manifest.to_meta(commit_only))

    def _accepting(self, accepting: bool) -> None:
        for room in self.registry.rooms.values():
            room.accepting = accepting

    async def end(
        self,
        message: str | None,
        commit: bool = True,
        onto_branch: str | None = None,
        on_commit: OnCommit | None = None,
        take_current: bool = False,
    ) -> EndResult:
        """Stop edits, flush, commit once, tell every client, close every connection.

        While notebook merge conflicts are open the commit is refused (the session stays
        live, like git with unmerged paths) unless `take_current`: then the documents are
        committed as they are and the commit message lists the conflicts.

        With `onto_branch`, the commit goes on a new branch of that name made at the
        session's base (the way out when the owner's branch moved in a conflicting way).
        `on_commit` is awaited as soon as the commit is on the branch, before the
        bookkeeping and the goodbyes (`rtc stop` answers then).
        """
        async with self._lock:
            if self.result is not None and self.result.ended:
                return self.result
            self.state = "ending"
            await self.tasks.stop(WATCH, PRELOAD)
            if self.before_stop is not None:
                await self.before_stop()
            self._accepting(False)
            await self.bridge.settle()
            result = await self._finish(message, commit, onto_branch, on_commit, take_current)
            self.result = result
            if not result.ended:
                self.state = "live"
                self.tasks.start(WATCH, self.bridge.watch())
                self._accepting(True)
                self._event(result.message)
                return result
            self.state = "ended"
            await self._announce_end(result)
            self.ended.set()
            return result

    async def _finish(
        self,
        message: str | None,
        commit: bool,
        onto_branch: str | None = None,
        on_commit: OnCommit | None = None,
        take_current: bool = False,
    ) -> EndResult:
        if not commit:
            changes = await self.changed_files()
            return EndResult(None, self.info.branch_name, tuple(sorted(changes)), (), "ended without a commit", True)
        return await self._commit(message, onto_branch, on_commit, final=True, take_current=take_current)

    async def open_conflicts(self) -> dict[str, list[dict[str, Any]]]:
        """Path → the open merge conflicts of each shared notebook (rooms with stored
        edits are loaded first: conflicts live in the documents)."""
        out: dict[str, list[dict[str, Any]]] = {}
        notebooks = [e for e in self.manifest.files if e.kind == "notebook"]
        if not notebooks:  # no trip to the store's thread (rtc stop of text files waits for it)
            return out
        touched = await self.store.rooms_with_updates()
        for entry in notebooks:
            if entry.room not in self.registry.rooms and entry.room not in touched:
                continue
            room = await self.registry.room(entry.room)
            found = open_conflicts(room.doc)
            if found:
                out[entry.path] = found
        return out

    async def _absorb_moved_branch(self) -> dict[str, bytes]:
        """If the branch moved during the session, merge each notebook the moved commits
        changed into its document as a diverged version (nbdime's merge, conflicts
        recorded for the people in the session to resolve). Path → the branch's bytes
        taken in (`git.commit_session` does not merge those again)."""
        notebooks = [e for e in self.manifest.files if e.kind == "notebook"]
        if not notebooks:
            return {}
        if self._absorbed is None:
            stored = (await self.store.get_meta()).get(ABSORBED_KEY)
            self._absorbed = {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}
        absorbed = self._absorbed
        tips = await asyncio.to_thread(_moved_versions, self.info, [e.path for e in notebooks])
        mark = {path: f"{self.info.head}:{digest(tip)}" for path, (_base, tip) in tips.items()}
        for entry in notebooks:
            if entry.path not in tips or absorbed.get(entry.path) == mark[entry.path]:
                continue
            base, tip = tips[entry.path]
            room = await self.registry.room(entry.room)
            codec = self.registry.codecs[entry.room]
            attach(codec, f"branch {self.info.branch_name}")
            origin = DiskMerge(entry.path)
            edit = session_merge(room, codec, origin, self.registry.originals[entry.room])
            try:
                await merge_later(codec, room.doc, tip, origin, base, edit)
            except DocumentError as exc:
                self._event(f"{entry.path}: the branch's new version cannot be merged into the session: {exc}")
                continue
            absorbed[entry.path] = mark[entry.path]
            await self.store.flush()  # the merge is in the log before the store says it is
            await self.store.set_meta({ABSORBED_KEY: absorbed})
            self._event(f"{entry.path}: {self.info.branch_name} moved; its changes were merged into the session")
        return {p: tips[p][1] for p in tips if absorbed.get(p) == mark[p]}

    async def commit_now(self, message: str | None, take_current: bool = False) -> EndResult:
        """Record the current state as one commit and keep the session going (`rtc commit`).

        `ended` in the result means "committed (or nothing to commit)"; co-authors are
        those who edited since the previous commit.
        """
        async with self._lock:
            if self.state != "live":
                raise SessionEndedError("the session is ending")
            await self.bridge.settle()
            result = await self._commit(message, None, take_current=take_current)
            self._event(result.message)
            return result

    async def pause(self) -> EndResult:
        """Stop serving a persistent session without ending it: flush, close connections."""
        async with self._lock:
            await self.tasks.stop(WATCH, PRELOAD)
            if self.before_stop is not None:
                await self.before_stop()
            await self.bridge.settle()
            await asyncio.gather(
                *(
                    r.close_all(RestartingError.close_code, "server restarting: reconnect")
                    for r in self.registry.rooms.values()
                )
            )
            return EndResult(
                None,
                self.info.branch_name,
                (),
                (),
                "persistent session paused: rtc start resumes it with the same links, rtc stop ends it",
                False,
                paused=True,
            )

    async def _commit(
        self,
        message: str | None,
        onto_branch: str | None,
        on_commit: OnCommit | None = None,
        final: bool = False,
        take_current: bool = False,
    ) -> EndResult:
        absorbed = await self._absorb_moved_branch() if onto_branch is None else {}
        conflicts = await self.open_conflicts()
        if conflicts and not take_current:
            return EndResult(None, onto_branch or self.info.branch_name, (), (), conflicts_refusal(conflicts), False)
        changes = await self.changed_files()
        if self.binaries is not None:
            changes.update(await self.binaries.changed())  # whole files (images, data) as on disk
        links = await self.bridge.disk.links()  # shared files that became symbolic links: committed as links
        kept = await self._keep_linked({p: changes.pop(p) for p in links if p in changes})
        kept += await self._held_back(final)
        info = self.info
        branch = onto_branch or info.branch_name
        live = {f.path for f in self.manifest.files}
        removed = [p for p in self.manifest.removed if p not in live]
        if not changes and not links and not removed:
            return EndResult(None, branch, (), (), self._nothing_changed() + kept, True)
        text = message or default_message(sorted({*changes, *links, *removed}))
        if conflicts:
            text = text.rstrip("\n") + "\n\n" + conflicts_body(conflicts)
        credits = await self.store.credits()
        try:
            repo = git.open_repo(info.workdir)
            if onto_branch:
                ref = await asyncio.to_thread(git.create_branch, repo, onto_branch, info.head)
                info = replace(info, branch=ref)
            done = await asyncio.to_thread(
                git.commit_session,
                repo,
                info,
                changes,
                text,
                credits,
                onto_branch is None,
                links,
                absorbed,
                removed=removed,
            )
        except CommitError as exc:
            return EndResult(None, branch, tuple(sorted(changes)), (), str(exc), False)
        if done.commit is None:
            return EndResult(None, branch, (), (), "nothing changed against the branch: no commit" + kept, True)
        result = EndResult(
            done.commit, branch, done.files, done.coauthors, f"1 commit on {branch} {done.commit[:7]}{kept}", True
        )
        if on_commit is not None:
            await on_commit(result)
        if onto_branch is None:
            await self._committed(done.commit, changes)
        return result

    def _nothing_changed(self) -> str:
        """Why there is no commit: nothing changed since the session's last `rtc commit`
        (it holds everything), or at all."""
        last = self.manifest.last_commit
        if last:
            return f"nothing changed since commit {last[:7]}: no new commit"
        return "nothing changed: no commit"

    async def _held_back(self, final: bool) -> str:
        """Report the documents that could not be written (see `changed_files`): the other
        files are committed without them. At the end of the session each one's document is
        kept as a Yjs update under `.git/rtc/unwritable-SESSION/`, so the end is never
        blocked and nothing is lost; mid-session it simply stays in the session."""
        if not self.unwritable:
            return ""
        folder = rtc_dir(self.info.gitdir) / f"unwritable-{self.manifest.session}"
        for path, why in sorted(self.unwritable.items()):
            self._event(why)
            if final:
                room = self.registry.rooms[self.manifest.room_for(path)]
                await asyncio.to_thread(save_aside, folder / f"{path}.yjs", room.doc.get_update())
        paths = ", ".join(sorted(self.unwritable))
        if final:
            return (
                f"; not committed: {paths} (cannot be written: see the events); "
                f"its document is kept in {folder} as a Yjs update"
            )
        return f"; not committed: {paths} (cannot be written: see rtc status); it stays in the session"

    async def _keep_linked(self, versions: dict[str, bytes]) -> str:
        """Save the session's version of files that became symbolic links (the commit
        records the links) under `.git/rtc/linked-SESSION/`; what to add to the message."""
        if not versions:
            return ""
        folder = rtc_dir(self.info.gitdir) / f"linked-{self.manifest.session}"
        for path, data in versions.items():
            await asyncio.to_thread(save_aside, folder / path, data)
            self._event(
                f"{path} is a symbolic link on disk: committed as a link; the session's version "
                f"is kept in {folder / path}"
            )
        became = (
            "1 file became a symbolic link" if len(versions) == 1 else f"{len(versions)} files became symbolic links"
        )
        return f" ({became}: the session's versions are kept in {folder})"

    async def _committed(self, commit: str, changes: dict[str, bytes]) -> None:
        """After a commit on the branch: it is the new base, and its content the new baseline."""
        self.info = replace(self.info, head=commit)
        self.manifest.base = commit
        self.manifest.last_commit = commit
        for path, data in changes.items():
            self.manifest.baseline[self.manifest.room_for(path)] = digest(data)
        for path in self.manifest.binaries.keys() & changes.keys():
            self.manifest.binaries[path] = bdigest(changes[path])
        self.manifest.added = []  # in the commit now: compared with their baseline from here on
        self.manifest.removed = []
        await self.save_manifest(commit_only=True)
        await self.store.clear_credits()

    async def changed_files(self) -> dict[str, bytes]:
        """Path → bytes for every shared file whose document differs from the last commit
        (or, before any, from the file at the start)."""
        touched = await self.store.rooms_with_updates()
        registry = self.registry
        out: dict[str, bytes] = {}
        self.unwritable = {}
        added = set(self.manifest.added)  # files that joined the session: new to the branch
        for entry in self.manifest.files:
            if entry.room not in registry.rooms and entry.room not in touched:
                if entry.room in added:
                    out[entry.path] = registry.originals[entry.room]
                continue
            await registry.room(entry.room)
            try:
                data = registry.render(entry.path)
            except DocumentError as exc:  # reported by the end; the other files are committed
                self.unwritable[entry.path] = str(exc)
                continue
            baseline = self.manifest.baseline.get(entry.room) or digest(registry.originals[entry.room])
            if entry.room in added or digest(data) != baseline:
                out[entry.path] = data
        return out

    async def _announce_end(self, result: EndResult) -> None:
        session_room = self.registry.rooms.get(self.manifest.session_room)
        if session_room is not None:

            def mark() -> None:
                info = session_room.doc.get("session", type=Map)
                info["state"] = "ended"
                info["commit"] = result.commit
                info["branch"] = result.branch
                info["message"] = result.message

            session_room.accepting = True
            try:
                session_room.edit(mark, ServerEdit())
                await self.store.flush()
            except StoreError as exc:
                self._event(str(exc))
            for conn in list(session_room.connections):
                await conn.drain()
        reason = json.dumps({"commit": result.commit, "branch": result.branch})[:120]
        await asyncio.gather(*(r.close_all(SessionEndedError.close_code, reason) for r in self.registry.rooms.values()))


def _moved_versions(info: git.RepoInfo, paths: list[str]) -> dict[str, tuple[bytes, bytes]]:
    """(thread) Path → (base bytes, branch tip bytes) of the paths the branch's new
    commits changed (both versions present)."""
    repo = git.open_repo(info.workdir)
    ref = repo.references.get(info.branch)
    if ref is None or str(ref.target) == info.head:
        return {}
    tip = str(ref.target)
    out = {}
    for path in paths:
        base, ours = git.blob_at(repo, info.head, path), git.blob_at(repo, tip, path)
        if base is not None and ours is not None and base != ours:
            out[path] = (base, ours)
    return out


def conflicts_refusal(conflicts: dict[str, list[dict[str, Any]]]) -> str:
    """The one line `rtc stop`/`rtc commit` answer while merge conflicts are open."""
    count = sum(len(c) for c in conflicts.values())
    where = ", ".join(f"{path} ({len(c)})" for path, c in sorted(conflicts.items()))
    return (
        f"{count} notebook merge conflict{'s are' if count != 1 else ' is'} open in {where}: resolve "
        "them in the browser (keep mine, theirs or both), or rtc stop --take-current to commit as it is"
    )


def conflicts_body(conflicts: dict[str, list[dict[str, Any]]]) -> str:
    """The commit message paragraph listing the conflicts committed unresolved."""
    lines = ["Committed with open merge conflicts (the document's side kept):"]
    for path, found in sorted(conflicts.items()):
        for c in found:
            where = f"cell {c.get('cell')}" if c.get("cell") else "the notebook metadata"
            lines.append(f"- {path}: {c.get('kind')} conflict in {where}, from {c.get('from')}")
    return "\n".join(lines)


def default_message(paths: list[str]) -> str:
    """A commit message for a session ended without `-m`."""
    if len(paths) == 1:
        head = f"Edit {paths[0]} in a live session"
    else:
        head = f"Edit {len(paths)} files in a live session"
    return head + "\n\n" + "\n".join(f"- {p}" for p in paths)
