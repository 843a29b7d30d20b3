"""`rtc join`'s own reads and writes under a folder, never through a symbolic link.

Each path is walked from an open descriptor of the root folder, one component at a time,
with `O_NOFOLLOW`: a symlinked folder or file anywhere below the root is refused at the
moment of use (not checked first and followed later). Writes are atomic (a new file in
the same folder, fsync, rename over the old one, its permission bits kept). Blocking:
the mirror calls these in a thread.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from .errors import JoinError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _linked(root: Path, parts: list[str]) -> JoinError:
    where = root.joinpath(*parts)
    return JoinError(f"{where} is a symbolic link or not a folder: rtc join does not write through links; "
                     "remove it or join into another folder")


def _open_folder(root: Path, parts: list[str], create: bool, mode: int) -> int:
    """A descriptor of root/parts[0]/…; missing folders made (`create`) with `mode`."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for i, part in enumerate(parts):
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, mode, dir_fd=fd)  # never follows a link in the last component
                except FileExistsError:
                    pass  # made meanwhile: opened (without following) just below
                try:
                    inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _linked(root, parts[: i + 1]) from None
                    raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _linked(root, parts[: i + 1]) from None
                raise
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def read(root: Path, rel: str) -> bytes | None:
    """The bytes of root/rel, or None if it (or a folder on the way) does not exist."""
    *folders, name = rel.split("/")
    try:
        dir_fd = _open_folder(root, folders, create=False, mode=0)
    except FileNotFoundError:
        return None
    try:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise JoinError(f"{root / rel} is a symbolic link: rtc join does not read or write through "
                                "links; remove it or join into another folder") from None
            raise
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise JoinError(f"{root / rel} is not a regular file: remove it or join into another folder")
            return f.read()
    finally:
        os.close(dir_fd)


def write(root: Path, rel: str, data: bytes, mode: int = 0o644, folder_mode: int = 0o777) -> None:
    """Replace root/rel with `data` atomically, making missing folders; a file that exists
    keeps its permission bits, a new one gets `mode`."""
    *folders, name = rel.split("/")
    dir_fd = _open_folder(root, folders, create=True, mode=folder_mode)
    try:
        try:
            old = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISLNK(old.st_mode) or not stat.S_ISREG(old.st_mode):
                raise JoinError(f"{root / rel} is a symbolic link or not a regular file: remove it or join "
                                "into another folder")
            mode = stat.S_IMODE(old.st_mode)
        tmp = f".{name[:200]}.{secrets.token_hex(4)}.rtc-tmp"
        fd = os.open(tmp, _NEW_FLAGS, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces a link, never follows it
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dir_fd)
