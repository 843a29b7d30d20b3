"""What changed in a shared folder, looked at on a disk thread (`look`), and which of
`rtc start`'s paths are folders (`shared_folders`).

`look` turns a folder watcher's batch of changed paths into facts: new files git would
list (tracked, or untracked and not ignored, by pygit2's reading of git's own ignore
rules) with their bytes and kind, files not shareable as documents (links, binaries,
non-UTF-8, too large) and why, whole files new or changed, shared files gone. The file
set (`fileset.py`) decides what the facts mean for the session.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from . import git, safefs
from .binaries import bdigest, is_binary
from .errors import NotShareableError, UnsafePathError
from .filenames import inside
from .plugins.loader import open_codec


@dataclass(slots=True)
class Found:
    """(disk thread) What a look at changed paths found: files to share, files gone."""

    new: dict[str, tuple[bytes, str, list[str]]] = field(default_factory=dict)  # path -> (bytes, kind, warnings)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it is not shared
    gone: list[str] = field(default_factory=list)  # shared paths no longer regular files on disk
    touched: list[str] = field(default_factory=list)  # shared files that changed (content or stat)
    binaries: dict[str, str] = field(default_factory=dict)  # whole files new or changed: path -> digest
    binaries_gone: list[str] = field(default_factory=list)


def shared_folders(info: git.RepoInfo, cwd: Path, paths: list[str]) -> list[str]:
    """The repository-relative folders among the paths given to `rtc start` ("" for the
    whole work tree; no path = the current folder); files given one by one are not folders."""
    out = []
    for raw in paths or ["."]:
        real = (Path(raw) if Path(raw).is_absolute() else cwd / raw).resolve()
        if real.is_dir() and (real == info.workdir or info.workdir in real.parents):
            rel = real.relative_to(info.workdir).as_posix()
            out.append("" if rel == "." else rel)
    return sorted(set(out))


class GitView:
    """(disk thread) The repository's index and ignore rules as `look` asks them, the
    index read again only when `.git/index` changed (its stat): a batch of changes in a
    100,000-file tree no longer reads a 10 MB index. Used under the file set's lock."""

    def __init__(self, gitdir: Path) -> None:
        self.gitdir = gitdir
        self.loads = 0  # how many times the index was read (tests)
        self._key: tuple[int, int, int] | None = None
        self._repo: pygit2.Repository | None = None
        self._index: pygit2.Index | None = None

    def get(self) -> tuple[pygit2.Repository, pygit2.Index]:
        """The repository and its index as they are now."""
        try:
            st = os.stat(self.gitdir / "index")
            key: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            key = None
        if self._repo is None or self._index is None or key != self._key or key is None:
            self._repo = pygit2.Repository(str(self.gitdir))
            self._index = self._repo.index
            self._key = key
            self.loads += 1
        return self._repo, self._index


def look(
    workdir: Path,
    git_view: GitView,
    folders: list[str],
    changed: set[str],
    shared: AbstractSet[str],
    max_bytes: int,
    binaries: frozenset[str] = frozenset(),
) -> Found:
    """(disk thread) Look at the changed paths (absolute): which new files inside the
    shared folders git would list, and which shared files are gone."""
    repo, tracked = git_view.get()
    found = Found()
    gone: set[str] = set()

    def shareable(rel: str) -> bool:
        return rel in tracked or not repo.path_is_ignored(rel)

    def consider(rel: str, st: os.stat_result) -> None:
        if rel in binaries and stat.S_ISREG(st.st_mode):
            try:
                found.binaries[rel] = bdigest(safefs.read_file(workdir, rel))
            except OSError:
                pass
            return
        if rel in shared or rel in found.new or rel in found.skipped or not shareable(rel):
            return
        if stat.S_ISLNK(st.st_mode):
            found.skipped[rel] = "a symbolic link (links are not shared)"
        elif not stat.S_ISREG(st.st_mode):
            return
        elif st.st_size > max_bytes:
            found.skipped[rel] = f"{st.st_size} bytes is over the {max_bytes}-byte limit for shared files"
        else:
            try:
                data = safefs.read_file(workdir, rel)
                codec = open_codec(rel, data, max_bytes)
            except NotShareableError as exc:
                found.skipped[rel] = str(exc).removeprefix(f"{rel}: ")
                if is_binary(data, max_bytes):
                    found.binaries[rel] = bdigest(data)  # shared as a whole file
            except OSError:
                return  # gone again, or became a link: the next event says what it is
            else:
                found.new[rel] = (data, codec.kind, list(codec.warnings))

    for absolute in changed:
        try:
            rel = Path(absolute).relative_to(workdir).as_posix()
        except ValueError:
            continue
        if rel in shared:
            found.touched.append(rel)
        if rel == "." or ".git" in rel.split("/") or not inside(rel, folders):
            continue
        try:
            st = safefs.lstat(workdir, rel)
        except UnsafePathError:
            continue  # under a folder that is a link: nothing new is shared there
        if st is None or not stat.S_ISREG(st.st_mode):
            gone_whole = [p for p in binaries if p == rel or p.startswith(rel + "/")]
            for p in gone_whole:
                there = None
                try:
                    there = safefs.lstat(workdir, p)
                except UnsafePathError:
                    pass
                if there is None or not stat.S_ISREG(there.st_mode):
                    found.binaries_gone.append(p)
        if st is None or not stat.S_ISREG(st.st_mode):  # gone, or a folder: which shared files went?
            for p in shared:
                if p == rel or p.startswith(rel + "/"):
                    found.touched.append(p)  # the write-back's own checks see links and deletions too
                    try:
                        there = safefs.lstat(workdir, p)
                    except UnsafePathError:
                        continue  # behind a folder that is a link now: frozen, not gone (see disk.py)
                    if there is None or (not stat.S_ISREG(there.st_mode) and not stat.S_ISLNK(there.st_mode)):
                        gone.add(p)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            for top, dirs, files in os.walk(workdir / rel):
                dirs[:] = [d for d in dirs if d != ".git"]
                base = Path(top).relative_to(workdir).as_posix()
                for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
                    child = f"{base}/{name}"
                    try:
                        child_st = os.lstat(os.path.join(top, name))
                    except OSError:
                        continue
                    consider(child, child_st)
        else:
            consider(rel, st)
    found.gone = sorted(p for p in gone if p not in found.new)
    return found
