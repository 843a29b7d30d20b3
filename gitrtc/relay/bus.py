"""The session's message bus in Redis: key names, entries, an ordered writer, a subscriber.

Keys and channels of session S (all under `rtc:S:`; an entry is one byte string packed
by `pack`, a stream entry's one field `m`):

- `in`: stream of what relays' clients send (`t`=o open, m message, c closed), each
  entry tagged with the relay (`r`) and the client's number on it (`c`); trimmed by the
  owner once its store holds what it read;
- `room:R` (pub/sub channel): the owner's broadcasts to room R (`t`=b, sender `s`); a
  relay subscribes to the rooms its clients are in, and only to those;
- `relay:ID` (pub/sub channel): what the owner sends one client of relay ID: frames
  (`t`=d), its admission (`t`=k) or close (`t`=x).
  Every published entry carries the owner's instance (`o`) and its channel's sequence
  number (`n`): a relay that sees a gap or a new instance knows it missed something and
  resyncs its clients. Redis delivers one connection's publications to one subscriber
  connection in the order published, across channels, so a relay sees the owner's order;
- `owner`: the owner's heartbeat (expires when it stops beating);
- `relays`: hash relay id → JSON heartbeat (URL, clients).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

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

Fields = dict[str, bytes | str | int]
Entry = dict[bytes, bytes]


class BusError(RtcError):
    """The session's Redis cannot be reached: check --redis and that Redis runs."""


def keys(session: str) -> dict[str, str]:
    """The Redis keys of session `session` (see the module docstring)."""
    base = f"rtc:{session}:"
    return {name: base + name for name in ("in", "owner", "relays")}


def room_channel(session: str, room: str) -> bytes:
    """The channel of room `room`'s broadcasts."""
    return f"rtc:{session}:room:{room}".encode()


def relay_channel(session: str, relay: bytes) -> bytes:
    """The channel of what the owner sends relay `relay`'s clients one by one."""
    return f"rtc:{session}:relay:".encode() + relay


def connect(url: str) -> Redis:
    """A Redis client for `url` (redis://HOST:PORT/N); `BusError` if the URL is not one."""
    try:
        import hiredis  # noqa: F401  (`Link` packs and parses with it)
        from redis.asyncio import Redis
    except ImportError:
        raise BusError("relays need the redis and hiredis packages: pip install 'gitrtc[redis]'") from None

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


Command = Sequence[bytes | str | int]
#: What takes a batch's replies in `_Wire.send_packed`: the replies, or the loss of them.
Answered = Callable[[list[Any] | Exception], None]


class Link:
    """One connection to Redis for the hot path (the stream reads and writes): commands
    packed by hiredis and written in one write per batch, replies parsed by hiredis, in
    order. redis-py's client spends more CPU per command (its pool's lock, health check
    and observability hooks, timeouts) than the owner spends applying an update; this is
    the whole of what the relays' streams need. It connects when first used and again
    after a failure; a lost connection fails what was waiting with `ConnectionError`, a
    Redis error reply raises redis-py's `ResponseError` (both are what the callers catch).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._wire: _Wire | None = None
        self._opening = asyncio.Lock()

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """Send `commands` in one write; their replies, in order."""
        wire = self._wire
        if wire is None or wire.lost:
            async with self._opening:
                wire = self._wire
                if wire is None or wire.lost:
                    wire = self._wire = await self.open_wire()
        try:
            replies = await wire.send(commands)
        except asyncio.CancelledError:
            wire.close()  # its reply would go to the next caller: start afresh
            raise
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def open_wire(self) -> _Wire:
        """A new connection to this link's Redis, authenticated and on its database, not
        kept by the link (a `Writer` or `Publisher` holds its own, with replies its way)."""
        wire = _Wire()
        options = await _connect(self.url, wire)
        setup: list[Command] = []
        if options.get("password"):
            setup.append(["AUTH", *([options["username"]] if options.get("username") else []), options["password"]])
        if options.get("db"):
            setup.append(["SELECT", int(options["db"])])
        if setup:
            for reply in await wire.send(setup):
                if isinstance(reply, Exception):
                    wire.close()
                    raise reply
        return wire

    def close(self) -> None:
        """Drop the connection (the next `run` opens a new one)."""
        if self._wire is not None:
            self._wire.close()


async def _connect(url: str, protocol: asyncio.Protocol) -> dict[str, Any]:
    """Connect `protocol` to the Redis at `url`; the URL's options (password, db…)."""
    from redis.asyncio.connection import parse_url

    options: dict[str, Any] = dict(parse_url(url))
    loop = asyncio.get_running_loop()
    if "path" in options:
        await loop.create_unix_connection(lambda: protocol, options["path"])
    else:
        await loop.create_connection(lambda: protocol, options.get("host", "localhost"), options.get("port", 6379))
    return options


