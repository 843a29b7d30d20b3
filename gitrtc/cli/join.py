"""`rtc join [URL|-] [DIR]`: mirror a session into a checkout and keep both in sync.

The link carries the session's token: on a shared machine, pass it where `ps` cannot
see it, as `-` (read from stdin) or in the environment variable `RTC_JOIN_URL`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.live import Live

from ..errors import JoinError
from .main import cli, user_errors

if TYPE_CHECKING:
    from ..mirror import Mirror

#: The environment variable `rtc join` reads the link from when no URL argument is given.
URL_VARIABLE = "RTC_JOIN_URL"


def link_and_folder(args: tuple[str, ...], stdin: Any = None, environ: Any = None) -> tuple[str, Path | None]:
    """The join URL and the folder from `rtc join`'s arguments.

    The first argument is the URL if it contains `://`, or `-` to read the URL from stdin;
    otherwise the URL comes from `$RTC_JOIN_URL` and the argument is the folder.
    """
    environ = os.environ if environ is None else environ
    if len(args) > 2:
        raise JoinError("too many arguments: rtc join [URL|-] [DIR]")
    if args and (args[0] == "-" or "://" in args[0]):
        first, rest = args[0], args[1:]
        if first == "-":
            first = (stdin or sys.stdin).readline().strip()
            if not first:
                raise JoinError("no link on stdin: pipe the URL rtc start printed into rtc join -")
    else:
        first, rest = environ.get(URL_VARIABLE, "").strip(), args
        if not first:
            raise JoinError(
                f"no session link: give the URL rtc start printed, - to read it from stdin, or set {URL_VARIABLE}"
            )
        if len(rest) > 1:
            raise JoinError("too many arguments: rtc join [URL|-] [DIR]")
    return first, Path(rest[0]) if rest else None


async def _run(mirror: Mirror, console: Console) -> dict[str, Any]:
    """Run the mirror, with the live panel when the terminal can show one."""
    if not console.is_terminal:
        return await mirror.run()
    from .panel import MirrorPanel, quiet_terminal

    with quiet_terminal(), Live(MirrorPanel(mirror), console=console, refresh_per_second=4, transient=True):
        return await mirror.run()


EXAMPLES = """
\b
Examples:
  rtc join 'http://host:8765/#t=TOKEN'           mirror the session into this checkout
  rtc join 'http://host:8765/#t=TOKEN' ../copy   …into another folder
  rtc join - ../copy < link.txt                  read the link from stdin (kept out of ps)
  RTC_JOIN_URL='http://host:8765/#t=TOKEN' rtc join   …or from the environment
"""


@cli.command(short_help="Mirror a session into a folder.", epilog=EXAMPLES)
@click.argument("args", nargs=-1, metavar="[URL|-] [DIR]")
@click.option("--name", help="Your name for presence and co-authorship (default: git config user.name).")
@click.option("--email", help="Your email for the Co-authored-by trailer (default: git config user.email).")
@click.option(
    "--bring-changes",
    is_flag=True,
    help="Merge your uncommitted changes of shared files into the session instead of refusing "
    "(a copy of each is kept under .git/rtc/join/kept/).",
)
@click.option(
    "--conflict-markers",
    is_flag=True,
    help="Write nbdime's inline conflict markers into notebook cells with an open merge conflict "
    "(replace them with your choice and save to resolve); without it, files are as the session has them.",
)
@user_errors
def join(
    args: tuple[str, ...], name: str | None, email: str | None, bring_changes: bool, conflict_markers: bool
) -> None:
    """Mirror the session at URL into DIR (default: this checkout) until it ends.

    URL is the link rtc start printed; `-` reads it from stdin, and without it the link
    is taken from $RTC_JOIN_URL (both keep the token out of the process list).
    """
    from .. import eventloop
    from ..git import user_identity
    from ..mirror import (
        Mirror,  # imported here: other commands need not load the codecs
    )

    url, directory = link_and_folder(args)
    folder = (directory or Path.cwd()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    git_name, git_email = user_identity(folder)
    console = Console(highlight=False)
    mirror = Mirror(
        url,
        folder,
        name or git_name or "Anonymous",
        email if email is not None else git_email,
        bring_changes,
        say=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True),
        conflict_markers=conflict_markers,
    )
    try:
        ended = eventloop.run(_run(mirror, console))
    except KeyboardInterrupt:
        console.print("left the session; your files stay as they were last synced")
        return
    commit = ended.get("commit")
    branch = ended.get("branch") or mirror.info.get("branch", "")
    if commit:
        console.print(
            f"✓ session ended: commit {commit[:7]} on {branch} (the owner's side); your files are as committed",
            style="green",
            markup=False,
        )
    else:
        console.print(f"✓ session ended without a commit on {branch}", markup=False)
