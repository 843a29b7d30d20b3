"""The session's message bus in Redis: key names, stream entries, and an ordered writer.

Keys of session S (all under `rtc:S:`; a stream entry is one field `m`, its fields packed by `pack`):

- `in`: stream of what relays' clients send (`t`=o open, m message, c closed), each
  entry tagged with the relay (`r`) and the client's number on it (`c`);
- `out`: stream of what the owner sends, in one order: room broadcasts (`t`=b, room `r`,
  sender `s`), frames for one client (`t`=d), its admission (`t`=k) or close (`t`=x).
  Every entry carries the owner's instance (`o`) and a sequence number (`n`): a relay
  that sees a gap or a new instance knows it missed something and resyncs its clients;
- `owner`: the owner's heartbeat (expires when it stops beating);
- `relays`: hash relay id → JSON heartbeat (URL, clients, last `out` id read).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import RtcError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: Seconds between heartbeats (owner and relays); a heartbeat older than `STALE` is dead.
BEAT = 1.0
STALE = 5.0
#: How long an XREAD waits for new entries before looking again (ms).
BLOCK_MS = 1000
#: Seconds a closing process waits for Redis to take its last entries.
CLOSE_WITHIN = 5.0
#: Entries read at once.
READ_COUNT = 1000
#: The `out` stream never holds more than about this many entries (a relay further behind
#: sees a gap and resyncs its clients).
OUT_MAXLEN = 100_000

Fields = dict[str, bytes | str | int]
Entry = dict[bytes, bytes]


class BusError(RtcError):
    """The session's Redis cannot be reached: check --redis and that Redis runs."""


def keys(session: str) -> dict[str, str]:
    """The Redis keys of session `session` (see the module docstring)."""
    base = f"rtc:{session}:"
    return {name: base + name for name in ("in", "out", "owner", "relays")}


def connect(url: str) -> Redis:
    """A Redis client for `url` (redis://HOST:PORT/N); `BusError` if the URL is not one."""
    try:
        from redis.asyncio import Redis
    except ImportError:
        raise BusError("relays need the redis package: pip install 'gitrtc[redis]'") from None

    try:
        return Redis.from_url(url, health_check_interval=10)
    except ValueError as exc:
        raise BusError(f"not a Redis URL: {url} ({exc}): use redis://HOST:PORT/N") from None


async def ping(redis: Redis, url: str) -> None:
    """`BusError` unless Redis answers."""
    from redis.exceptions import RedisError

    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        raise BusError(f"cannot reach Redis at {url} ({exc}): start it or fix --redis") from None


async def last_id(redis: Redis, key: str) -> bytes:
    """The id of the stream's newest entry (reading after it sees only new ones)."""
    newest: Any = await redis.xrevrange(key, count=1)
    return bytes(newest[0][0]) if newest else b"0-0"


class Writer:
    """Appends entries to one stream in the order given, pipelined: entries added during
    one round trip go in the next, so a burst costs a round trip per batch, not per entry.

    `on_error` is called when a batch could not be written (its entries are lost: the
    readers see the gap and resync).
    """

    def __init__(self, redis: Redis, key: str, maxlen: int | None, on_error: Callable[[Exception], None]) -> None:
        self.redis = redis
        self.key = key
        self.maxlen = maxlen
        self.on_error = on_error
        self._pending: list[Fields] = []
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, fields: Fields) -> None:
        """Append `fields` after everything added before."""
        self._pending.append(fields)
        if self._task is None:
            self._idle.clear()
            self._task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        from redis.exceptions import RedisError

        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    if len(batch) == 1:  # most keystrokes: a pipeline's setup costs more than it saves
                        await self.redis.xadd(self.key, {"m": pack(batch[0])}, maxlen=self.maxlen, approximate=True)
                    else:
                        pipe = self.redis.pipeline(transaction=False)
                        for fields in batch:
                            pipe.xadd(self.key, {"m": pack(fields)}, maxlen=self.maxlen, approximate=True)
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    log.warning("lost %d bus entries: %s", len(batch), exc)
                    self.on_error(exc)
        finally:
            self._task = None
            self._idle.set()

    async def drain(self) -> None:
        """Wait until everything added so far was written (or failed)."""
        while self._task is not None:
            await self._idle.wait()


async def read(redis: Redis, key: str, after: bytes) -> list[tuple[bytes, Entry]]:
    """The stream's entries after id `after` (waiting up to `BLOCK_MS` for one)."""
    answer: Any = await redis.xread({key: after}, count=READ_COUNT, block=BLOCK_MS)
    return [(bytes(i), unpack(e.get(b"m", b""))) for _stream, entries in answer or () for i, e in entries]


#: Name length and value length before each field of a packed entry.
_FIELD = struct.Struct("!BI")


def pack(fields: Fields) -> bytes:
    """An entry's fields as one byte string, stored as the stream entry's one field `m`:
    redis-py parses each field of a reply in Python (without hiredis), so one field
    instead of six or so is far less work per message for a relay."""
    parts = []
    for name, value in fields.items():
        key = name.encode()
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(_FIELD.pack(len(key), len(data)) + key + data)
    return b"".join(parts)


def unpack(data: bytes) -> Entry:
    """The fields `pack` packed (a malformed entry yields what precedes the damage)."""
    entry: Entry = {}
    offset, end = 0, len(data)
    while offset + _FIELD.size <= end:
        klen, vlen = _FIELD.unpack_from(data, offset)
        offset += _FIELD.size
        key = data[offset : offset + klen]
        offset += klen
        entry[key] = data[offset : offset + vlen]
        offset += vlen
    return entry


def text(entry: Entry, name: bytes) -> str:
    """Field `name` of an entry as text ('' if absent)."""
    return entry.get(name, b"").decode("utf-8", "replace")


def stop_reader(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background reader (at shutdown)."""
    if task is not None:
        task.cancel()
