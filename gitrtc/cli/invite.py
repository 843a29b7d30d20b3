"""`rtc invite NAME [--viewer]`: a personal link for one participant."""

from __future__ import annotations

from pathlib import Path

import click

from ..ownerapi import call, running_session
from .main import cli, user_errors

EXAMPLES = """
\b
Examples:
  rtc invite Carol                   a personal edit link for Carol
  rtc invite Vic --viewer            a read-only link
  rtc kick Carol                     revoke Carol's link and disconnect her
"""


@cli.command(short_help="Print a personal link for NAME.", epilog=EXAMPLES)
@click.argument("name")
@click.option("--viewer", is_flag=True, help="A read-only link.")
@click.option("--no-run", is_flag=True, help="An editor who may not run code (see rtc start --kernels).")
@user_errors
def invite(name: str, viewer: bool, no_run: bool) -> None:
    """Print a new link for NAME (revoke it with rtc kick NAME)."""
    result = call(
        running_session(Path.cwd()), "POST", "/api/invite", {"name": name, "viewer": viewer, "no_run": no_run}
    )
    click.echo(result["url"])
