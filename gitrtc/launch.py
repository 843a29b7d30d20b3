"""Starting a session: checks, the repository lock, resume, and `session.json`.

`.git/rtc/lock` is held (flock) for as long as a session process lives, so "a session
is already running" is decided by the kernel, not by a file that a crash can leave
behind; `session.json` is informational (URLs, tokens, pid) and a stale one is replaced.
"""

from __future__ import annotations

import asyncio
import fcntl
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO

from . import git, safefs
from .documents import open_codec
from .errors import NotShareableError, SessionRunningError, StoreError, UnsafePathError
from .limits import DEFAULT, Limits
from .manifest import FileEntry, Manifest
from .session import Session, store_path
from .sessionfile import read_session_file, rtc_dir
from .store import Store


@dataclass(slots=True)
class Plan:
    """What `rtc start` was asked for."""

    cwd: Path
    paths: list[str]
    persistent: bool = False
    fresh: bool = False
    limits: Limits = DEFAULT
    kernels: bool = False  # participants may run notebooks' code on this machine


@dataclass(slots=True)
class Launch:
    """A prepared (started) session plus the lock that proves it is the only one.

    `async with launch:` owns both: on the way out, however it is left, the session is
    closed (background tasks stopped, store closed), an ended session's store removed,
    and only then the lock released (so no new `rtc start` sees a half-removed store).
    """

    session: Session
    lock: IO[str]
    notes: list[str] = field(default_factory=list)

    async def __aenter__(self) -> Session:
        return self.session

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.session.close()
            result = self.session.result
            if result is not None and result.ended:
                shutil.rmtree(self.session.store.path.parent, ignore_errors=True)
        finally:
            self.lock.close()


def acquire_lock(gitdir: Path) -> IO[str]:
    """Take the repository's session lock, or raise `SessionRunningError`."""
    for folder in (rtc_dir(gitdir), rtc_dir(gitdir) / "sessions"):
        safefs.private_dir(folder)  # owner-only, whatever the umask: the stores hold the tokens
    safefs.private_file(rtc_dir(gitdir) / "lock")
    handle = open(rtc_dir(gitdir) / "lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        url = ""
        info = read_session_file(gitdir)
        if info:
            url = f" at {info.get('url', '').split('#')[0]} (pid {info.get('pid')})"
        raise SessionRunningError(
            f"a session is already running in this repository{url}: use rtc status or rtc stop"
        ) from None
    return handle


def unfinished_sessions(gitdir: Path) -> list[Path]:
    """Stores of sessions that did not end (newest first)."""
    root = rtc_dir(gitdir) / "sessions"
    if not root.is_dir():
        return []
    stores = [p / "store.sqlite" for p in root.iterdir() if (p / "store.sqlite").is_file()]
    return sorted(stores, key=lambda p: p.stat().st_mtime, reverse=True)


async def prepare(plan: Plan) -> Launch:
    """Check everything, take the lock, and create or resume the session."""
    repo = await asyncio.to_thread(git.open_repo, plan.cwd)
    info = await asyncio.to_thread(git.repo_info, repo)
    owner, _email = git.owner_identity(repo)
    lock = acquire_lock(info.gitdir)
    try:
        launch = await _prepare_locked(plan, info, lock)
    except BaseException:
        lock.close()
        raise
    launch.session.kernels.enabled = plan.kernels
    launch.session.kernels.owner = owner
    if plan.kernels and launch.session.resumed:
        launch.notes.append("kernels do not survive a restart: their state is gone, run the cells again")
    return launch


async def _prepare_locked(plan: Plan, info: git.RepoInfo, lock: IO[str]) -> Launch:
    notes: list[str] = []
    existing = unfinished_sessions(info.gitdir)
    if existing and not plan.fresh:
        store = Store(existing[0], plan.limits)
        await store.open()
        try:
            manifest = Manifest.from_meta(await store.get_meta())
        except (KeyError, TypeError, ValueError) as exc:
            await store.close()
            raise StoreError(
                f"the unfinished session in {existing[0].parent} is unreadable ({exc}): "
                "move that folder away or start with --fresh"
            ) from exc
        if manifest.branch != info.branch:
            await store.close()
            raise SessionRunningError(
                f"an unfinished session of branch {manifest.branch.removeprefix('refs/heads/')} "
                "exists: switch back to that branch to resume it, or start with --fresh"
            )
        notes.append(f"resumed unfinished session {manifest.session}")
        if plan.paths:
            notes.append("resuming keeps the files of the unfinished session; the paths given were ignored")
        # the session's base is where it started, not wherever the branch is now
        session = Session(replace(info, head=manifest.base), manifest, store, resumed=True, limits=plan.limits)
        await _start(session)
        return Launch(session, lock, notes)
    for old in existing:
        notes.extend(await discard_session(old))
    paths = await asyncio.to_thread(git.resolve_paths, info, plan.cwd, plan.paths)
    manifest = Manifest.new(info.branch, info.head, plan.persistent, time.time())
    store = Store(store_path(info.gitdir, manifest.session), plan.limits)
    await store.open()
    for path in paths:
        try:
            data = await asyncio.to_thread(_read_shareable, info, path)
            codec = open_codec(path, data, plan.limits.max_file_bytes)
        except NotShareableError as exc:
            manifest.skipped.append((path, str(exc)))
            continue
        entry = FileEntry(path, codec.kind, manifest.room_for(path))
        manifest.files.append(entry)
        manifest.warnings.extend((path, w) for w in codec.warnings)
        await store.add_file(entry.room, path, entry.kind, data)
    await store.set_meta(manifest.to_meta())
    session = Session(info, manifest, store, resumed=False, limits=plan.limits)
    await _start(session)
    return Launch(session, lock, notes)


async def _start(session: Session) -> None:
    """Start `session`; if that fails, close what it started (the store) and re-raise."""
    try:
        await session.start()
    except BaseException:
        await session.close()
        raise


def _read_shareable(info: git.RepoInfo, path: str) -> bytes:
    """The file's bytes, read without following a symbolic link (`safefs`)."""
    try:
        return safefs.read_file(info.workdir, path)
    except UnsafePathError as exc:
        raise NotShareableError("a symbolic link (links are not shared)" if exc.link
                                else "in a folder that is a symbolic link (not followed)") from exc
    except OSError as exc:
        raise NotShareableError(f"cannot be read: {exc.strerror}") from exc


async def discard_session(store_file: Path) -> list[str]:
    """Save an unfinished session's result as a patch next to it, then drop its store."""
    folder = store_file.parent
    patch = folder.parent.parent / f"unfinished-{folder.name}.patch"
    notes = []
    problems: list[str] = []
    try:
        from .patch import write_patch  # local import: only needed when discarding

        written = await write_patch(store_file, patch, problems)
        if written:
            notes.append(f"the discarded session's changes are saved in {patch}")
    except StoreError as exc:
        notes.append(f"the discarded session could not be read ({exc}); its folder is kept")
        return notes
    if problems:  # documents the patch cannot hold: their store is kept, out of the way of resumes
        kept = folder.parent.parent / f"unfinished-{folder.name}"
        await asyncio.to_thread(shutil.move, folder, kept)
        notes.extend(problems)
        notes.append(f"the discarded session's store is kept in {kept}")
        return notes
    shutil.rmtree(folder, ignore_errors=False)
    return notes
