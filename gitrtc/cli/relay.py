"""`rtc relay --redis URL SESSION`: serve a session's WebSocket clients from another process."""

from __future__ import annotations

import asyncio
import signal

import click

from .main import cli, user_errors

EXAMPLES = """
\b
Examples:
  rtc relay --redis redis://10.0.0.5:6379/0 3f2a9c1e5b7d8a60
                         serve session 3f2a9c1e5b7d8a60 (rtc status --json shows it)
                         on port 8766; its links work with this host and port
  rtc relay --redis redis://10.0.0.5:6379/0 --host 0.0.0.0 --port 9000 3f2a9c1e5b7d8a60
"""


@cli.command(short_help="Serve a session's clients from another process, through Redis.", epilog=EXAMPLES)
@click.argument("session")
@click.option("--redis", "url", required=True, metavar="URL", help="The Redis the owner's rtc start --redis uses.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True, help="Port (0 = any free one).")
@user_errors
def relay(session: str, url: str, host: str, port: int) -> None:
    """Serve SESSION's WebSocket clients (the owner's rtc start --redis runs it)."""
    from .. import eventloop

    eventloop.run(_serve(url, session, host, port))


async def _serve(url: str, session: str, host: str, port: int) -> None:
    from ..relay.relay import serving_relay

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serving_relay(url, session, host, port) as (relay, _bound):
        click.echo(f"relay {relay.id} of session {session} serving on {relay.public_url}/rooms/", nl=True)
        await stop.wait()
