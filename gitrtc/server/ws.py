"""`WS /rooms/{room}`: the y-websocket endpoint, adapting aiohttp to `rooms.Connection`."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from aiohttp import WSMsgType, web

from ..errors import (
    CLOSE_CODES,
    DocumentError,
    ForbiddenError,
    ProtocolError,
    RtcError,
    StoreError,
    UnauthorizedError,
)
from ..limits import Limits
from ..origins import Participant
from ..protocol import MessageType
from ..rooms import Connection
from ..session import Session
from .auth import origin_allowed, request_token
from .ratelimit import RateLimit

log = logging.getLogger(__name__)

MAX_NAME = 80
#: Bytes buffered in a socket beyond which frames wait in the connection's queue instead.
WRITE_BUFFER_LIMIT = 256 * 1024
#: First bytes of y-websocket awareness and awareness-query messages (their own rate limit).
PRESENCE_MESSAGES = (bytes([MessageType.AWARENESS]), bytes([MessageType.QUERY_AWARENESS]))
#: RFC 6455: a final ping frame without payload.
PING_FRAME = b"\x89\x00"


def frame_header(length: int) -> bytes:
    """RFC 6455 header of one final, unmasked binary frame of `length` bytes."""
    if length < 126:
        return bytes((0x82, length))
    if length < 65536:
        return struct.pack("!BBH", 0x82, 126, length)
    return struct.pack("!BBQ", 0x82, 127, length)


class AiohttpTransport:
    """`rooms.Transport` over an aiohttp `WebSocketResponse`.

    `try_send` writes the frame to the socket itself (server frames are unmasked, and
    compression is off), skipping a coroutine and a task switch per message: fan-out to
    many readers is the server's hottest loop. It declines when the socket's buffer is
    full, and the connection's sender task then waits for the peer through aiohttp.
    """

    def __init__(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, ping_every: float = 20.0
    ) -> None:
        self.ws = ws
        self.transport = transport
        #: Seconds between pings. A peer that has not answered one by the next is dropped,
        #: so a dead or stuck peer goes within two periods.
        self.ping_every = ping_every
        #: The peer answered the last ping (set by the receive loop on a pong).
        self.answered = True
        self._pinger: asyncio.TimerHandle | None = None

    def keep_alive(self) -> None:
        """Ping the peer every `ping_every` seconds and drop it once it misses one.

        One timer per connection and nothing per message: aiohttp's own heartbeat reset a
        timer and scheduled a callback for every message received.
        """
        self._pinger = asyncio.get_running_loop().call_later(self.ping_every, self._ping)

    def stop_keep_alive(self) -> None:
        """No more pings (the connection is over)."""
        if self._pinger is not None:
            self._pinger.cancel()
            self._pinger = None

    def _ping(self) -> None:
        transport = self.transport
        if transport is None or self.ws.closed or transport.is_closing():
            self._pinger = None
            return
        if not self.answered:  # dead, or not reading: nothing to say goodbye to
            log.info("dropping a connection that did not answer a ping within %.0f s", self.ping_every)
            self._pinger = None
            transport.abort()
            return
        self.answered = False
        transport.write(PING_FRAME)
        self._pinger = asyncio.get_running_loop().call_later(self.ping_every, self._ping)

    def try_send(self, frames: list[bytes]) -> bool:
        """Write these binary frames now, in one write, if the socket's buffer has room."""
        transport = self.transport
        if (
            transport is None
            or self.ws.closed
            or transport.is_closing()
            or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT
        ):
            return False
        if len(frames) == 1:
            transport.write(frame_header(len(frames[0])) + frames[0])
        else:
            transport.write(b"".join([part for f in frames for part in (frame_header(len(f)), f)]))
        return True

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""
        await self.ws.send_bytes(data)

    async def close(self, code: int, reason: str) -> None:
        """Close with a code and a short reason."""
        await self.ws.close(code=code, message=reason.encode()[:123])


