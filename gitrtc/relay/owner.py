"""The owner's side of the bus: relays' clients become connections of the session.

The owner's process stays the one writer of record. Each client of a relay is, here, a
`RemoteConnection`: an ordinary `rooms.Connection` whose transport publishes on its
relay's channel, so tokens, roles, viewers' refusal, the update check, awareness ownership,
kicks, requests and the end's 4410 all run the code a direct client meets. Only the
room-wide fan-out differs: a frame for the whole room is published once on the room's
channel (`Room.relay`), and each relay with clients there hands it to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import CLOSE_CODES, DocumentError, ProtocolError, RtcError, StoreError, UnauthorizedError
from ..rooms import Connection, Room
from ..server.ws import participant_of
from ..session import Session
from . import bus

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

Key = tuple[bytes, bytes]  # (relay id, client number on it)


class RemoteTransport:
    """`rooms.Transport` of a relay's client: frames are published on its relay's channel."""

    def __init__(self, owner: Owner, relay: bytes, cid: bytes) -> None:
        self.owner = owner
        self.relay = relay
        self.cid = cid
        self.channel = owner.relay_channel(relay)
        #: The client is gone from its relay already (nothing more to send it).
        self.gone = False

    def try_send(self, frames: list[bytes]) -> bool:
        """Publish these frames for the client; never waits (the relay queues them)."""
        if not self.gone:
            for frame in frames:
                self.owner.publish(self.channel, {"t": "d", "c": self.cid, "f": frame})
        return True

    async def send_bytes(self, data: bytes) -> None:
        """Publish one frame for the client."""
        self.try_send([data])

    async def close(self, code: int, reason: str) -> None:
        """Tell the client's relay to close it with `code`."""
        if not self.gone:
            self.gone = True
            self.owner.publish(self.channel, {"t": "x", "c": self.cid, "code": code, "why": reason[:120]})


class RemoteConnection(Connection):
    """A relay's client as a connection of the session. Room-wide frames are not posted to
    it one by one (the room does not even visit it: `fanout`): `Owner.broadcast` publishes
    each once for every relay."""

    fanout = False

    def post(self, frame: bytes) -> bool:
        """Nothing to do: the room's broadcast reaches this client through its relay."""
        return False


