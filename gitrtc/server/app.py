"""The aiohttp application: routes, security headers, and running it on a socket."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from ..documents.notebook import NotebookCodec
from ..errors import BadRequestError, PortBusyError, RtcError, UnknownRoomError
from ..session import EndResult, Session
from . import files, guard, views
from .auth import request_token, require_role
from .control_socket import remove_control_socket, serve_control_socket
from .plugins import plugin_file
from .ws import room_socket

log = logging.getLogger(__name__)

SESSION = web.AppKey("session", Session)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' ws: wss:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC = Path(str(resources.files("gitrtc") / "static"))
NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>gitrtc</title>
<p>The browser client is not built. Build it with <code>npm ci && npm run build</code> in
<code>web/</code> (or reinstall gitrtc), then reload.</p>"""


@web.middleware
async def rtc_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer any `RtcError` a handler raises as `{"error": message}` with the error
    class's own `http_status` (the one table in `errors.py`)."""
    try:
        return await handler(request)
    except RtcError as exc:
        return web.json_response({"error": str(exc)}, status=exc.http_status)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response carries: no referrer, no sniffing, no framing (set as it
    is prepared, so an answer sent before its handler returns has them too)."""
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")


async def index(request: web.Request) -> web.StreamResponse:
    """The browser client's page (the token stays in the fragment, never in a path)."""
    page = STATIC / "index.html"
    body = page.read_text() if page.is_file() else NOT_BUILT
    return web.Response(text=body, content_type="text/html", headers={"Content-Security-Policy": CSP})


@functools.cache
def _static_names() -> frozenset[str]:
    """The built client's file names (listed once: the client does not change while serving)."""
    return frozenset(p.name for p in STATIC.iterdir() if p.is_file()) if STATIC.is_dir() else frozenset()