def participant_from(request: web.Request, role: str, invite: str | None = None) -> Participant:
    """Who the connection says it is (`name`, `email` query parameters), bounded in size; a
    personal token's name is the one it is bound to (an invite's, or the one given when
    joining with a shared link)."""
    return participant_of(request.query, role, invite)


def participant_of(query: Mapping[str, str], role: str, invite: str | None = None) -> Participant:
    """`participant_from` for the query parameters alone (a relay forwards them)."""
    name = invite or " ".join(query.get("name", "").split())[:MAX_NAME] or "Anonymous"
    email = query.get("email", "").strip()[:MAX_NAME]
    if email and ("@" not in email or any(c in email for c in "<> \n")):
        email = ""
    return Participant(name=name, email=email, role=role, invite=invite)


async def room_socket(request: web.Request, session: Session) -> web.StreamResponse:
    """Upgrade, authenticate, join the room, and pump messages until either side closes."""
    if not origin_allowed(request):
        raise ForbiddenError("cross-site WebSocket refused")
    limits = session.limits
    ws = web.WebSocketResponse(max_msg_size=limits.max_message_bytes, autoping=False, compress=False)
    await ws.prepare(request)
    grant = session.grant_for(request_token(request))
    if grant is None:
        await ws.close(code=UnauthorizedError.close_code, message=b"missing or wrong token")
        return ws
    name = request.match_info["room"]
    transport = AiohttpTransport(ws, request.transport, limits.ping_every)
    conn = Connection(transport, participant_from(request, *grant), limits)
    conn.mirror = request.query.get("client") == "join"
    try:
        room = await session.connect(name, conn)
    except (StoreError, DocumentError) as exc:  # the room could not be loaded
        session.event(str(exc))
        await conn.close(exc.close_code, "this file cannot be loaded: see rtc status")
        return ws
    except RtcError as exc:  # no such room, an earlier epoch's, the session ended
        await conn.close(exc.close_code, str(exc))
        return ws
    transport.keep_alive()
    try:
        await read_frames(ws, transport, conn, limits, partial(room.receive, conn))
    except ProtocolError as exc:
        log.info("closing %s's connection: %s", conn.participant.name, exc)
        await conn.close(exc.close_code, str(exc))
    except StoreError as exc:
        session.event(str(exc))
        await conn.close(exc.close_code, "the server cannot save edits right now")
    finally:
        transport.stop_keep_alive()
        session.disconnect(conn)
        await conn.close(ws.close_code or CLOSE_CODES["NORMAL"], "")
    return ws


async def read_frames(
    ws: web.WebSocketResponse,
    transport: AiohttpTransport,
    conn: Connection,
    limits: Limits,
    deliver: Callable[[bytes], Awaitable[None]],
) -> None:
    """A client's binary frames, rate limited (presence frames twice), each given to
    `deliver` until the socket or the connection closes; pings answered, a text frame
    refused (1003). The one read loop of a direct client and a relay's client."""
    spend = RateLimit(limits.rate, limits.burst).spend
    presence = RateLimit(limits.presence_rate, limits.presence_burst).spend
    binary = WSMsgType.BINARY
    async for msg in ws:
        if msg.type is binary:
            # per message: no coroutine for the rate limits, which wait only when they must
            data = msg.data
            delay = spend()
            if delay is not None:
                await asyncio.sleep(delay)
            if data[:1] in PRESENCE_MESSAGES:  # relayed to the whole room, or all of it sent back
                delay = presence()
                if delay is not None:
                    await asyncio.sleep(delay)
            if conn.closed:
                break
            await deliver(data)
        elif msg.type is WSMsgType.PONG:
            transport.answered = True
        elif msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is WSMsgType.TEXT:
            await conn.close(CLOSE_CODES["UNSUPPORTED"], "binary y-websocket messages only")
            break
        elif msg.type is WSMsgType.ERROR:
            log.info("connection of %s failed: %s", conn.participant.name, ws.exception())
            break
