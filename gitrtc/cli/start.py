"""`rtc start [PATH]...`: share files live until Ctrl-C, SIGTERM or `rtc stop`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from .main import cli, user_errors

EXAMPLES = """
\b
Examples:
  rtc start                          share this folder's files; Ctrl-C ends with one commit
  rtc start notes.md data/           share a file and a folder
  rtc start --persistent             keep the session across restarts (rtc stop ends it)
  rtc start --host 0.0.0.0 --certfile cert.pem --keyfile key.pem
                                     share beyond this machine, over TLS
  rtc start --redis redis://127.0.0.1:6379/0
                                     let relays serve clients too (see rtc relay)
"""


@cli.command(short_help="Share files live; end with one commit.", epilog=EXAMPLES)
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 = any free one). Default: the port an unfinished session used, else 8765.",
)
@click.option("-m", "--message", help="Commit message for the end of the session.")
@click.option("--no-open", is_flag=True, help="Do not open the browser.")
@click.option(
    "--fresh",
    is_flag=True,
    help="Discard an unfinished session (its changes are saved as a patch) instead of resuming it.",
)
@click.option(
    "--persistent",
    is_flag=True,
    help="Keep the session across restarts: Ctrl-C pauses it, rtc commit records, rtc stop ends it.",
)
@click.option(
    "--kernels",
    is_flag=True,
    help="Let participants run notebooks' code, in kernels on this machine (rtc invite --no-run excepts someone).",
)
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM).")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM).")
@click.option(
    "--redis",
    metavar="URL",
    help="Serve relays (rtc relay) through this Redis, e.g. redis://127.0.0.1:6379/0.",
)
@user_errors
def start(
    paths: tuple[str, ...],
    host: str,
    port: int | None,
    message: str | None,
    no_open: bool,
    fresh: bool,
    persistent: bool,
    kernels: bool,
    certfile: str | None,
    keyfile: str | None,
    redis: str | None,
) -> None:
    """Share PATHs (files or folders; default: this folder) live, then commit once."""
    from .. import eventloop
    from ..launch import Plan  # imported here: `rtc stop`/`status` need not load the codecs
    from .runner import Options, run

    console = Console(highlight=False)
    plan = Plan(cwd=Path.cwd(), paths=list(paths), fresh=fresh, persistent=persistent, kernels=kernels)
    options = Options(
        host=host,
        port=port,
        message=message,
        open_browser=not no_open,
        fresh=fresh,
        persistent=persistent,
        certfile=certfile,
        keyfile=keyfile,
        redis=redis,
    )
    result = eventloop.run(run(plan, options, console))
    if not (result.ended or result.paused):
        sys.exit(1)