class Owner:
    """Serves `session`'s relays through Redis: admits their clients, feeds their frames
    to the rooms, publishes what the rooms send, watches the relays' heartbeats and
    trims the `in` stream."""

    def __init__(self, session: Session, redis: Redis, url: str) -> None:
        self.session = session
        self.redis = redis
        self.url = url
        self.keys = bus.keys(session.manifest.session)
        self.instance = uuid.uuid4().hex[:12]
        self._signed = bus.field(b"o", self.instance.encode())  # packed once, on every entry
        #: Per channel, the number of the last entry published there.
        self.seq: dict[bytes, int] = {}
        self._channels: dict[str, tuple[bytes, bytes]] = {}  # room → its channel, its entries' head
        self.remotes: dict[Key, RemoteConnection] = {}
        #: Frames of clients whose admission is still running (room loading), in order.
        self.joining: dict[Key, list[bytes]] = {}
        #: Clients that left their relay while being admitted.
        self.left_early: set[Key] = set()
        #: Live relays' last heartbeats (for `rtc status`).
        self.relays: dict[str, dict[str, Any]] = {}
        self.out = bus.Publisher(bus.Link(url), self._lost)
        self.reader = bus.Link(url)  # `in`'s blocking reads, on a connection of their own
        self._read = b"0-0"  # the last `in` entry handled
        self._tasks: list[asyncio.Task[None]] = []

    # -- publishing -------------------------------------------------------------------

    def publish(self, channel: bytes, fields: bus.Fields) -> None:
        """Publish an entry on `channel`, numbered there (relays detect a gap by the numbers)."""
        self.publish_packed(channel, bus.pack(fields))

    def publish_packed(self, channel: bytes, entry: bytes) -> None:
        """`publish` of fields packed already."""
        number = self.seq.get(channel, 0) + 1
        self.seq[channel] = number
        self.out.add_packed(channel, entry + self._signed + bus.field(b"n", b"%d" % number))

    def relay_channel(self, relay: bytes) -> bytes:
        """The channel of what relay `relay`'s clients are sent one by one."""
        return bus.relay_channel(self.session.manifest.session, relay)

    def broadcast(self, room: Room, frame: bytes, sender: Connection | None) -> None:
        """(`Room.relay`) A frame for the whole room, once, for every relay's clients there."""
        who = b""
        if isinstance(sender, RemoteConnection):
            transport = sender.transport
            assert isinstance(transport, RemoteTransport)
            who = transport.relay + b":" + transport.cid
        known = self._channels.get(room.name)
        if known is None:  # the room's channel, and its entries' fixed fields packed once
            head = bus.pack({"t": "b", "r": room.name})
            known = self._channels[room.name] = (bus.room_channel(self.session.manifest.session, room.name), head)
        channel, head = known
        field = bus.field
        self.publish_packed(channel, head + field(b"s", who) + field(b"f", frame))

    def _lost(self, exc: Exception) -> None:
        # the relays see the gap in the numbers and resync their clients
        log.warning("the bus lost entries for the relays: %s", exc)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Hook into the session's rooms and start reading the relays."""
        await bus.ping(self.redis, self.url)
        self._read = await bus.last_id(self.redis, self.keys["in"])
        self.session.registry.relay = self.broadcast
        for room in self.session.rooms.values():
            room.relay = self.broadcast
        self.session.relays = self.relay_list
        await self._beat()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume()), loop.create_task(self._heartbeat())]

    async def close(self) -> None:
        """Stop reading; send what is still to be sent (the end's closes)."""
        from redis.exceptions import RedisError

        for task in self._tasks:
            task.cancel()
        if self._tasks:  # a blocking read cancelled mid-reply must not hold the exit up either
            await asyncio.wait(self._tasks, timeout=bus.CLOSE_WITHIN)
        try:  # bounded: an unreachable Redis must not keep the process from exiting
            await asyncio.wait_for(self.out.drain(), bus.CLOSE_WITHIN)
            await asyncio.wait_for(self.redis.delete(self.keys["owner"]), bus.CLOSE_WITHIN)
            await asyncio.wait_for(self.redis.aclose(), bus.CLOSE_WITHIN)
        except (TimeoutError, OSError, RedisError) as exc:
            log.warning("the relays may not have heard the last entries: %s", exc)
        finally:
            self.reader.close()
            self.out.close()

    def relay_list(self) -> list[dict[str, Any]]:
        """The live relays: id, URL, clients (for `rtc status`)."""
        return [{"id": rid, "url": r.get("url", ""), "clients": r.get("clients", 0)} for rid, r in self.relays.items()]

    # -- reading the relays ---------------------------------------------------------

    async def _consume(self) -> None:
        from redis.exceptions import RedisError

        while True:
            try:
                entries = await bus.read(self.reader, self.keys["in"], self._read)
            except (RedisError, OSError) as exc:
                log.warning("reading the relays failed (%s): their clients reconnect", exc)
                self._drop(lambda key: True)
                await asyncio.sleep(0.5)
                continue
            for entry_id, entry in entries:
                self._read = entry_id
                await self._handle(entry)

    async def _handle(self, entry: bus.Entry) -> None:
        kind = entry.get(b"t")
        key = (entry.get(b"r", b""), entry.get(b"c", b""))
        if kind == b"m":
            frame = entry.get(b"f", b"")
            pending = self.joining.get(key)
            if pending is not None:
                pending.append(frame)
                return
            conn = self.remotes.get(key)
            if conn is None:  # from before this process started, or after it was closed
                fields: bus.Fields = {"t": "x", "c": key[1], "code": CLOSE_CODES["RESTART"], "why": "reconnect"}
                self.publish(self.relay_channel(key[0]), fields)
                return
            await self._receive(conn, frame)
        elif kind == b"o":
            self.joining[key] = []
            asyncio.get_running_loop().create_task(self._admit(key, entry))
        elif kind == b"c":
            if key in self.joining:
                self.left_early.add(key)  # `_admit` forgets it once it is in
            self._forget(key)

    async def _admit(self, key: Key, entry: bus.Entry) -> None:
        """A relay's new client: check its token as `server.ws` does, join its room, then
        handle the frames it sent meanwhile."""
        relay, cid = key
        try:
            grant = self.session.grant_for(bus.text(entry, b"token"))
            transport = RemoteTransport(self, relay, cid)
            if grant is None:
                await transport.close(UnauthorizedError.close_code, "missing or wrong token")
                return
            query = {"name": bus.text(entry, b"name"), "email": bus.text(entry, b"email")}
            conn = RemoteConnection(transport, participant_of(query, *grant), self.session.limits)
            conn.mirror = bus.text(entry, b"client") == "join"  # as `server.ws` reads `?client=join`
            self.publish(transport.channel, {"t": "k", "c": cid})
            try:
                await self.session.connect(bus.text(entry, b"room"), conn)
            except (StoreError, DocumentError) as exc:
                self.session.event(str(exc))
                await conn.close(exc.close_code, "this file cannot be loaded: see rtc status")
                return
            except RtcError as exc:
                await conn.close(exc.close_code, str(exc))
                return
            self.remotes[key] = conn
            if key in self.left_early:
                self.left_early.discard(key)
                self._forget(key)
                return
            pending = self.joining[key]
            while pending and not conn.closed:
                await self._receive(conn, pending.pop(0))
        finally:
            self.joining.pop(key, None)
            self.left_early.discard(key)

    async def _receive(self, conn: RemoteConnection, frame: bytes) -> None:
        """A client's frame through the room, as `server.ws.room_socket` hands it over."""
        if conn.closed:
            return
        room = self.session.connections.get(conn)
        if room is None:
            return
        try:
            await room.receive(conn, frame)
        except ProtocolError as exc:
            log.info("closing %s's connection: %s", conn.participant.name, exc)
            await conn.close(exc.close_code, str(exc))
        except StoreError as exc:
            self.session.event(str(exc))
            await conn.close(exc.close_code, "the server cannot save edits right now")

    def _forget(self, key: Key) -> None:
        """The client left its relay."""
        conn = self.remotes.pop(key, None)
        if conn is not None:
            transport = conn.transport
            assert isinstance(transport, RemoteTransport)
            transport.gone = True
            self.session.disconnect(conn)
            conn.close_soon(CLOSE_CODES["NORMAL"], "")

    def _drop(self, which: Any) -> None:
        """Forget the clients of relays `which(key)` selects (dead, or unreachable)."""
        for key in [k for k in self.remotes if which(k)]:
            self._forget(key)

    # -- heartbeats and trimming --------------------------------------------------------

    async def _heartbeat(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await asyncio.sleep(bus.BEAT)
            try:
                await self._beat()
                await self._trim()
            except (RedisError, OSError) as exc:
                log.warning("the owner's heartbeat failed: %s", exc)

    async def _beat(self) -> None:
        """Say the owner is alive; read the relays' heartbeats, forget the dead ones'."""
        await self.redis.set(
            self.keys["owner"], json.dumps({"instance": self.instance, "pid": os.getpid()}), ex=int(bus.STALE)
        )
        now = time.time()
        live: dict[str, dict[str, Any]] = {}
        beats: dict[bytes, bytes] = await self.redis.hgetall(self.keys["relays"])  # type: ignore[assignment]
        for rid, raw in beats.items():
            try:
                beat = json.loads(raw)
            except ValueError:
                beat = {}
            if isinstance(beat, dict) and now - float(beat.get("at", 0)) < bus.STALE:
                live[rid.decode()] = beat
            else:
                await self.redis.hdel(self.keys["relays"], rid)
        self.relays = live
        alive = {rid.encode() for rid in live}
        self._drop(lambda key: key[0] not in alive)  # once a second over every client: kept cheap
        prefix = self.relay_channel(b"")
        for channel in [c for c in self.seq if c.startswith(prefix) and c[len(prefix) :] not in alive]:
            del self.seq[channel]  # a dead relay's numbering (its clients were just dropped)

    async def _trim(self) -> None:
        """Drop `in` entries once what they held is stored (the stream stays bounded; what
        the owner publishes is never stored in Redis)."""
        read = self._read
        await self.session.store.flush()
        if read != b"0-0":
            await self.redis.xtrim(self.keys["in"], minid=read.decode())


@contextlib.asynccontextmanager
async def serving_relays(session: Session, url: str) -> AsyncIterator[Owner]:
    """Serve `session`'s relays through the Redis at `url` for the duration of the block."""
    owner = Owner(session, bus.connect(url), url)
    await owner.start()
    try:
        yield owner
    finally:
        await owner.close()
