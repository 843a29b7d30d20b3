"""Proxies to a session's HTTP and WebSocket endpoints, inside the Jupyter server.

- `gitrtc/proxy/...`: the session this server's checkout runs (found by its
  `session.json`), without Jupyter's authentication: gitrtc's token is what admits a
  participant, passed through unchanged (query and `Authorization`), so someone who
  holds the link joins through a JupyterHub's `/user/NAME/` path with no extra port.
- `gitrtc/remote/...?gitrtc_target=URL`: a session anywhere, for JupyterLab's "Join live
  session…"; Jupyter's authentication is required (it is not an open relay). A page on
  the Jupyter origin cannot talk to another origin's session itself: the session refuses
  WebSocket upgrades from a foreign `Origin` (design.md), and the proxy sends none.

WebSocket frames are relayed as they are, both ways; the session's close code and
reason (4401, 4403, 4404, 4410, ...) reach the browser unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

from jupyter_server.auth.decorator import allow_unauthenticated, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import httpclient, web
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, WebSocketHandler, websocket_connect

from ..sessionfile import find_gitdir, pid_alive, read_session_file

log = logging.getLogger(__name__)

#: Response headers of the session passed on to the browser.
PASSED_HEADERS = (
    "Content-Type",
    "Content-Security-Policy",
    "Cache-Control",
    "ETag",
    "Last-Modified",
    "Referrer-Policy",
    "X-Content-Type-Options",
)
#: The largest WebSocket message relayed (the session enforces its own, smaller, limit).
MAX_MESSAGE = 256 * 1024 * 1024
TARGET = "gitrtc_target"


class Target:
    """Where a request goes: the session's base URL (ending in `/`) and whether its
    certificate is checked (the own session's is its own, trusted by `session.json`)."""

    def __init__(self, base: str, verify: bool) -> None:
        self.base = base
        self.verify = verify


def local_target(root: str) -> Target | None:
    """The session this server's checkout runs, or None."""
    gitdir = find_gitdir(root)
    data = read_session_file(gitdir) if gitdir else None
    if not data or not isinstance(data.get("pid"), int) or not pid_alive(data["pid"]):
        return None
    scheme = "https" if str(data.get("url", "")).startswith("https:") else "http"
    return Target(f"{scheme}://127.0.0.1:{data.get('port')}/", verify=False)


def remote_target(url: str) -> Target | None:
    """A session URL given to "Join live session…" (its fragment and query dropped)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    path = parts.path if parts.path.endswith("/") else parts.path.rpartition("/")[0] + "/"
    return Target(f"{parts.scheme}://{parts.netloc}{path}", verify=True)


def _passed_request_headers(headers: Any) -> dict[str, str]:
    """The request headers the session needs: a gitrtc `Authorization: Bearer` (never
    Jupyter's own `token …` credential, which is not the session's business) and the type."""
    out = {}
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        out["Authorization"] = auth
    if "Content-Type" in headers:
        out["Content-Type"] = headers["Content-Type"]
    return out


class _Proxy(JupyterHandler):
    """An HTTP request forwarded to the session."""

    def target(self) -> Target | None:
        raise NotImplementedError

    def query(self) -> str:
        """The query, as given (minus the remote proxy's own parameter)."""
        pairs = [(k, v) for k, vs in self.request.query_arguments.items() if k != TARGET for v in vs]
        return "?" + urlencode([(k, v.decode()) for k, v in pairs]) if pairs else ""

    async def forward(self, path: str) -> None:
        target = self.target()
        if target is None:
            self.set_status(404)
            self.set_header("Content-Type", "application/json")
            self.finish({"error": "no gitrtc session is running here: start one with Share live… or rtc start"})
            return
        headers = _passed_request_headers(self.request.headers)
        request = httpclient.HTTPRequest(
            target.base + path + self.query(),
            method=self.request.method or "GET",
            headers=headers,
            body=self.request.body if self.request.method == "POST" else None,
            follow_redirects=False,
            validate_cert=target.verify,
            request_timeout=120,
        )
        try:
            answer = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as exc:
            answer = None
            reason = str(exc)
        if answer is None or answer.code == 599:
            self.set_status(502)
            self.set_header("Content-Type", "application/json")
            why = reason if answer is None else str(answer.error)
            self.finish({"error": f"cannot reach the gitrtc session at {target.base}: {why}"})
            return
        self.set_status(answer.code, answer.reason)
        self.clear_header("Content-Security-Policy")
        for name in PASSED_HEADERS:
            if name in answer.headers:
                self.set_header(name, answer.headers[name])
        self.finish(answer.body or b"")

    def check_xsrf_cookie(self) -> None:
        """gitrtc's token admits the request, not Jupyter's cookie: no XSRF to check."""


class LocalProxy(_Proxy):
    """`gitrtc/proxy/PATH`: this checkout's session."""

    def target(self) -> Target | None:
        return local_target(self.settings["gitrtc_root"])

    @allow_unauthenticated
    async def get(self, path: str) -> None:
        await self.forward(path)

    @allow_unauthenticated
    async def post(self, path: str) -> None:
        await self.forward(path)


class RemoteProxy(_Proxy):
    """`gitrtc/remote/PATH?gitrtc_target=URL`: a session elsewhere (Jupyter users only)."""

    def target(self) -> Target | None:
        return remote_target(self.get_query_argument(TARGET, ""))

    @web.authenticated
    async def get(self, path: str) -> None:
        await self.forward(path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self.forward(path)


class _RoomProxy(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """A room's WebSocket relayed to the session, frame for frame, close code included."""

    upstream: WebSocketClientConnection | None = None
    pump: asyncio.Task[None] | None = None

    def target(self) -> Target | None:
        raise NotImplementedError

    def query(self) -> str:
        pairs = [(k, v.decode()) for k, vs in self.request.query_arguments.items() if k != TARGET for v in vs]
        return "?" + urlencode(pairs) if pairs else ""

    async def relay(self, room: str) -> None:
        """Connect to the session first, then accept the browser's upgrade: a session that
        cannot be reached is an HTTP 502 for the upgrade, not a socket that opens and
        closes at once (which a client would take for a flapping connection)."""
        target = self.target()
        if target is None:
            raise web.HTTPError(404, "no gitrtc session is running here")
        base = "ws" + target.base.removeprefix("http")
        headers = {k: v for k, v in _passed_request_headers(self.request.headers).items() if k == "Authorization"}
        request = httpclient.HTTPRequest(
            base + "rooms/" + room + self.query(), headers=headers, validate_cert=target.verify, connect_timeout=20
        )
        try:
            self.upstream = await websocket_connect(request, max_message_size=MAX_MESSAGE)
        except (OSError, httpclient.HTTPClientError) as exc:
            log.info("gitrtc proxy: cannot reach %s: %s", target.base, exc)
            raise web.HTTPError(502, "cannot reach the gitrtc session") from None
        try:
            await WebSocketHandler.get(self, room)
        finally:
            if self.ws_connection is None:  # refused (origin, not an upgrade) or failed
                self.upstream.close()

    async def open(self, *args: Any, **kwargs: Any) -> None:
        if self.upstream is not None:
            self.pump = asyncio.ensure_future(self.pump_down(self.upstream))

    async def pump_down(self, upstream: WebSocketClientConnection) -> None:
        """The session's frames to the browser; its close (code and reason) too."""
        while True:
            message = await upstream.read_message()
            if message is None:
                break
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except WebSocketClosedError:
                upstream.close()
                return
        code = upstream.close_code
        self.close(code if code and code not in (1005, 1006) else 1011, upstream.close_reason or "")

    def on_message(self, message: str | bytes) -> None:
        if self.upstream is None:
            return
        try:
            self.upstream.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            # the session closed first (a refused token: 4401); `pump_down` relays its close.
            # Raising here would make tornado abort the browser's socket (1006) instead.
            return

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close(self.close_code if self.close_code and self.close_code < 1004 else 1000)


class LocalRoomProxy(_RoomProxy):
    """`WS gitrtc/proxy/rooms/ROOM`: a room of this checkout's session."""

    def target(self) -> Target | None:
        return local_target(self.settings["gitrtc_root"])

    @allow_unauthenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.relay(str(args[0]))


class RemoteRoomProxy(_RoomProxy):
    """`WS gitrtc/remote/rooms/ROOM?gitrtc_target=URL`: a room of a session elsewhere."""

    def target(self) -> Target | None:
        return remote_target(self.get_query_argument(TARGET, ""))

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.relay(str(args[0]))
