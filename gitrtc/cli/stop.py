"""`rtc stop`: end this repository's running session from another terminal."""

from __future__ import annotations

import click

from ..ownerapi import stop_session
from .main import cli, user_errors

EXAMPLES = """
\b
Examples:
  rtc stop                           end with one commit (a default message)
  rtc stop -m "Rework the intro"     end with this commit message
  rtc stop --no-commit               end and leave the files as they are, uncommitted
  rtc stop --onto-branch side        commit on a new branch when yours moved and conflicts
"""


@cli.command(short_help="End the session with one commit.", epilog=EXAMPLES)
@click.option("-m", "--message", help="Commit message.")
@click.option("--no-commit", is_flag=True, help="End the session without committing.")
@click.option(
    "--onto-branch",
    metavar="NAME",
    help="Commit on a new branch NAME made at the session's base (when your branch moved and conflicts).",
)
@user_errors
def stop(message: str | None, no_commit: bool, onto_branch: str | None) -> None:
    """End the running session with one commit and print its id."""
    commit, summary = stop_session(message, no_commit, onto_branch)
    if commit:
        click.echo(commit)
    click.echo(summary, err=True)
