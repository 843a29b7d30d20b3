"""What a peer without a token can hold, and which Host names the server answers to.

- Slowloris: a connection must send a whole request within `Limits.idle_timeout` of connecting
  or of its previous answer (aiohttp's `keepalive_timeout` runs from the connection's
  start and is not reset by a partial request, so one setting bounds both the header read
  and the idle keep-alive); one address may hold at most `Limits.pending_per_address`
  connections that have not yet shown a valid token (`Limits.pending_total` in all), the oldest
  closed beyond that; and the soft file descriptor limit is raised to the hard one at
  start.
- DNS rebinding: a page on a name the attacker controls that resolves to this machine is
  same-origin with it in the browser. Requests whose `Host` is a name the session did not
  give out are refused with 421 before any route (WebSocket upgrades included). IP
  literals are always fine: a browser sends one only to an origin that is that address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import resource
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler

from ..session import Session
from .auth import request_token

log = logging.getLogger(__name__)

#: Host names always answered (besides IP literals and the names in the session's URLs).
LOCAL_NAMES = frozenset({"localhost"})
#: A `Host` header: `[IPv6]` or a name/IPv4 address, then an optional port.
HOST = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))(?::[0-9]{1,5})?\Z")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConnectionGuard:
    """Counts the connections that have not shown a valid token; beyond `per_address` from
    one address (or `total` in all), the oldest of them is closed to make room.

    Closing the oldest rather than refusing the newest keeps the server reachable for
    the people a flood shares an address with (loopback, a NAT): their request follows
    their connect within milliseconds, while a flood's connections wait to be dropped.
    aiohttp has no hook for a connection before its first request: the guard wraps the
    two calls every `RequestHandler` makes to its `web.Server` on connect and disconnect.
    """

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        #: Waiting connections in the order they came, in all and per address.
        self._pending: dict[RequestHandler, tuple[str, asyncio.Transport]] = {}
        self._by_address: dict[str, dict[RequestHandler, None]] = {}
        #: Connections closed to make room.
        self.evicted = 0

    def attach(self, server: web.Server) -> None:
        """Watch the connections `server` (a runner's) accepts."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._connected(handler, transport)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self.authenticated(handler)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _connected(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        same = self._by_address.get(address)
        if same is not None and len(same) >= self.per_address:
            self._evict(next(iter(same)))
        if len(self._pending) >= self.total:
            self._evict(next(iter(self._pending)))
        self._pending[handler] = (address, transport)
        self._by_address.setdefault(address, {})[handler] = None

    def _evict(self, handler: RequestHandler) -> None:
        address, transport = self._pending[handler]
        self.evicted += 1
        if self.evicted in (1, 100, 10_000):
            log.warning(
                "closing connections that sent no valid token (%d so far; the last from %s)", self.evicted, address
            )
        self.authenticated(handler)
        transport.abort()

    def authenticated(self, handler: RequestHandler) -> None:
        """`handler`'s connection showed a valid token (or is gone): it no longer counts."""
        found = self._pending.pop(handler, None)
        if found is not None:
            same = self._by_address[found[0]]
            del same[handler]
            if not same:
                del self._by_address[found[0]]

    @property
    def pending(self) -> int:
        """Connections that have not shown a valid token."""
        return len(self._pending)


GUARD = web.AppKey("guard", ConnectionGuard)
#: The host the server was told to listen on (`--host`), answered before the URLs exist.
BOUND_HOST = web.AppKey("bound_host", str)


def allowed_hosts(session: Session, bound: str | None = None) -> set[str]:
    """The host names this session answers to: its URLs', the bound one, `localhost`."""
    names = set(LOCAL_NAMES)
    if bound:
        names.add(bound.lower())
    for url in (session.url, session.readonly_url):
        name = urlsplit(url).hostname if url else None
        if name:
            names.add(name.lower())
    return names


def host_allowed(host: str | None, names: set[str]) -> bool:
    """Whether a `Host` header is one of `names` or an IP literal (any port)."""
    if host is None:  # HTTP/1.0 and programs: no browser, no rebinding
        return True
    match = HOST.match(host)
    if match is None:
        return False
    name = match.group(1) or match.group(2)
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name.lower().rstrip(".") in names


def make_host_check(session: Session) -> Middleware:
    """Middleware: refuse a `Host` the session did not give out (421, JSON)."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not host_allowed(host, allowed_hosts(session, request.app.get(BOUND_HOST))):
            return web.json_response(
                {"error": f"this server does not answer for {(host or '')[:80]!r}: use the link rtc start printed"},
                status=421,
            )
        return await handler(request)

    return check_host


def make_token_mark(session: Session) -> Middleware:
    """Middleware: a request with a valid token takes its connection off the guard's count."""

    @web.middleware
    async def mark_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        guard = request.app.get(GUARD)
        if guard is not None and session.role_for(request_token(request)) is not None:
            guard.authenticated(request.protocol)
        return await handler(request)

    return mark_token


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard one; return the new soft limit
    (`resource.RLIM_INFINITY`, -1, when unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and soft >= hard):
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # macOS refuses more than OPEN_MAX under "unlimited"
        log.info("cannot raise the open-files limit from %s: %s", soft, exc)
        return soft
    return target
