"""Starting a session: checks, the repository lock, resume, and `session.json`.

`.git/rtc/lock` is held (flock) for as long as a session process lives, so "a session
is already running" is decided by the kernel, not by a file that a crash can leave
behind; `session.json` is informational (URLs, tokens, pid) and a stale one is replaced.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO

from . import git, safefs
from .binaries import bdigest, is_binary
from .errors import NoSessionError, NotShareableError, PathError, SessionRunningError, StoreError, UnsafePathError
from .filescan import shared_folders
from .limits import DEFAULT, Limits
from .manifest import FileEntry, Manifest
from .plugins.loader import open_codec
from .session import Session, store_path
from .sessionfile import read_session_file, rtc_dir
from .store import Store
from .unfinished import unfinished_sessions
from .words import plural, some


@dataclass(slots=True)
class Plan:
    """What `rtc start` was asked for."""

    cwd: Path
    paths: list[str]
    persistent: bool = False
    fresh: bool = False
    limits: Limits = DEFAULT
    kernels: bool = False  # participants may run notebooks' code on this machine
    resume_only: bool = False  # end an unfinished session (`rtc stop` of a paused one): never a new one


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

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.session.close()
            result = self.session.result
            # ended, or new and never served (a start that failed): nothing to resume
            if (result is not None and result.ended) or (not self.session.resumed and not served(self.session)):
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


def served(session: Session) -> bool:
    """Whether the session ever served (the runner notes its port then): one that never did
    has no one's work in it."""
    return session.manifest.port is not None


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
    existing = [Path(p) for p in unfinished_sessions(info.gitdir)]
    while existing and not plan.fresh:
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
        if manifest.port is None and not await store.rooms_with_updates():
            await store.close()  # a start that never served (killed before it could): nothing to resume
            shutil.rmtree(existing.pop(0).parent, ignore_errors=True)
            continue
        if manifest.branch != info.branch:
            await store.close()
            raise SessionRunningError(
                f"an unfinished session of branch {manifest.branch.removeprefix('refs/heads/')} "
                "exists: switch back to that branch to resume it, or start with --fresh"
            )
        files = [f.path for f in manifest.files]
        notes.append(
            f"resumed {'paused' if manifest.persistent else 'unfinished'} session {manifest.session}, "
            f"serving its {plural(len(files), 'file')}: {some(files)}"
        )
        if plan.paths and not await _same_files(plan, info, manifest):
            notes.append(
                f"not the paths given ({' '.join(plan.paths)}): a session keeps its files until it "
                "ends; rtc stop ends it with its commit, rtc start --fresh discards it (its changes "
                "saved as a patch)"
            )
        # the session's base is where it started, not wherever the branch is now
        session = Session(replace(info, head=manifest.base), manifest, store, resumed=True, limits=plan.limits)
        await _start(session)
        return Launch(session, lock, notes)
    if plan.resume_only:
        raise NoSessionError("no unfinished session in this repository: nothing to end")
    for old in existing:
        notes.extend(await discard_session(old))
    unchanged: set[str] = set()  # the listed files holding their blob at HEAD (git's stat comparison)
    paths = await asyncio.to_thread(git.resolve_paths, info, plan.cwd, plan.paths, unchanged)
    manifest = Manifest.new(info.branch, info.head, plan.persistent, time.time())
    manifest.folders = await asyncio.to_thread(shared_folders, info, plan.cwd, plan.paths)
    store = Store(store_path(info.gitdir, manifest.session), plan.limits)
    try:
        session = await _new_session(plan, info, manifest, store, paths, unchanged)
    except BaseException:  # a start that failed leaves nothing a later start would resume
        shutil.rmtree(store.path.parent, ignore_errors=True)
        raise
    return Launch(session, lock, notes)


async def _same_files(plan: Plan, info: git.RepoInfo, manifest: Manifest) -> bool:
    """Whether the paths given to `rtc start` stand for the files the resumed session serves."""
    try:
        paths = await asyncio.to_thread(git.resolve_paths, info, plan.cwd, plan.paths)
    except PathError:
        return False
    return set(paths) == {f.path for f in manifest.files} | {p for p, _ in manifest.skipped}


