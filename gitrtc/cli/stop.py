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
  rtc stop --take-current            commit notebooks with open merge conflicts as they are
"""


@cli.command(short_help="End the session with one commit.", epilog=EXAMPLES)
@click.option("-m", "--message", help="Commit message.")
@click.option("--no-commit", is_flag=True, help="End the session without committing.")
@click.option(
    "--onto-branch",
    metavar="NAME",
    help="Commit on a new branch NAME made at the session's base (when your branch moved and conflicts).",
)
@click.option(
    "--take-current",
    is_flag=True,
    help="Commit even with open notebook merge conflicts (the documents as they are; the message lists them).",
)
@user_errors
def stop(message: str | None, no_commit: bool, onto_branch: str | None, take_current: bool) -> None:
    """End the running session with one commit and print its id."""
    commit, summary = stop_session(message, no_commit, onto_branch, take_current)
    if commit:
        click.echo(commit)
    click.echo(summary, err=True)
