"""The store's update journal: keystroke-sized updates appended to a flat file.

A keystroke is durable once its bytes are in the operating system's hands: a `write` to
the journal survives `kill -9`, as a SQLite commit in WAL mode with `synchronous=NORMAL`
does (neither syncs; power loss may lose the last writes of both). A SQLite commit runs
far more code than an append, and at a keystroke's pace every commit found the caches
cold: it was a quarter of the server's CPU per keystroke (W2 at N = 1). The store folds
the journal into its SQLite log in one transaction now and then (`Store._fold`), and
whenever it reads the log.

Each record: payload length, room id (uint32 each), CRC-32 of those and the payload,
then the payload. Reading stops at the first record that is cut short or whose CRC does
not match: that tail is what a crash in mid-write leaves, and is cut off.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

#: Length and room id, then the CRC over them and the payload.
_KEY = struct.Struct("<II")
_HEADER = struct.Struct("<III")


def encode(room_id: int, updates: list[bytes]) -> bytes:
    """Records for `updates` of one room, in order."""
    parts = []
    for update in updates:
        key = _KEY.pack(len(update), room_id)
        parts.append(_HEADER.pack(len(update), room_id, zlib.crc32(update, zlib.crc32(key))))
        parts.append(update)
    return b"".join(parts)


def decode(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The (room id, update) records of the journal's intact beginning, and its length."""
    records: list[tuple[int, bytes]] = []
    pos, end = 0, len(data)
    while pos + _HEADER.size <= end:
        length, room_id, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        if start + length > end:
            break
        update = data[start : start + length]
        if zlib.crc32(update, zlib.crc32(_KEY.pack(length, room_id))) != crc:
            break
        records.append((room_id, update))
        pos = start + length
    return records, pos


class Journal:
    """An append-only file of update records (used by the store's thread only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        #: Bytes of intact records in the file.
        self.size = 0

    def open(self) -> list[tuple[int, bytes]]:
        """Open (creating if needed); the records already there, a torn end cut off."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)  # owner-only whatever the umask, like all of .git/rtc
            with os.fdopen(os.dup(fd), "rb") as existing:
                data = existing.read()
            records, intact = decode(data)
            if intact < len(data):
                os.ftruncate(fd, intact)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self.size = fd, intact
        return records

    def append(self, room_id: int, updates: list[bytes]) -> None:
        """Write these updates' records; on an error nothing of them stays in the file."""
        data = encode(room_id, updates)
        fd = self._descriptor()
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:] if done else data)
        except OSError:
            if done:
                os.ftruncate(fd, self.size)  # no torn record before the next append
            raise
        self.size += done

    def clear(self) -> None:
        """Empty the file (its records are stored elsewhere now)."""
        os.ftruncate(self._descriptor(), 0)
        self.size = 0

    def close(self, remove: bool = False) -> None:
        """Close the file; with `remove`, delete it too (it must be empty)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            self.path.unlink(missing_ok=True)

    def _descriptor(self) -> int:
        if self._fd is None:
            raise OSError(f"the update journal {self.path} is not open")
        return self._fd
