"""`rtc stop`: end this repository's running session from another terminal."""

from __future__ import annotations

import click

from ..ownerapi import stop_session
from .main import cli, user_errors


@cli.command()
@click.option("-m", "--message", help="Commit message.")
@click.option("--no-commit", is_flag=True, help="End the session without committing.")
@click.option("--onto-branch", metavar="NAME",
              help="Commit on a new branch NAME made at the session's base (when your branch moved and conflicts).")
@user_errors
def stop(message: str | None, no_commit: bool, onto_branch: str | None) -> None:
    """End the running session with one commit and print its id."""
    commit, summary = stop_session(message, no_commit, onto_branch)
    if commit:
        click.echo(commit)
    click.echo(summary, err=True)