class _Wire(asyncio.Protocol):
    """One TCP (or Unix) connection of a `Link`: what was sent on it waits for its replies
    here, so a connection's loss fails only its own callers, never a newer connection's."""

    def __init__(self) -> None:
        import hiredis
        from redis.exceptions import ResponseError

        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.parser = hiredis.Reader(replyError=ResponseError)
        #: Per batch sent and not fully answered: its replies so far, how many, and who
        #: takes them (a future, or a callback run right in `data_received`).
        self.waiting: deque[tuple[list[Any], int, asyncio.Future[list[Any]] | Answered]] = deque()

    def send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """Write `commands` at once; a future of their replies (errors among them as values)."""
        import hiredis

        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.lost or self.transport is None:
            future.set_exception(ConnectionError("the connection to Redis was lost"))
            return future
        pack_command: Callable[[Any], bytes] = hiredis.pack_command
        self.waiting.append(([], len(commands), future))
        self.transport.write(b"".join(pack_command(tuple(c)) for c in commands))
        return future

    def send_packed(self, data: bytes, count: int, answered: Answered) -> None:
        """Write `count` commands packed already; `answered` gets their replies (errors
        among them as values), or the `ConnectionError` that lost them, from the
        connection's own callbacks: no future, no task, no extra loop turn."""
        if self.lost or self.transport is None:
            answered(ConnectionError("the connection to Redis was lost"))
            return
        self.waiting.append(([], count, answered))
        self.transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = parser.gets()
            except Exception as exc:  # hiredis.ProtocolError: nothing after it can be trusted
                log.warning("Redis sent a malformed reply: %s", exc)
                self.close()
                return
            if reply is False:
                return
            if not waiting:
                log.warning("Redis sent a reply nobody waits for")
                self.close()
                return
            replies, count, taker = waiting[0]
            replies.append(reply)
            if len(replies) == count:
                waiting.popleft()
                if isinstance(taker, asyncio.Future):
                    if not taker.done():
                        taker.set_result(replies)
                else:
                    taker(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.close()

    def close(self) -> None:
        """Drop the connection; whatever still waits on it fails with `ConnectionError`."""
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        waiting, self.waiting = self.waiting, deque()
        for _replies, _count, taker in waiting:
            if isinstance(taker, asyncio.Future):
                if not taker.done():
                    taker.set_exception(ConnectionError("the connection to Redis was lost"))
            else:
                taker(ConnectionError("the connection to Redis was lost"))


class Writer:
    """Appends entries to one stream in the order given, pipelined: what is added in one
    event loop turn (a burst of frames read from a client's socket at once) goes to
    Redis in one write, and the next write does not wait for the previous one's replies
    (one connection keeps the order). The replies are checked as they come, in the
    connection's callback: an entry costs no task, no future and no loop turn of its
    own, only the wake of its reply (under load, one reply read covers many entries).

    `on_error` is called when entries could not be written (an error reply, or the
    connection lost with entries unanswered: they may be lost, so the relay resyncs its
    clients); the next entry connects again.
    """

    def __init__(self, link: Link, key: str, on_error: Callable[[Exception], None]) -> None:
        import hiredis

        self.link = link
        self.key = key
        self.on_error = on_error
        self._pack_command: Callable[[Any], bytes] = hiredis.pack_command
        self._pending: list[bytes] = []  # packed entries not written yet
        self._scheduled = False
        self._wire: _Wire | None = None
        self._opening: asyncio.Task[None] | None = None
        self._unanswered = 0  # writes whose replies are still due
        self._drained: list[asyncio.Future[None]] = []
        #: Writes made and entries written (what a test or a benchmark reads).
        self.writes = 0
        self.written = 0

    def add(self, fields: Fields) -> None:
        """Append `fields` after everything added before."""
        self.add_packed(pack(fields))

    def add_packed(self, entry: bytes) -> None:
        """Append an entry packed already (`pack`, or a prefix + `field`)."""
        self._pending.append(entry)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        wire = self._wire
        if wire is None or wire.lost or wire.transport is None:
            if self._opening is None:
                self._opening = asyncio.get_running_loop().create_task(self._open())
            return
        batch, self._pending = self._pending, []
        pack_command, key = self._pack_command, self.key
        self._unanswered += 1
        self.writes += 1
        self.written += len(batch)
        wire.send_packed(
            b"".join([pack_command(("XADD", key, "*", "m", e)) for e in batch]), len(batch), self._answered
        )

    def _answered(self, replies: list[Any] | Exception) -> None:
        self._unanswered -= 1
        if isinstance(replies, Exception):
            log.warning("bus entries may be lost: %s", replies)
            self.on_error(replies)
        else:
            for reply in replies:
                if isinstance(reply, Exception):
                    log.warning("lost bus entries: %s", reply)
                    self.on_error(reply)
                    break
        self._wake()

    async def _open(self) -> None:
        from redis.exceptions import RedisError

        try:
            self._wire = await self.link.open_wire()
        except (RedisError, OSError) as exc:
            log.warning("lost %d bus entries: %s", len(self._pending), exc)
            self._pending = []
            self.on_error(exc)
        finally:
            self._opening = None
        self._flush()
        self._wake()

    def _wake(self) -> None:
        if not self._unanswered and not self._pending and self._opening is None:
            drained, self._drained = self._drained, []
            for future in drained:
                if not future.done():
                    future.set_result(None)

    async def drain(self) -> None:
        """Wait until everything added so far was written and answered (or failed)."""
        self._flush()
        if self._unanswered or self._pending or self._opening is not None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drained.append(future)
            await future

    def close(self) -> None:
        """Drop the connection (what is unanswered fails: `on_error`)."""
        if self._wire is not None:
            self._wire.close()
        self.link.close()


class Publisher:
    """Publishes entries on channels over a connection whose replies are switched off
    (`CLIENT REPLY OFF`). PUBLISH cannot fail but with its connection, so nothing waits
    for a reply: an update costs the owner no wake for one, and Redis no write. What is
    published in one event loop turn goes in one write, in order. A connection found
    lost is reported to `on_error` (what was written to it may be lost: the relays see
    the gap in the numbers) and the next publication connects again."""

    def __init__(self, link: Link, on_error: Callable[[Exception], None]) -> None:
        import hiredis

        self.link = link
        self.on_error = on_error
        self._pack_command: Callable[[Any], bytes] = hiredis.pack_command
        self._pending: list[bytes] = []
        self._wire: _Wire | None = None
        self._scheduled = False
        self._opening: asyncio.Task[None] | None = None

    def add(self, item: tuple[bytes, Fields]) -> None:
        """Publish `item` (channel, fields) after everything added before."""
        channel, fields = item
        self.add_packed(channel, pack(fields))

    def add_packed(self, channel: bytes, entry: bytes) -> None:
        """Publish an entry packed already on `channel`, after everything added before."""
        self._pending.append(self._pack_command(("PUBLISH", channel, entry)))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        wire = self._wire
        if wire is None or wire.lost or wire.transport is None:
            if wire is not None:
                self._wire = None
                self.on_error(ConnectionError("the connection to Redis was lost"))
            if self._opening is None and self._pending:
                self._opening = asyncio.get_running_loop().create_task(self._open())
            return
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            wire.transport.write(data)

    async def _open(self) -> None:
        from redis.exceptions import RedisError

        try:
            wire = await self.link.open_wire()
            assert wire.transport is not None
            wire.transport.write(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n")
            self._wire = wire
        except (RedisError, OSError) as exc:
            log.warning("lost %d bus entries: %s", len(self._pending), exc)
            self._pending = []
            self.on_error(exc)
        finally:
            self._opening = None
        self._flush()

    async def drain(self) -> None:
        """At the end: wait until Redis has taken everything published so far (replies
        switched back on, one round trip)."""
        if self._opening is not None:
            await self._opening
        self._flush()
        wire = self._wire
        if wire is not None and not wire.lost:
            await wire.send([("CLIENT", "REPLY", "ON")])

    def close(self) -> None:
        """Drop the connection."""
        if self._wire is not None:
            self._wire.close()


#: What a `Subscriber` hands over: (channel, packed entry), or (channel, None) where the
#: channel's subscription starts (what follows is all that was published after that).
Message = tuple[bytes, bytes | None]


class Subscriber(asyncio.Protocol):
    """One connection subscribed to pub/sub channels, parsed by hiredis. What arrives in one
    read goes to `on_messages` in one call, in Redis' order. `lost` is done when the
    connection ends (Redis stopped, the network, `close`): what was published meanwhile
    is gone, so the owner of this subscriber resyncs and opens a new one."""

    def __init__(self, on_messages: Callable[[list[Message]], None]) -> None:
        import hiredis
        from redis.exceptions import ResponseError

        self.on_messages = on_messages
        self.transport: asyncio.Transport | None = None
        self.parser = hiredis.Reader(replyError=ResponseError)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: Futures of the commands whose replies are due, in order (None: nobody waits).
        self.waiting: deque[asyncio.Future[Any] | None] = deque()

    @classmethod
    async def open(cls, url: str, on_messages: Callable[[list[Message]], None]) -> Subscriber:
        """A subscriber connected (and authenticated) to the Redis at `url`."""
        subscriber = cls(on_messages)
        options = await _connect(url, subscriber)
        if options.get("password"):
            user = [options["username"]] if options.get("username") else []
            try:
                await subscriber._send(("AUTH", *user, options["password"]), wait=True)
            except BaseException:
                subscriber.close()
                raise
        return subscriber

    async def subscribe(self, channel: bytes) -> None:
        """Subscribe to `channel`; returns once Redis confirmed it (from then on nothing
        published there is missed while the connection lives)."""
        await self._send(("SUBSCRIBE", channel), wait=True)

    def unsubscribe(self, channel: bytes) -> None:
        """Stop receiving `channel` (messages already on their way still arrive)."""
        if not self.lost.done():
            self._send(("UNSUBSCRIBE", channel), wait=False)

    def _send(self, command: Command, wait: bool) -> asyncio.Future[Any]:
        import hiredis

        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.lost.done() or self.transport is None:
            future.set_exception(ConnectionError("the connection to Redis was lost"))
            return future
        pack_command: Callable[[Any], bytes] = hiredis.pack_command
        self.waiting.append(future if wait else None)
        self.transport.write(pack_command(tuple(command)))
        return future

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        batch: list[Message] = []
        while True:
            try:
                reply = self.parser.gets()
            except Exception as exc:  # hiredis.ProtocolError: nothing after it can be trusted
                log.warning("Redis sent a malformed reply: %s", exc)
                self.close()
                break
            if reply is False:
                break
            if isinstance(reply, list) and reply and reply[0] == b"message":
                batch.append((reply[1], reply[2]))
                continue
            if isinstance(reply, list) and reply and reply[0] == b"subscribe":
                batch.append((reply[1], None))
            if not self.waiting:
                log.warning("Redis sent a reply nobody waits for")
                self.close()
                break
            future = self.waiting.popleft()
            if future is not None and not future.done():
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        if batch:
            self.on_messages(batch)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.close()

    def close(self) -> None:
        """Drop the connection; what waits on it fails with `ConnectionError`."""
        if self.transport is not None:
            self.transport.abort()
        waiting, self.waiting = self.waiting, deque()
        for future in waiting:
            if future is not None and not future.done():
                future.set_exception(ConnectionError("the connection to Redis was lost"))
        if not self.lost.done():
            self.lost.set_result(None)


async def read(link: Link, key: str, after: bytes) -> list[tuple[bytes, Entry]]:
    """The stream's entries after id `after` (waiting up to `BLOCK_MS` for one)."""
    (answer,) = await link.run([["XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS", key, after]])
    # [[key, [[id, [b"m", packed]], ...]]], or None when nothing came
    return [(i, unpack(f[1] if len(f) > 1 else b"")) for _key, entries in answer or () for i, f in entries]


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


def field(name: bytes, value: bytes) -> bytes:
    """One packed field: `pack(a) + field(b"f", frame)` packs `a` with `f` added, so a
    caller can pack what is the same for every entry once."""
    return _FIELD.pack(len(name), len(value)) + name + value


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