async def _new_session(
    plan: Plan, info: git.RepoInfo, manifest: Manifest, store: Store, paths: list[str], unchanged: set[str]
) -> Session:
    """Fill a new session's store with `paths` and start the session (which then owns the
    store; before that, a failure closes it here).

    Up to `Limits.read_at_start` files, each is read now and shared by its content. In a
    larger tree, the files that hold their blob at HEAD (git's stat comparison with the
    index, `git.resolve_paths`) are listed by name only (`listed_by_name`): their
    bytes at the start are HEAD's, read when the room is first opened
    (`RoomRegistry.take_original`). Only the others (untracked, changed, staged) and those
    named like binaries (shared whole) are read now: a clean 100,000-file checkout's start
    reads none of its text files."""
    await store.open()
    try:
        read, named = paths, list[str]()
        if len(paths) > plan.limits.read_at_start:
            read, named = [], []
            for p in paths:  # one pass: 100,000 paths
                (named if p in unchanged and not p.lower().endswith(BINARY_SUFFIXES) else read).append(p)
        # one trip to a thread for all the files and one store transaction: a trip and a
        # commit per file made a 1,000-file start take seconds
        opened = await asyncio.to_thread(_open_all, info, read, plan.limits.max_file_bytes)
        rows: list[tuple[str, str, str, bytes | None]] = []
        started: list[tuple[str, str, bytes, os.stat_result | None]] = []
        for path, data, kind, warnings, st in opened:
            if data is None:
                manifest.skipped.append((path, kind))
                if warnings:  # a binary: shared as a whole file (`binaries.py`)
                    manifest.binaries[path] = warnings[0]
                continue
            entry = FileEntry(path, kind, manifest.room_for(path))
            manifest.files.append(entry)
            if warnings:
                manifest.warnings.extend((path, w) for w in warnings)
            rows.append((entry.room, path, entry.kind, data))
            started.append((entry.room, path, data, st))
        if named:
            listed = await asyncio.to_thread(listed_by_name, manifest, named)
            manifest.files.extend(listed)
            rows.extend((f.room, f.path, f.kind, None) for f in listed)
        await store.add_files(rows)
        await store.set_meta(manifest.to_meta())
    except BaseException:
        await store.close()
        raise
    session = Session(info, manifest, store, resumed=False, limits=plan.limits)
    await _start(session, started)
    return session


#: Suffixes of files a large tree's start reads (to share them whole): named as binaries.
BINARY_SUFFIXES = tuple(
    ".png .jpg .jpeg .gif .webp .bmp .ico .tif .tiff .pdf .zip .gz .tgz .bz2 .xz .7z .tar .jar .whl .so .o .a "
    ".dylib .dll .exe .bin .npy .npz .h5 .hdf5 .pkl .pickle .parquet .feather .mp3 .mp4 .wav .ogg .mov .avi "
    ".woff .woff2 .ttf .otf .eot .sqlite .db .class .pyc".split()
)


def listed_by_name(manifest: Manifest, paths: list[str]) -> list[FileEntry]:
    """(thread) Shared files of a large tree, unread: a notebook by its `.ipynb` name, else
    text; the first opening reads the file and settles its kind (or finds it not
    shareable: then it leaves the session as skipped, see `FileSet.not_shareable`)."""
    # a new session: every room is its path's hash room (`Manifest.room_for`, inlined: 100,000 calls)
    sha, prefix = hashlib.sha256, f"{manifest.epoch}."
    return [
        FileEntry(p, "notebook" if p.lower().endswith(".ipynb") else "text", prefix + sha(p.encode()).hexdigest()[:16])
        for p in paths
    ]


async def _start(session: Session, files: list[tuple[str, str, bytes, os.stat_result | None]] | None = None) -> None:
    """Start `session`; if that fails, close what it started (the store) and re-raise."""
    try:
        await session.start(files)
    except BaseException:
        await session.close()
        raise


def _open_all(
    info: git.RepoInfo, paths: list[str], max_bytes: int
) -> list[tuple[str, bytes | None, str, list[str], os.stat_result | None]]:
    """(thread) (path, bytes, kind, warnings, stat as read) of each file, or (path, None,
    why, [], None) for one that cannot be shared as a document ([digest] for a binary,
    shared whole)."""
    out: list[tuple[str, bytes | None, str, list[str], os.stat_result | None]] = []
    stats: list[os.stat_result | None] = []
    read_all = safefs.read_many(info.workdir, paths, stats)
    for path, read, st in zip(paths, read_all, stats, strict=True):
        data = None
        try:
            data = _shareable(read)
            codec = open_codec(path, data, max_bytes)
        except NotShareableError as exc:
            whole = [bdigest(data)] if data is not None and is_binary(data, max_bytes) else []
            out.append((path, None, str(exc), whole, None))
            continue
        out.append((path, data, codec.kind, list(codec.warnings), st))
    return out


def _shareable(read: bytes | OSError) -> bytes:
    """A file's bytes from `safefs.read_many`, or `NotShareableError` saying why not."""
    if isinstance(read, bytes):
        return read
    if isinstance(read, UnsafePathError):
        why = "a symbolic link (links are not shared)"
        if not read.link:
            why = "in a folder that is a symbolic link (not followed)"
        raise NotShareableError(why) from read
    raise NotShareableError(f"cannot be read: {read.strerror}") from read


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
