"""Running a session in the foreground: serve, publish `session.json`, end on a signal.

`run` is what `rtc start` does after parsing its options; it returns the end result
so the CLI can choose the exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import time
import webbrowser
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live

from .. import heap, launch, sessionfile
from ..errors import PortBusyError
from ..server import serving
from ..session import EndResult, Session
from .panel import MAX_FILE_ROWS, SessionPanel, print_intro, print_result, quiet_terminal

DEFAULT_PORT = 8765


@dataclass(slots=True)
class Options:
    """`rtc start`'s options."""

    host: str = "127.0.0.1"
    port: int | None = None  # None: the port the session used before, else DEFAULT_PORT
    message: str | None = None
    open_browser: bool = True
    persistent: bool = False
    fresh: bool = False
    certfile: str | None = None
    keyfile: str | None = None
    redis: str | None = None  # serve relays through this Redis (`relay.owner`)


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_host(host: str) -> str:
    """The host name to print in URLs (a wildcard bind prints this machine's address)."""
    if host in ("0.0.0.0", "::", ""):
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def control_host(host: str) -> str:
    """Where `rtc stop`/`status` on this machine reach the server."""
    if host in ("0.0.0.0", "", "localhost"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


async def run(plan: launch.Plan, options: Options, console: Console) -> EndResult:
    """Prepare, serve until the session ends, then clean up.

    One structured lifecycle: `async with` the prepared launch (lock, store, session's
    background tasks) and, inside it, the server; each is released however the block
    is left, innermost first.
    """
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before session.json exists: a stop is never lost
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        prepared = await launch.prepare(plan)
        async with prepared as session:
            try:
                async with contextlib.AsyncExitStack() as serving_stack:  # the server, while in it
                    serving_stack.enter_context(heap.steady(plan.limits.heap_sweep_every))
                    port, control = await _listen(serving_stack, session, options, prepared.notes)
                    if options.redis:
                        from ..relay.owner import serving_relays  # Redis only with --redis

                        await serving_stack.enter_async_context(serving_relays(session, options.redis))
                    await _publish(session, options, port, control)
                    print_intro(console, session.snapshot(0), prepared.notes)  # it shows no file rows
                    if not options.certfile and not is_loopback(options.host):
                        console.print(
                            "⚠ listening beyond this machine without TLS: tokens travel in clear "
                            "text; use --certfile/--keyfile",
                            style="yellow",
                        )
                    if options.open_browser and console.is_terminal:
                        await asyncio.to_thread(webbrowser.open, session.url)
                    result = await _wait(session, stop_requested, options, console)
            finally:
                sessionfile.remove_session_file(session.info.gitdir)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print_result(console, result)
    return result


#: How many ports after the default (or a resumed session's own) `rtc start` tries.
PORT_TRIES = 20


async def _listen(
    stack: contextlib.AsyncExitStack, session: Session, options: Options, notes: list[str]
) -> tuple[int, str | None]:
    """Serve `session` for the life of `stack`: on `--port` if given (busy: an error), else
    on its own port (a resumed session's links name it) or the default, or the next free
    one after it, saying so in `notes`; the bound port and the control socket served."""
    control = sessionfile.control_socket(session.info.gitdir)
    own = session.manifest.port
    wanted = options.port if options.port is not None else (own or DEFAULT_PORT)
    last = wanted if options.port is not None else min(wanted + PORT_TRIES, 65536) - 1
    for port in range(wanted, last + 1):
        try:
            bound, served = await stack.enter_async_context(
                serving(session, options.host, port, options.certfile, options.keyfile, control)
            )
        except PortBusyError as exc:
            if port < last:
                continue
            if last == wanted:
                raise
            raise PortBusyError(
                f"cannot listen on {options.host}: ports {wanted} to {last} are all taken: "
                "choose a --port (0 = any free one)",
                port,
            ) from exc
        if port != wanted:
            if own and options.port is None:
                notes.append(
                    f"port {wanted}, which this session's links use, is taken by another program: "
                    f"serving on {bound}, so the links changed: share the new ones (a later "
                    f"rtc start --port {wanted} takes the old port back)"
                )
            else:
                notes.append(f"port {wanted} is taken by another program: serving on {bound}")
        return bound, served
    raise AssertionError("unreachable: the last try raises")


async def _publish(session: Session, options: Options, port: int, control_socket: str | None) -> None:
    """Note the port in the store and write `session.json` (URLs, tokens, pid)."""
    scheme = "https" if options.certfile else "http"
    base = f"{scheme}://{public_host(options.host)}:{port}"
    if (session.manifest.port, session.manifest.address) != (port, base):
        session.manifest.port = port
        session.manifest.address = base
        await session.save_manifest()
    tokens = session.manifest.tokens
    session.url = f"{base}/#t={tokens['editor']}"
    session.readonly_url = f"{base}/#t={tokens['viewer']}"
    sessionfile.write_session_file(
        session.info.gitdir,
        {
            "session": session.manifest.session,
            "url": session.url,
            "readonly_url": session.readonly_url,
            "port": port,
            "pid": os.getpid(),
            "token": tokens["editor"],
            "readonly_token": tokens["viewer"],
            "owner_token": tokens["owner"],
            "control_url": f"{scheme}://{control_host(options.host)}:{port}",
            **({"socket": control_socket} if control_socket else {}),
            **({"certfile": os.path.abspath(options.certfile)} if options.certfile else {}),  # noqa: ASYNC240 — once at startup, not a hot path
            "epoch": session.manifest.epoch,
            "branch": session.info.branch_name,
            "files": [f.path for f in session.manifest.files],
            "started": time.time(),
            "persistent": session.manifest.persistent,
            **({"redis": options.redis} if options.redis else {}),
        },
    )


async def _wait(session: Session, stop: asyncio.Event, options: Options, console: Console) -> EndResult:
    """Show the panel until a signal or `rtc stop` ends the session."""
    with contextlib.ExitStack() as panel:
        if console.is_terminal:
            panel.enter_context(quiet_terminal())  # left last: the panel is gone before keys echo again
            shown = SessionPanel(lambda: session.snapshot(MAX_FILE_ROWS))  # not 100,000 rows 4 times a second
            panel.enter_context(Live(shown, console=console, refresh_per_second=4, transient=True))
        while True:
            ended = asyncio.ensure_future(session.ended.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            stopping.cancel()
            if session.ended.is_set():
                assert session.result is not None
                return session.result
            stop.clear()
            if session.manifest.persistent:
                return await session.pause()
            console.print("ending the session…", highlight=False)
            result = await session.end(options.message)  # an error is said once, by the command line
            if not result.ended:
                return result  # commit failed: the store keeps the session resumable
