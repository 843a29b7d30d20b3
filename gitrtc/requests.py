"""The attributed request channel: small JSON requests and answers on a room's connection.

One channel per room, over the room's own y-websocket connection: a frame of message
type 100 (`protocol.MessageType.REQUEST`, after y-protocols' 0 sync, 1 awareness, 2 auth,
3 query-awareness) carrying one UTF-8 JSON object as var-bytes. A client asks

    {"id": 7, "service": "kernel", "op": "run", "args": {...}}

and the server answers once, with the same id,

    {"id": 7, "ok": true, "data": {...}}   or   {"id": 7, "ok": false, "error": "one line"}

and pushes events to one or all of the room's connections (no id):

    {"event": "kernel.cell", "ok": true, "data": {...}}

Every request is attributed to the connection's participant (role and invite come from
its token, never from the request). A bad request (not JSON, too big, unknown service or
op, refused by permission, too many at once) is answered with an error and the
connection is kept. Requests run as tasks, so a slow one (starting a kernel) never holds
up the connection's edits. This is the seam later back-end services will plug into.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from . import protocol
from .errors import ProtocolError, RequestError
from .limits import DEFAULT, Limits

if TYPE_CHECKING:
    from .rooms import Connection, Room

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Call:
    """One decoded request, with the room and connection it came from."""

    room: Room
    conn: Connection
    id: int | str | None
    service: str
    op: str
    args: dict[str, Any]


class Service(Protocol):
    """A back-end service reachable through the channel."""

    async def call(self, call: Call) -> Any:
        """Do `call.op`; return JSON-able data, or raise `RequestError` to refuse."""
        ...

    def disconnected(self, conn: Connection) -> None:
        """`conn` is gone (free what belonged to it)."""
        ...

    async def close(self) -> None:
        """The session is ending: stop everything."""
        ...


def encode(message: dict[str, Any]) -> bytes:
    """A REQUEST frame carrying `message` as compact JSON."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return protocol.request_frame(body.encode("utf-8"))


def push(conn: Connection, event: str, data: Any) -> None:
    """Send an event to one connection (after everything already sent to it)."""
    conn.enqueue(encode({"event": event, "ok": True, "data": data}))


def broadcast(room: Room, event: str, data: Any) -> None:
    """Send an event to every connection of `room`."""
    frame = encode({"event": event, "ok": True, "data": data})
    for conn in list(room.connections):
        conn.enqueue(frame)


def decode(payload: bytes, max_bytes: int = DEFAULT.request_bytes) -> tuple[int | str | None, str, str, dict[str, Any]]:
    """(id, service, op, args) of a request frame's payload (its JSON at most `max_bytes`);
    `RequestError` if it is not one."""
    try:
        body, end = protocol.read_var_bytes(payload, 0)
    except ProtocolError as exc:
        raise RequestError(f"malformed request: {exc}") from None
    if end != len(payload):
        raise RequestError("malformed request: bytes after the JSON")
    if len(body) > max_bytes:
        raise RequestError(f"request too big: at most {_size(max_bytes)}")
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestError("malformed request: not UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise RequestError("malformed request: not a JSON object")
    rid = message.get("id")
    short = isinstance(rid, str) and len(rid) <= 64
    if not (rid is None or short or (isinstance(rid, int) and not isinstance(rid, bool))):
        raise RequestError("malformed request: id must be a short string or an integer")
    service, op, args = message.get("service"), message.get("op"), message.get("args", {})
    if not isinstance(service, str) or not isinstance(op, str):
        raise _Answered(rid, "malformed request: service and op must be strings")
    if not isinstance(args, dict):
        raise _Answered(rid, "malformed request: args must be a JSON object")
    return rid, service, op, args


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} bytes"


class _Answered(RequestError):
    """A refusal of a request whose id is known."""

    def __init__(self, rid: int | str | None, message: str) -> None:
        super().__init__(message)
        self.rid = rid


class _Bucket:
    """A token bucket per connection; an empty one refuses (requests are not edits)."""

    __slots__ = ("burst", "in_flight", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.in_flight = 0

    def take(self) -> bool:
        """Use one token; False if none is left."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class RequestChannel:
    """Dispatches a session's requests to its services and answers them (bounded by the
    session's `Limits`: request size, rate, burst, requests in flight)."""

    def __init__(self, limits: Limits = DEFAULT) -> None:
        self.limits = limits
        self.services: dict[str, Service] = {}
        self._buckets: weakref.WeakKeyDictionary[Connection, _Bucket] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, name: str, service: Service) -> None:
        """Make `service` reachable as `name`."""
        self.services[name] = service

    async def receive(self, room: Room, conn: Connection, payload: bytes) -> None:
        """(Room hook) Handle one REQUEST frame's payload: answer at once or start a task."""
        rid: int | str | None = None
        try:
            rid, name, op, args = decode(payload, self.limits.request_bytes)
            service = self.services.get(name)
            if service is None:
                raise RequestError(f"unknown service {name[:40]!r}: this server offers {sorted(self.services)}")
            bucket = self._buckets.get(conn)
            if bucket is None:
                bucket = self._buckets[conn] = _Bucket(self.limits.request_rate, self.limits.request_burst)
            if not bucket.take():
                raise RequestError("too many requests: slow down")
            if bucket.in_flight >= self.limits.requests_in_flight:
                raise RequestError("too many requests at once: wait for the answers")
        except _Answered as exc:
            conn.enqueue(encode({"id": exc.rid, "ok": False, "error": str(exc)}))
            return
        except RequestError as exc:
            conn.enqueue(encode({"id": rid, "ok": False, "error": str(exc)}))
            return
        bucket.in_flight += 1
        call = Call(room, conn, rid, name, op, args)
        task = asyncio.get_running_loop().create_task(self._run(service, call, bucket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, service: Service, call: Call, bucket: _Bucket) -> None:
        try:
            data = await service.call(call)
            answer = {"id": call.id, "ok": True, "data": data}
        except RequestError as exc:
            answer = {"id": call.id, "ok": False, "error": str(exc)}
        except Exception as exc:  # a bug: logged in full, and the asker is told something failed
            log.exception("request %s.%s failed", call.service, call.op)
            answer = {"id": call.id, "ok": False, "error": f"{call.service}.{call.op} failed on the server: {exc}"}
        finally:
            bucket.in_flight -= 1
        call.conn.enqueue(encode(answer))

    def disconnected(self, conn: Connection) -> None:
        """(Session hook) A connection is gone: tell every service."""
        for service in self.services.values():
            service.disconnected(conn)

    async def close(self) -> None:
        """Stop every service and the requests still running."""
        for service in self.services.values():
            await service.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
