"""Reading and writing files under a folder without ever following a symbolic link out of it.

Every shared path is opened one component at a time, relative to the folder above it
(`os.open(name, dir_fd=…)` with `O_NOFOLLOW`), so a file or folder swapped for a
symbolic link at any moment (an editor, `git merge`, a hostile process) is refused at
the moment of use, not at some earlier check. Writes are a temporary file and a rename
inside the same folder descriptor. A path that is, or passes through, a link raises
`UnsafePathError` (an `OSError` too, so code that reports failed reads and writes refuses
it as well); its `link` is True when the path itself is the link.

The private helpers at the end make gitrtc's own files under `.git/rtc` owner-only
(0700 folders, 0600 files) whatever the umask.

The API (small on purpose; `root` is a trusted folder, `rel` a `/`-separated path in it):
`read_file`, `lstat`, `lstat_all`, `readlink`, `replace_file`, `private_dir`,
`private_file`, `write_private`; for the live file set `create_file`, `remove_file`,
`rename_file`.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Sequence

from .errors import UnsafePathError

StrPath = str | os.PathLike[str]

_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_DIR = _ROOT | os.O_NOFOLLOW
#: O_NONBLOCK: a FIFO put in a shared file's place must not hang the reading thread.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _parts(rel: str) -> list[str]:
    """The components of a plain relative path; `UnsafePathError` for `..`, `.`, `//` or `/x`."""
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise UnsafePathError(f"{rel!r} is not a plain relative path: refused")
    return parts


def _linked(rel: str, parts: Sequence[str], index: int) -> UnsafePathError:
    """The error for `rel` whose component `index` is a symbolic link."""
    if index == len(parts) - 1:
        exc = UnsafePathError(f"{rel} is a symbolic link now (not followed)")
        exc.link = True
    else:
        folder = "/".join(parts[: index + 1])
        exc = UnsafePathError(f"{rel} is in {folder}, a symbolic link now (not followed)")
    return exc


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_parent(root: StrPath, rel: str, make: int | None = None) -> tuple[int, str, list[str]]:
    """(descriptor of the folder holding `rel`, its last name, all names); no links
    followed. With `make`, missing folders are made with that mode."""
    parts = _parts(rel)
    fd = os.open(root, _ROOT)
    try:
        for index, name in enumerate(parts[:-1]):
            try:
                try:
                    child = os.open(name, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if make is None:
                        raise
                    try:
                        os.mkdir(name, make, dir_fd=fd)  # never follows a link in the last component
                    except FileExistsError:
                        pass  # made meanwhile: opened (without following) just below
                    child = os.open(name, _DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_link(fd, name):
                    raise _linked(rel, parts, index) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1], parts


def read_file(root: StrPath, rel: str) -> bytes:
    """The bytes of regular file `rel` under `root`, read without following any link."""
    folder, _name, _parts = _open_parent(root, rel)
    try:
        return _read_in(folder, rel)
    finally:
        os.close(folder)


def read_many(
    root: StrPath, rels: Sequence[str], stats: list[os.stat_result | None] | None = None
) -> list[bytes | OSError]:
    """`read_file` of many paths (a start's files): the folder of consecutive paths in
    the same folder is opened once; each result is the bytes or the `OSError` (an
    `UnsafePathError` for a link) that `read_file` would raise. With `stats`, each
    file's own stat as it was read is appended there (None for an error), so a start
    need not stat its files a second time."""
    out: list[bytes | OSError] = []
    folder: int | None = None
    folder_key: str | None = None
    try:
        for rel in rels:
            key = rel.rpartition("/")[0]
            if key != folder_key or folder is None:
                if folder is not None:
                    os.close(folder)
                    folder = None
                folder_key = key
                try:
                    folder, _name, _ = _open_parent(root, rel)
                except OSError as exc:
                    out.append(exc)
                    if stats is not None:
                        stats.append(None)
                    folder_key = None
                    continue
            try:
                out.append(_read_in(folder, rel, stats))
            except OSError as exc:
                out.append(exc)
                if stats is not None:
                    stats.append(None)
    finally:
        if folder is not None:
            os.close(folder)
    return out


def _read_in(folder: int, rel: str, stats: list[os.stat_result | None] | None = None) -> bytes:
    """The bytes of regular file `rel`, its folder's descriptor open as `folder` (its
    stat appended to `stats` if given)."""
    parts = _parts(rel)
    name = parts[-1]
    try:
        fd = os.open(name, _READ, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP and _is_link(folder, name):
            raise _linked(rel, parts, len(parts) - 1) from None
        raise
    try:
        st = os.fstat(fd)
        kind = st.st_mode
        if stat.S_ISDIR(kind):
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", rel)
        if not stat.S_ISREG(kind):
            raise OSError(errno.EINVAL, "not a regular file", rel)
        os.set_blocking(fd, True)
        # plain reads, no file object: a start reads 100,000 small files this way
        chunks, want = [], st.st_size + 1
        while chunk := os.read(fd, want):
            chunks.append(chunk)
            want = 1 << 20
    finally:
        os.close(fd)
    if stats is not None:
        stats.append(st)
    return b"".join(chunks)


def lstat(root: StrPath, rel: str) -> os.stat_result | None:
    """`rel`'s own stat (a link's, not its target's), or None when it is missing;
    `UnsafePathError` when a folder on the way is a link."""
    try:
        folder, name, _ = _open_parent(root, rel)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        os.close(folder)


def lstat_all(root: StrPath, rels: Sequence[str]) -> list[os.stat_result | UnsafePathError | None]:
    """`lstat` of many paths at once (the watcher's poll): each folder is opened once, and
    a path whose folder is a link gets its `UnsafePathError` instead of a stat."""
    opened: dict[str, int | str | None] = {}  # folder → descriptor, the linked folder above, or None
    out: list[os.stat_result | UnsafePathError | None] = []
    opened[""] = os.open(root, _ROOT)
    try:
        for rel in rels:
            key, _, name = rel.rpartition("/")
            if key in opened and name not in ("", ".", "..") and not rel.startswith("/"):
                folder = opened[key]  # the usual case: a folder already opened in this poll
            else:
                try:
                    parts = _parts(rel)
                except UnsafePathError as exc:
                    out.append(exc)
                    continue
                folder = _folder_fd(opened, parts)
            if isinstance(folder, str):
                out.append(UnsafePathError(f"{rel} is in {folder}, a symbolic link now (not followed)"))
            elif folder is None:
                out.append(None)  # a folder on the way is gone
            else:
                try:
                    out.append(os.stat(name, dir_fd=folder, follow_symlinks=False))
                except OSError:
                    out.append(None)  # gone, or unreadable: as a missing file
    finally:
        for fd in opened.values():
            if isinstance(fd, int):
                os.close(fd)
    return out


def _folder_fd(opened: dict[str, int | str | None], parts: list[str]) -> int | str | None:
    """The descriptor of the folder holding `parts` (opening what is not yet in `opened`),
    the first folder on the way that is a link, or None if one is missing."""
    fd: int | str | None = opened[""]
    for index in range(len(parts) - 1):
        key = "/".join(parts[: index + 1])
        if key not in opened:
            assert isinstance(fd, int)
            try:
                opened[key] = os.open(parts[index], _DIR, dir_fd=fd)
            except OSError as exc:
                linked = exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_link(fd, parts[index])
                opened[key] = key if linked else None
        fd = opened[key]
        if not isinstance(fd, int):
            return fd
    return fd


def readlink(root: StrPath, rel: str) -> str | None:
    """The text of symbolic link `rel` (what git commits for it), or None if it is not one."""
    folder, name, _ = _open_parent(root, rel)
    try:
        return os.readlink(name, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise
    finally:
        os.close(folder)


def replace_file(
    root: StrPath, rel: str, data: bytes, mode: int = 0o644, make_folders: int | None = None
) -> os.stat_result:
    """Replace `rel` with `data` atomically (temporary file + rename in the same folder
    descriptor), keeping the permission bits of the file it replaces (`mode` for a new
    one). Refuses a path that is or passes through a link. The new file's stat is taken
    before the rename (a rename keeps inode, size and mtime), so a save by someone else
    right after is never mistaken for ours. With `make_folders`, missing folders are made
    with that mode."""
    folder, name, parts = _open_parent(root, rel, make_folders)
    try:
        try:
            old = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISLNK(old.st_mode):
                raise _linked(rel, parts, len(parts) - 1)
            if not stat.S_ISREG(old.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", rel)
            mode = stat.S_IMODE(old.st_mode)
        tmp, fd = _temporary(folder, name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fchmod(fd, mode)
                os.fsync(fd)
                new = os.fstat(fd)
            os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=folder)
            except FileNotFoundError:
                pass
            raise
        return new
    finally:
        os.close(folder)


def create_file(root: StrPath, rel: str, data: bytes, make_folders: int = 0o755) -> None:
    """Create `rel` holding `data` (0644), never replacing anything (`FileExistsError`),
    making missing folders; never through a link."""
    folder, name, _ = _open_parent(root, rel, make_folders)
    try:
        fd = os.open(name, _CREATE, 0o644, dir_fd=folder)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(fd)
    finally:
        os.close(folder)


def remove_file(root: StrPath, rel: str) -> None:
    """Remove file (or link) `rel` itself; never follows a link on the way."""
    folder, name, _ = _open_parent(root, rel)
    try:
        os.unlink(name, dir_fd=folder)
    finally:
        os.close(folder)


def rename_file(root: StrPath, old: str, new: str, make_folders: int = 0o755) -> None:
    """Move file `old` to `new` (missing folders made), never replacing an existing
    `new` (`FileExistsError`) and never through a link."""
    src, src_name, _ = _open_parent(root, old)
    try:
        dst, dst_name, _ = _open_parent(root, new, make_folders)
        try:
            try:
                os.stat(dst_name, dir_fd=dst, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise FileExistsError(errno.EEXIST, "already exists", new)
            os.rename(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _temporary(folder: int, name: str) -> tuple[str, int]:
    while True:
        tmp = f".{name[:200]}.{secrets.token_hex(4)}.rtc-tmp"
        try:
            return tmp, os.open(tmp, _CREATE, 0o600, dir_fd=folder)
        except FileExistsError:
            continue


# -- gitrtc's own files: owner-only ---------------------------------------------------


def private_dir(path: StrPath) -> None:
    """Make folder `path` (and any missing folders above it) mode 0700; an existing
    `path` is set to 0700 too. For `.git/rtc` and everything gitrtc makes inside it."""
    leaf = folder = os.path.abspath(path)
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for name in reversed(missing):
        try:
            os.mkdir(name, 0o700)
        except FileExistsError:
            pass
        os.chmod(name, 0o700)  # mkdir's mode is cut by the umask
    os.chmod(leaf, 0o700)  # an existing folder too


def private_file(path: StrPath) -> None:
    """Create `path` empty if it is missing, and make it mode 0600 (before SQLite opens a
    database: its -wal and -shm files take the database's mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def write_private(path: StrPath, data: bytes, append: bool = False) -> None:
    """Write (or append) `data` to file `path`, mode 0600; never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_APPEND if append else os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o600)
        out.write(data)
