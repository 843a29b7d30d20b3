"""`rtc kick NAME`: revoke an invited participant's links and close their connections."""

from __future__ import annotations

from pathlib import Path

import click

from ..ownerapi import call, running_session
from .main import cli, user_errors


@cli.command()
@click.argument("name")
@user_errors
def kick(name: str) -> None:
    """Remove NAME from the session at once."""
    result = call(running_session(Path.cwd()), "POST", "/api/kick", {"name": name})
    click.echo(f"removed {name}: {result['closed']} connection(s) closed", err=True)
