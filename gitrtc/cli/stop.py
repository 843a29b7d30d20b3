"""`rtc stop`: end this repository's running session from another terminal."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CommitError
from .control import call, running_session
from .main import cli, user_errors


@cli.command()
@click.option("-m", "--message", help="Commit message.")
@click.option("--no-commit", is_flag=True, help="End the session without committing.")
@click.option("--onto-branch", metavar="NAME",
              help="Commit on a new branch NAME made at the session's base (when your branch moved and conflicts).")
@user_errors
def stop(message: str | None, no_commit: bool, onto_branch: str | None) -> None:
    """End the running session with one commit and print its id."""
    data = running_session(Path.cwd())
    result = call(data, "POST", "/api/stop",
                  {"message": message, "commit": not no_commit, "onto_branch": onto_branch})
    if not result.get("ended", True):
        raise CommitError(result.get("message") or result.get("error") or "the commit failed")
    if result.get("commit"):
        click.echo(result["commit"])
        click.echo(f"✓ 1 commit on {result['branch']}  ({len(result['coauthors'])} co-authors, "
                   f"{len(result['files'])} files)", err=True)
    else:
        click.echo(f"✓ session ended: {result.get('message')}", err=True)
