"""A relay (`rtc relay`): serves a session's WebSocket clients, forwards them to the owner.

It holds nothing that matters. A client's frames go to the `in` stream as they come
(after its rate limits); the owner admits it (token, role, room), answers its sync
messages and publishes what it sends one client on this relay's channel and what it
sends a whole room on the room's channel. The relay subscribes (one connection) to its
own channel and to the channels of the rooms its clients are in, and hands what arrives
to its clients in the owner's order. Whenever the relay may have
missed something (a gap in the owner's numbering, a new owner, Redis failing), it closes
its clients with 1012: they reconnect, here or to another relay, and the sync protocol
exchanges whatever either side lacks, so nothing is lost and Yjs' idempotent updates
make nothing count twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import CLOSE_CODES, ForbiddenError
from ..limits import DEFAULT, Limits
from ..origins import Participant
from ..rooms import Connection
from ..server.auth import origin_allowed, request_token
from ..server.ws import AiohttpTransport, read_frames
from . import bus

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

RESYNC = CLOSE_CODES["RESTART"]
#: Seconds a new client waits for the owner to admit it.
ADMIT_WITHIN = 15.0


class Client:
    """One WebSocket client of this relay."""

    def __init__(self, cid: int, room: str, conn: Connection) -> None:
        self.cid = cid
        self.room = room
        self.conn = conn
        #: True once the owner admitted it; False: refused, with `refusal`'s code and reason.
        self.admitted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.refusal = (RESYNC, "reconnect to resync")

    def refuse(self, code: int, reason: str) -> bool:
        """Refuse a client still waiting for admission (its handler closes it); False if
        it was admitted already."""
        if self.admitted.done():
            return not self.admitted.result()
        self.refusal = (code, reason)
        self.admitted.set_result(False)
        return True


class Channel:
    """A room's channel this relay is subscribed to, for `users` of its clients."""

    def __init__(self, name: bytes, ready: asyncio.Future[None]) -> None:
        self.name = name
        self.users = 0
        #: Done once Redis confirmed the subscription (or failed with ConnectionError).
        self.ready = ready


