"""Running a session in the foreground: serve, publish `session.json`, end on a signal.

`run` is what `rtc start` does after parsing its options; it returns the end result
so the CLI can choose the exit status.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import time
import webbrowser
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live

from .. import launch, sessionfile
from ..errors import RtcError
from ..server import serving
from ..session import EndResult, Session
from .panel import SessionPanel, print_intro, print_result

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
            wanted = options.port if options.port is not None else (session.manifest.port or DEFAULT_PORT)
            try:
                control = sessionfile.control_socket(session.info.gitdir)
                async with serving(session, options.host, wanted, options.certfile, options.keyfile,
                                   control) as (port, control):
                    await _publish(session, options, port, control)
                    print_intro(console, session.snapshot(), prepared.notes)
                    if not options.certfile and not is_loopback(options.host):
                        console.print("⚠ listening beyond this machine without TLS: tokens travel in clear "
                                      "text; use --certfile/--keyfile", style="yellow")
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


async def _publish(session: Session, options: Options, port: int, control_socket: str | None) -> None:
    """Note the port in the store and write `session.json` (URLs, tokens, pid)."""
    if session.manifest.port != port:
        session.manifest.port = port
        await session.save_manifest()
    scheme = "https" if options.certfile else "http"
    base = f"{scheme}://{public_host(options.host)}:{port}"
    tokens = session.manifest.tokens
    session.url = f"{base}/#t={tokens['editor']}"
    session.readonly_url = f"{base}/#t={tokens['viewer']}"
    sessionfile.write_session_file(session.info.gitdir, {
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
    })


async def _wait(session: Session, stop: asyncio.Event, options: Options, console: Console) -> EndResult:
    """Show the panel until a signal or `rtc stop` ends the session."""
    live = Live(SessionPanel(session.snapshot), console=console, refresh_per_second=4, transient=True) \
        if console.is_terminal else None
    if live:
        live.start()
    try:
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
            try:
                result = await session.end(options.message)
            except RtcError as exc:
                console.print(f"✗ {exc}", style="red", highlight=False)
                raise
            if not result.ended:
                return result  # commit failed: the store keeps the session resumable
    finally:
        if live:
            live.stop()
