"""`rtc invite NAME [--viewer]`: a personal link for one participant."""

from __future__ import annotations

from pathlib import Path

import click

from ..ownerapi import call, running_session
from .main import cli, user_errors


@cli.command()
@click.argument("name")
@click.option("--viewer", is_flag=True, help="A read-only link.")
@user_errors
def invite(name: str, viewer: bool) -> None:
    """Print a new link for NAME (revoke it with rtc kick NAME)."""
    result = call(running_session(Path.cwd()), "POST", "/api/invite", {"name": name, "viewer": viewer})
    click.echo(result["url"])