class Relay:
    """The relay of one session: its clients, the bus reader, the heartbeat."""

    def __init__(self, redis: Redis, url: str, session: str, limits: Limits = DEFAULT) -> None:
        self.redis = redis
        self.url = url
        self.session = session
        self.limits = limits
        self.keys = bus.keys(session)
        self.id = uuid.uuid4().hex[:12]
        self.rid = self.id.encode()
        self.public_url = ""
        self.clients: dict[int, Client] = {}
        #: Room → its admitted clients here.
        self.rooms: dict[str, dict[Connection, bytes]] = {}
        self.numbers = itertools.count(1)
        self.inbox = bus.Writer(bus.Link(url), self.keys["in"], self._bus_failed)
        self.channel = bus.relay_channel(session, self.rid)
        #: Room → its channel, while clients here are in it (or joining it).
        self.channels: dict[str, Channel] = {}
        self.subscriber: bus.Subscriber | None = None
        self.owner_alive = False
        self._owner: bytes | None = None  # the owner instance whose entries we read
        self._next: dict[bytes, int] = {}  # per channel, the number expected next from it
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Check Redis, then read the bus and beat."""
        await bus.ping(self.redis, self.url)
        self.subscriber = await self._subscribe()
        await self._beat()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch()), loop.create_task(self._heartbeat())]

    async def close(self) -> None:
        """Close the clients, tell the owner, stop."""
        for client in list(self.clients.values()):
            await client.conn.close(RESYNC, "this relay stops: reconnect")
        from redis.exceptions import RedisError

        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=bus.CLOSE_WITHIN)
        try:  # bounded: an unreachable Redis must not keep the process from exiting
            await asyncio.wait_for(self.inbox.drain(), bus.CLOSE_WITHIN)
            await asyncio.wait_for(self.redis.hdel(self.keys["relays"], self.id), bus.CLOSE_WITHIN)
        except (TimeoutError, OSError, RedisError) as exc:
            log.warning("the owner may not have heard that this relay's clients left: %s", exc)
        with contextlib.suppress(TimeoutError, OSError, RedisError):
            await asyncio.wait_for(self.redis.aclose(), bus.CLOSE_WITHIN)
        if self.subscriber is not None:
            self.subscriber.close()
        self.inbox.close()

    def resync(self, why: str) -> None:
        """Close every client with 1012 (they reconnect and resync): something was missed."""
        if self.clients:
            log.warning("closing %d client(s) to resync: %s", len(self.clients), why)
        for client in list(self.clients.values()):
            if not client.refuse(RESYNC, "reconnect to resync"):
                client.conn.close_soon(RESYNC, "reconnect to resync")

    def _bus_failed(self, exc: Exception) -> None:
        self.resync(f"writing to Redis failed: {exc}")

    # -- the bus --------------------------------------------------------------------------

    async def _subscribe(self) -> bus.Subscriber:
        """A new subscriber, subscribed to this relay's channel and its rooms'."""
        subscriber = await bus.Subscriber.open(self.url, self._received)
        try:
            channels = list(self.channels.values())
            await asyncio.gather(subscriber.subscribe(self.channel), *(subscriber.subscribe(c.name) for c in channels))
        except BaseException:
            subscriber.close()
            raise
        for channel in channels:
            if not channel.ready.done() or channel.ready.exception() is not None:
                channel.ready = asyncio.get_running_loop().create_future()
                channel.ready.set_result(None)
        return subscriber

    async def _watch(self) -> None:
        """Keep the subscription: when its connection ends, what was published meanwhile
        is gone, so the clients resync and a new connection subscribes again."""
        from redis.exceptions import RedisError

        while True:
            if self.subscriber is not None:
                await self.subscriber.lost
                self.subscriber = None
                self.resync("the connection to Redis was lost")
                self._owner = None
                self._next.clear()
            try:
                self.subscriber = await self._subscribe()
            except (RedisError, OSError) as exc:
                log.warning("subscribing in Redis failed: %s", exc)
                await asyncio.sleep(0.5)

    async def _join(self, room: str) -> None:
        """Subscribe to `room`'s channel, or count one more client of it; returns once
        the subscription holds (ConnectionError if Redis is unreachable)."""
        channel = self.channels.get(room)
        if channel is None:
            name = bus.room_channel(self.session, room)
            if self.subscriber is None:
                ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                ready.set_exception(ConnectionError("the connection to Redis was lost"))
            else:
                ready = asyncio.ensure_future(self.subscriber.subscribe(name))
            ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # the joiners see it
            channel = self.channels[room] = Channel(name, ready)
        channel.users += 1
        await asyncio.shield(channel.ready)

    def _leave(self, room: str) -> None:
        """One client fewer in `room`: the last one unsubscribes."""
        channel = self.channels.get(room)
        if channel is not None:
            channel.users -= 1
            if channel.users <= 0:
                del self.channels[room]
                if self.subscriber is not None:
                    self.subscriber.unsubscribe(channel.name)

    def _received(self, messages: list[bus.Message]) -> None:
        """What one read of the subscription brought, in the owner's order."""
        posted: list[Connection] = []
        for channel, data in messages:
            if data is None:  # subscribed from here: the numbering there starts afresh
                self._next.pop(channel, None)
            else:
                self._dispatch(channel, bus.unpack(data), posted)
        for conn in posted:
            conn.flush()

    def _dispatch(self, channel: bytes, entry: bus.Entry, posted: list[Connection]) -> None:
        owner = entry.get(b"o", b"")
        number = int(entry.get(b"n", b"0"))
        if owner != self._owner:
            if self._owner is not None:
                self.resync("the owner's process restarted")
                self._next.clear()
            self._owner = owner
        else:
            expected = self._next.get(channel)
            if expected is not None and number != expected:
                self.resync(f"missed {number - expected} message(s) of the owner")
        self._next[channel] = number + 1
        kind = entry.get(b"t")
        if kind == b"b":
            sender = entry.get(b"s", b"")
            for conn, me in self.rooms.get(bus.text(entry, b"r"), {}).items():
                if me != sender and conn.post(entry[b"f"]):
                    posted.append(conn)
            return
        if channel != self.channel:
            return
        client = self.clients.get(int(entry.get(b"c", b"0")))
        if client is None:
            return
        if kind == b"d":
            client.conn.enqueue(entry[b"f"])
        elif kind == b"k":
            self.rooms.setdefault(client.room, {})[client.conn] = self.rid + b":" + str(client.cid).encode()
            if not client.admitted.done():
                client.admitted.set_result(True)
        elif kind == b"x":
            code, why = int(entry.get(b"code", b"1000")), bus.text(entry, b"why")
            if not client.refuse(code, why):
                client.conn.close_soon(code, why)

    async def _heartbeat(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await asyncio.sleep(bus.BEAT)
            try:
                await self._beat()
            except (RedisError, OSError) as exc:
                log.warning("the relay's heartbeat failed: %s", exc)

    async def _beat(self) -> None:
        """Say this relay is alive (and how far it read); note whether the owner is."""
        beat = {
            "url": self.public_url,
            "clients": len(self.clients),
            "pid": os.getpid(),
            "at": time.time(),
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys["relays"], self.id, json.dumps(beat))
        pipe.expire(self.keys["relays"], int(bus.STALE * 6))
        pipe.exists(self.keys["owner"])
        alive = bool((await pipe.execute())[-1])
        if self.owner_alive and not alive:
            self.resync("the owner's process stopped")
        self.owner_alive = alive

    # -- clients --------------------------------------------------------------------------

    async def room_socket(self, request: web.Request) -> web.StreamResponse:
        """`WS /rooms/{room}` as the owner serves it, through the bus."""
        if not origin_allowed(request):
            raise ForbiddenError("cross-site WebSocket refused")
        limits = self.limits
        ws = web.WebSocketResponse(max_msg_size=limits.max_message_bytes, autoping=False, compress=False)
        await ws.prepare(request)
        if not self.owner_alive:
            await ws.close(code=RESYNC, message=b"the session's owner is not running: try again soon")
            return ws
        room = request.match_info["room"]
        transport = AiohttpTransport(ws, request.transport, limits.ping_every)
        name = request.query.get("name", "")[:80]
        conn = Connection(transport, Participant(name=name, email="", role="relayed"), limits)
        client = Client(next(self.numbers), room, conn)
        cid = str(client.cid).encode()
        self.clients[client.cid] = client
        base: bus.Fields = {"r": self.rid, "c": cid}
        try:
            try:
                await self._join(room)
            except ConnectionError:
                await conn.close(RESYNC, "the session's Redis is not reachable: try again soon")
                return ws
            self.inbox.add(
                {
                    **base,
                    "t": "o",
                    "room": room,
                    "token": request_token(request) or "",
                    "name": request.query.get("name", ""),
                    "email": request.query.get("email", ""),
                    "client": request.query.get("client", ""),  # "join": an `rtc join` mirror
                }
            )
            try:
                admitted = await asyncio.wait_for(asyncio.shield(client.admitted), ADMIT_WITHIN)
            except TimeoutError:
                client.refuse(RESYNC, "the session's owner did not answer: try again")
                admitted = False
            if not admitted:
                await conn.close(*client.refusal)
                return ws
            transport.keep_alive()

            head = bus.pack({**base, "t": "m"})  # the same for each of its frames
            add, field = self.inbox.add_packed, bus.field

            async def deliver(frame: bytes) -> None:
                add(head + field(b"f", frame))

            await read_frames(ws, transport, conn, limits, deliver)
        finally:
            transport.stop_keep_alive()
            del self.clients[client.cid]
            members = self.rooms.get(room)
            if members is not None:
                members.pop(conn, None)
                if not members:
                    del self.rooms[room]
            self._leave(room)
            self.inbox.add({**base, "t": "c"})
            await conn.close(ws.close_code or CLOSE_CODES["NORMAL"], "")
        return ws


def make_app(relay: Relay) -> web.Application:
    """The relay's application: the rooms' WebSocket endpoint."""
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/rooms/{room:.+}", relay.room_socket)
    return app


@contextlib.asynccontextmanager
async def serving_relay(
    url: str, session: str, host: str, port: int, limits: Limits = DEFAULT
) -> AsyncIterator[tuple[Relay, int]]:
    """Run a relay of `session` through the Redis at `url` on host:port for the block."""
    relay = Relay(bus.connect(url), url, session, limits)
    await relay.start()
    runner = web.AppRunner(make_app(relay), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    relay.public_url = f"ws://{host}:{bound}"
    try:
        yield relay, bound
    finally:
        await relay.close()
        await runner.cleanup()
