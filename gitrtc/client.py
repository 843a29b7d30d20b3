"""A y-websocket client over aiohttp: one room, one pycrdt doc kept in sync with it.

Used by `rtc join` (the mirror: `follow` reconnects by itself), by the tests (a real
client) and by the benchmarks' load generator (`send_local=False`: it sends its own
updates, and the read loop does nothing per message it does not need).

Remote updates are applied in a transaction whose origin is the client's `RemoteSync`;
the doc's observer decides from that origin alone: a remote change is reported
(`on_remote_change`), any other transaction (the program's own edits, a `DiskMerge`) is
sent. An edit made while disconnected stays in the doc and goes out in the next
handshake (the server's step 1 asks for what it lacks).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Self

import aiohttp
from pycrdt import Doc, TransactionEvent

from . import protocol
from .errors import CLOSE_CODES, ProtocolError, RequestError, RtcError
from .origins import RemoteSync

log = logging.getLogger(__name__)

#: Close codes a client acts on (docs/architecture.md, "Close codes").
CLOSE_ENDED = CLOSE_CODES["ENDED"]  # the session ended, or its epoch changed
#: Bad token, not allowed / kicked, unknown room: reconnecting would not help.
CLOSE_REFUSED = frozenset({CLOSE_CODES["UNAUTHORIZED"], CLOSE_CODES["FORBIDDEN"], CLOSE_CODES["UNKNOWN_ROOM"]})

_CLOSING = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


def awareness_update(client_id: int, clock: int, state: dict[str, Any] | None) -> bytes:
    """A y-protocols awareness update for one client (`None`: it left)."""
    data = json.dumps(state).encode()
    return (
        protocol.write_var_uint(1)
        + protocol.write_var_uint(client_id)
        + protocol.write_var_uint(clock)
        + protocol.write_var_uint(len(data))
        + data
    )


def _undecodable(exc: Exception) -> ProtocolError:
    return ProtocolError(f"the server sent an update that cannot be applied ({exc})")


class RoomClient:
    """One room's doc synced over a WebSocket (sync step 1/2, updates, awareness).

    `connect()` + `close()` (or `async with`) for a client that lives as long as one
    connection; `run(http)` to read one connection to its end; `follow(http)` to stay
    connected, reconnecting with back-off, until the session ends or refuses us.
    With `send_local=False` nothing is observed or sent by itself, and remote updates are
    applied untagged: the caller sends what it makes (`send`), as the load generator does.
    `apply=False` counts remote updates without applying them (after the first sync).
    """

    def __init__(
        self,
        url: str,
        doc: Doc[Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        send_local: bool = True,
        apply: bool = True,
        heartbeat: float | None = None,
        max_msg_size: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.ssl_context = ssl_context
        self.max_msg_size = max_msg_size  # 0: no limit
        self.doc = doc if doc is not None else Doc()
        self.headers = dict(headers or {})
        self.heartbeat = heartbeat
        self.apply = apply
        self.origin = RemoteSync()
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.updates = 0  # remote updates received (after the first sync)
        #: After each remote update frame (the load generator times arrivals here).
        self.on_update: Callable[[RoomClient], None] | None = None
        #: After a remote transaction changed the doc (the mirror writes the file).
        self.on_remote_change: Callable[[], None] | None = None
        #: Every frame that is not SYNC (awareness, auth, query-awareness), decoded and raw.
        self.on_message: Callable[[protocol.Message, bytes], None] | None = None
        #: Given each remote update before it is applied; what it returns runs after (a
        #: notebook's check of cell deletions, `celldeletes.watch_remote_deletes`).
        self.around_remote: Callable[[bytes], Callable[[], None] | None] | None = None
        #: Every event the server pushes on the request channel (`{"event", "ok", "data"}`).
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._request_ids = itertools.count(1)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._own_http: aiohttp.ClientSession | None = None
        self._reader: asyncio.Task[int | None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._awareness_clock = 0
        self._remote = hash(self.origin)  # what the observer compares a transaction's origin with
        self._sub = self.doc.observe(self._observe) if send_local else None

    # -- one connection ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(
        self, http: aiohttp.ClientSession | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Open the connection and start reading it in a task (`close()` ends both)."""
        if http is None:
            http = self._own_http = aiohttp.ClientSession()
        await self._open(http, headers)
        self._reader = asyncio.get_running_loop().create_task(self._read(self.ws))  # type: ignore[arg-type]

    async def run(self, http: aiohttp.ClientSession, ready: asyncio.Event | None = None) -> int | None:
        """Connect, sync and apply what arrives until the connection closes; its close code."""
        await self._open(http, None)
        if ready is not None:
            ready.set()
        assert self.ws is not None
        async with self.ws:  # closed when the read ends or the task is cancelled
            return await self._read(self.ws)

    async def _open(self, http: aiohttp.ClientSession, headers: Mapping[str, str] | None) -> None:
        self.closed.clear()
        self.close_code, self.close_reason = None, ""
        self.ws = await http.ws_connect(
            self.url,
            headers={**self.headers, **(headers or {})},
            max_msg_size=self.max_msg_size,
            heartbeat=self.heartbeat,
            ssl=self.ssl_context if self.ssl_context is not None else True,
        )
        await self.ws.send_bytes(protocol.sync_step1(self.doc))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """The read loop (the load generator's hot path: keep it lean)."""
        binary = aiohttp.WSMsgType.BINARY
        sync, update, step2 = protocol.MessageType.SYNC, protocol.SyncType.UPDATE, protocol.SyncType.STEP2
        try:
            while True:
                msg = await ws.receive()
                if msg.type is not binary:
                    if msg.type in _CLOSING:
                        if msg.type is aiohttp.WSMsgType.CLOSE and isinstance(msg.extra, str):
                            self.close_reason = msg.extra
                        break
                    continue
                m = protocol.parse(msg.data)
                if m.type is sync:
                    if m.sync is update:
                        if self.apply:
                            self._apply(m.payload)
                        self.updates += 1
                        if self.on_update is not None:
                            self.on_update(self)
                    elif m.sync is step2:
                        self._apply(m.payload)
                        self.synced.set()
                    else:
                        await ws.send_bytes(protocol.sync_step2(self.doc.get_update(m.payload)))
                else:
                    if m.type is protocol.MessageType.REQUEST:
                        self._channel(msg.data)
                    if self.on_message is not None:
                        self.on_message(m, msg.data)
        finally:
            self.close_code = ws.close_code
            self.closed.set()
            for answer in self._answers.values():
                if not answer.done():
                    answer.set_result({"ok": False, "error": f"the session closed the connection ({ws.close_code})"})
        return self.close_code

    # -- the request channel (message type 100, `requests.py`) -------------------------

    async def request(self, service: str, op: str, args: dict[str, Any] | None = None, timeout: float = 120.0) -> Any:
        """Ask `service` to do `op`; its answer's data, or `RequestError` with the server's reason."""
        if self.ws is None or self.ws.closed:
            raise RequestError("not connected to the session")
        rid = next(self._request_ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[rid] = answer
        body = json.dumps({"id": rid, "service": service, "op": op, "args": args or {}})
        try:
            await self.send(protocol.request_frame(body.encode("utf-8")))
            message = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise RequestError(f"the session did not answer {service}.{op} in {timeout:.0f} s") from None
        finally:
            self._answers.pop(rid, None)
        if not message.get("ok"):
            raise RequestError(str(message.get("error") or f"{service}.{op} was refused"))
        return message.get("data")

    def _channel(self, frame: bytes) -> None:
        """An answer (matched to its request by id) or a pushed event (to `on_event`)."""
        try:
            body, _ = protocol.read_var_bytes(frame, 1)
            message = json.loads(body.decode("utf-8"))
        except (RtcError, ValueError) as exc:
            log.warning("a malformed request-channel message from the session: %s", exc)
            return
        if not isinstance(message, dict):
            return
        if "event" in message:
            if self.on_event is not None:
                self.on_event(message)
            return
        answer = self._answers.get(message["id"]) if isinstance(message.get("id"), int) else None
        if answer is not None and not answer.done():
            answer.set_result(message)

    def _apply(self, update: bytes) -> None:
        after = self.around_remote(update) if self.around_remote is not None else None
        self._apply_update(update)
        if after is not None:
            after()

    def _apply_update(self, update: bytes) -> None:
        if self._sub is None:  # nothing observes the origin: no transaction to tag
            try:
                self.doc.apply_update(update)
            except Exception as exc:  # pycrdt raises plain exceptions for an undecodable update
                raise _undecodable(exc) from exc
            return
        with self.doc.transaction(origin=self.origin):  # observers run as this exits
            try:
                self.doc.apply_update(update)
            except Exception as exc:
                raise _undecodable(exc) from exc

    def _observe(self, event: TransactionEvent) -> None:
        """Decide from the transaction's origin: remote → report it, anything else → send it."""
        if event.transaction.origin() == self._remote:  # type: ignore[attr-defined]  # not in pycrdt's stub
            if self.on_remote_change is not None:
                self.on_remote_change()
            return
        ws = self.ws
        if ws is None or ws.closed:
            return  # offline: the edit stays in the doc and goes out in the next handshake
        task = asyncio.get_running_loop().create_task(self._send_quietly(protocol.sync_update(event.update)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_quietly(self, frame: bytes) -> None:
        try:
            await self.send(frame)
        except (ConnectionError, RuntimeError):
            pass  # the connection dropped: the edit is in the doc and goes out on the next sync

    async def send(self, frame: bytes) -> None:
        """Send one raw frame on the open connection."""
        assert self.ws is not None, "not connected"
        await self.ws.send_bytes(frame)

    async def send_awareness(self, state: dict[str, Any] | None) -> None:
        """Announce this client's awareness state (`None`: leave), with the next clock."""
        self._awareness_clock += 1
        await self.send(protocol.awareness_frame(awareness_update(self.doc.client_id, self._awareness_clock, state)))

    async def wait_synced(self, timeout: float = 20) -> None:
        """Wait for the first sync step 2 from the server."""
        await asyncio.wait_for(asyncio.shield(self.synced.wait()), timeout)

    async def wait_closed(self, timeout: float = 20) -> int | None:
        """Wait for the connection to close; its close code."""
        await asyncio.wait_for(asyncio.shield(self.closed.wait()), timeout)
        return self.close_code

    async def flush(self) -> None:
        """Wait until the local edits made so far have been handed to the socket."""
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def close(self) -> None:
        """Send the edits still pending, close the connection, stop observing the doc."""
        await self.flush()  # edits made just before closing leave first, as a real client's would
        if self._sub is not None:
            self.doc.unobserve(self._sub)
            self._sub = None
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (TimeoutError, aiohttp.ClientError):
                self._reader.cancel()
        if self._own_http is not None:
            await self._own_http.close()

    # -- staying connected ------------------------------------------------------------

    async def follow(
        self,
        http: aiohttp.ClientSession,
        on_state: Callable[[str], None] = lambda state: None,
        first_delay: float = 0.5,
        max_delay: float = 10.0,
    ) -> int:
        """Connect, sync and follow; reconnect with back-off after a drop.

        Returns the close code that ends it: `CLOSE_ENDED` (the session ended; the reason
        is in `close_reason`) or one of `CLOSE_REFUSED`. `on_state` hears "connected" and
        "disconnected" (not for the end).
        """
        delay = first_delay
        while True:
            try:
                await self._open(http, None)
                delay = first_delay
                on_state("connected")
                assert self.ws is not None
                async with self.ws:
                    code = await self._read(self.ws)
            except (aiohttp.ClientError, OSError) as exc:
                code = None
                log.info("connection to %s failed: %s", self.url.split("?")[0], exc)
            finally:
                self.ws = None
            if code == CLOSE_ENDED or code in CLOSE_REFUSED:
                return code
            on_state("disconnected")
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
