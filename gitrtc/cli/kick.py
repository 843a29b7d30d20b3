"""`rtc kick NAME`: revoke an invited participant's links and close their connections."""

from __future__ import annotations

from pathlib import Path

import click

from ..ownerapi import call, running_session
from ..words import plural
from .main import cli, user_errors

EXAMPLES = """
\b
Examples:
  rtc kick Carol                     disconnect Carol and revoke her links
"""


@cli.command(short_help="Remove NAME from the session.", epilog=EXAMPLES)
@click.argument("name")
@user_errors
def kick(name: str) -> None:
    """Remove NAME from the session at once."""
    result = call(running_session(Path.cwd()), "POST", "/api/kick", {"name": name})
    click.echo(f"removed {name}: {plural(result['closed'], 'connection')} closed", err=True)
