"""`rtc join URL [DIR]`: mirror a session into a checkout (see gitrtc.mirror)."""

from __future__ import annotations

import click

from ..errors import JoinError
from .main import cli, user_errors


@cli.command()
@click.argument("url")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@user_errors
def join(url: str, directory: str | None) -> None:
    """Mirror the session at URL into DIRECTORY (default: this checkout)."""
    raise JoinError("rtc join is not available yet in this version: open the URL in a browser")
