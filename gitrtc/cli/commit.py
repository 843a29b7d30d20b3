"""`rtc commit [-m MSG]`: record the session's current state as one commit; it goes on."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CommitError
from ..ownerapi import call, running_session
from .main import cli, user_errors

EXAMPLES = """
\b
Examples:
  rtc commit                         commit what changed since the last commit
  rtc commit -m "Checkpoint"         with this message; the session goes on
"""


@cli.command(short_help="Commit now; the session goes on.", epilog=EXAMPLES)
@click.option("-m", "--message", help="Commit message.")
@click.option(
    "--take-current", is_flag=True, help="Commit even with open notebook merge conflicts (the documents as they are)."
)
@user_errors
def commit(message: str | None, take_current: bool) -> None:
    """Commit the running session's changes since the last commit, without ending it."""
    body = {"message": message, "take_current": take_current}
    result = call(running_session(Path.cwd()), "POST", "/api/commit", body)
    if not result.get("ended", True):
        raise CommitError(result.get("message") or "the commit failed")
    if result.get("commit"):
        click.echo(result["commit"])
    else:
        click.echo(f"✓ {result.get('message')}", err=True)