async def static_file(request: web.Request) -> web.StreamResponse:
    """A file of the built client; names are checked against the folder's own listing."""
    name = request.match_info["name"]
    if name not in _static_names() or name.startswith("."):
        raise web.HTTPNotFound()
    # revalidated with the ETag FileResponse sends; chunk names are content-hashed anyway
    return web.FileResponse(STATIC / name, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


async def api_session(request: web.Request) -> web.Response:
    """`GET /api/session`: the session as the caller's role sees it."""
    session = request.app[SESSION]
    require_role(request, session)
    role, name = session.grant_for(request_token(request)) or ("viewer", None)
    lazy = request.query.get("tree") == "lazy"  # the browser: a large tree comes from /api/tree
    return web.json_response(views.describe(session, role, name, lazy=lazy))


async def api_join(request: web.Request) -> web.Response:
    """`POST /api/join {name}` (any valid token): the caller's own credential, a personal
    token bound to `name` in place of a shared link's (see `Access.join`)."""
    session = request.app[SESSION]
    require_role(request, session)
    try:
        body = json.loads(await request.read()) if request.can_read_body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequestError("the body must be JSON") from None
    name = body.get("name") if isinstance(body, dict) else None
    token, bound = await session.join(request_token(request), name if isinstance(name, str) else "")
    role = session.role_for(token)
    return web.json_response({"token": token, "name": bound, "role": role})


async def api_original(request: web.Request) -> web.Response:
    """`GET /api/original/{room}`: a shared file's bytes at the start of the session.

    `rtc join` needs them to read the room exactly as the owner's codec does.
    """
    session = request.app[SESSION]
    require_role(request, session)
    if request.match_info["room"] in session.files:
        await session.room(request.match_info["room"])  # a large tree's file is read at its first opening
    data = session.originals.get(request.match_info["room"])
    if data is None or request.match_info["room"] not in session.files:
        raise UnknownRoomError("no such file room")
    return web.Response(body=data, content_type="application/octet-stream")


async def api_format(request: web.Request) -> web.Response:
    """`GET /api/format/{room}`: the file a shared notebook is written like now (the
    original, or the last save merged from the owner's disk), so that `rtc join` writes
    its folder byte for byte like the owner's file (`joinformat`)."""
    session = request.app[SESSION]
    require_role(request, session)
    name = request.match_info["room"]
    if name not in session.files:
        raise UnknownRoomError("no such file room")
    await session.room(name)  # a large tree's file is read at its first opening
    codec = session.codecs.get(name)
    data = codec.format_bytes() if isinstance(codec, NotebookCodec) else session.originals.get(name)
    if data is None:
        raise UnknownRoomError("no such file room")
    return web.Response(body=data, content_type="application/octet-stream")


async def api_status(request: web.Request) -> web.Response:
    """`GET /api/status` (owner): URLs, files with save state, participants, store size."""
    session = request.app[SESSION]
    require_role(request, session, "owner")
    return web.json_response(await views.status(session))


async def api_stop(request: web.Request) -> web.Response:
    """`POST /api/stop` (owner): end the session, commit, answer with the result."""
    body = await owner_body(request)
    commit = body.get("commit", True) is not False
    message = _text(body.get("message"))
    onto = _text(body.get("onto_branch"))
    take_current = body.get("take_current") is True
    answered: list[web.Response] = []

    async def answer_now(result: EndResult) -> None:
        """The commit is on the branch: answer before the goodbyes to every client."""
        response = result_json(result)
        await response.prepare(request)
        await response.write_eof()
        answered.append(response)

    try:
        result = await request.app[SESSION].end(
            message, commit=commit, onto_branch=onto, on_commit=answer_now, take_current=take_current
        )
    except RtcError as exc:
        if answered:  # the commit was made and reported; what failed after is in the log
            log.error("after the session's commit: %s", exc)
            return answered[0]
        raise
    return answered[0] if answered else result_json(result)


async def owner_body(request: web.Request) -> dict[str, object]:
    """The JSON body of an owner request (after checking the owner token)."""
    require_role(request, request.app[SESSION], "owner")
    try:  # the bytes, not request.json(): its charset lookup parses headers with the email
        # package, 25 ms of the first owner request (the one rtc stop makes)
        body = json.loads(await request.read()) if request.can_read_body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequestError("the body must be JSON") from None
    return body if isinstance(body, dict) else {}


def result_json(result: EndResult) -> web.Response:
    """A commit/end result as JSON; 409 when nothing could be committed."""
    return web.json_response(
        {
            "commit": result.commit,
            "branch": result.branch,
            "files": list(result.files),
            "coauthors": list(result.coauthors),
            "message": result.message,
            "ended": result.ended,
        },
        status=200 if result.ended else 409,
    )


def _text(value: object) -> str | None:
    """A JSON body's string field, or None if it is absent or not a string."""
    return value if isinstance(value, str) else None


async def api_commit(request: web.Request) -> web.Response:
    """`POST /api/commit` (owner): one commit of the current state; the session goes on."""
    body = await owner_body(request)
    take_current = body.get("take_current") is True
    return result_json(await request.app[SESSION].commit_now(_text(body.get("message")), take_current))


async def api_invite(request: web.Request) -> web.Response:
    """`POST /api/invite` (owner) `{name, viewer, no_run}`: a personal link."""
    body = await owner_body(request)
    session = request.app[SESSION]
    token = await session.invite(
        str(body.get("name", "")), body.get("viewer") is True, no_run=body.get("no_run") is True
    )
    return web.json_response({"token": token, "url": session.url.split("#")[0] + f"#t={token}"})


async def api_kick(request: web.Request) -> web.Response:
    """`POST /api/kick` (owner) `{name}`: revoke that person's links, close their connections."""
    body = await owner_body(request)
    closed = await request.app[SESSION].kick(str(body.get("name", "")))
    return web.json_response({"closed": closed})


async def room_endpoint(request: web.Request) -> web.StreamResponse:
    """`WS /rooms/{room}`."""
    return await room_socket(request, request.app[SESSION])


def make_app(session: Session) -> web.Application:
    """The application serving one session (its `Limits` are the session's)."""
    app = web.Application(
        client_max_size=1024 * 1024,
        middlewares=[guard.make_host_check(session), guard.make_token_mark(session), rtc_errors],
    )
    app.on_response_prepare.append(security_headers)
    app[SESSION] = session
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/plugins/{plugin}/{name}", plugin_file)
    app.router.add_get("/api/session", api_session)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/original/{room}", api_original)
    app.router.add_get("/api/format/{room}", api_format)
    app.router.add_post("/api/stop", api_stop)
    app.router.add_post("/api/commit", api_commit)
    app.router.add_post("/api/invite", api_invite)
    app.router.add_post("/api/kick", api_kick)
    app.router.add_post("/api/join", api_join)
    files.add_routes(app, session)
    app.router.add_get("/rooms/{room:.+}", room_endpoint)
    return app


async def serve(
    session: Session,
    host: str,
    port: int,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> tuple[web.AppRunner, int]:
    """Start serving; return the runner (to clean up) and the bound port."""
    context = None
    if certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise RtcError(
                f"cannot use the certificate {certfile} ({exc.strerror or exc}): check --certfile and --keyfile"
            ) from None
    files = guard.raise_fd_limit()
    app = make_app(session)
    app[guard.BOUND_HOST] = host
    limits = session.limits
    total = limits.pending_total if files < 0 else min(limits.pending_total, files // 2)  # -1: unlimited
    connections = app[guard.GUARD] = guard.ConnectionGuard(limits.pending_per_address, total)
    # keepalive_timeout: aiohttp closes a connection that has not sent a whole request this
    # long after connecting or after its last answer (slowloris; see guard.py)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=limits.idle_timeout)
    await runner.setup()
    assert runner.server is not None
    connections.attach(runner.server)
    site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        # asyncio's strerror repeats the address; the errno's own text says it once
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        if exc.errno == errno.EADDRINUSE:
            raise PortBusyError(
                f"cannot listen on {host}:{port} ({why}): choose another --port (0 = any free one)", port
            ) from None
        raise RtcError(f"cannot listen on {host}:{port} ({why}): choose another --host or --port") from None
    addresses = runner.addresses  # (host, port, …) of each bound socket
    bound = int(addresses[0][1]) if addresses else port
    return runner, bound


@asynccontextmanager
async def serving(
    session: Session,
    host: str,
    port: int,
    certfile: str | None = None,
    keyfile: str | None = None,
    control_socket: str | None = None,
) -> AsyncIterator[tuple[int, str | None]]:
    """Serve `session` for the duration of the block, on TCP and (where it can) on the
    owner's Unix control socket `control_socket`; yields the bound port and the socket
    served (None: the owner commands use TCP)."""
    runner, bound = await serve(session, host, port, certfile, keyfile)
    try:
        if control_socket and not await serve_control_socket(runner, control_socket):
            control_socket = None
        yield bound, control_socket
    finally:
        await runner.cleanup()
        if control_socket:
            remove_control_socket(control_socket)
