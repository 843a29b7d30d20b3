"""`rtc join URL [DIR]`: mirror a session into a checkout and keep both in sync."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.live import Live

from .main import cli, user_errors

if TYPE_CHECKING:
    from ..mirror import Mirror


def git_identity(folder: Path) -> tuple[str, str]:
    """user.name / user.email from git config (empty strings when unset)."""
    def get(key: str) -> str:
        done = subprocess.run(["git", "config", key], cwd=folder, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return get("user.name"), get("user.email")


async def _run(mirror: Mirror, console: Console) -> dict[str, Any]:
    """Run the mirror, with the live panel when the terminal can show one."""
    if not console.is_terminal:
        return await mirror.run()
    from .panel import MirrorPanel, quiet_terminal

    with quiet_terminal(), Live(MirrorPanel(mirror), console=console, refresh_per_second=4, transient=True):
        return await mirror.run()


EXAMPLES = """
\b
Examples:
  rtc join 'http://host:8765/#t=TOKEN'           mirror the session into this checkout
  rtc join 'http://host:8765/#t=TOKEN' ../copy   …into another folder
"""


@cli.command(short_help="Mirror a session into a folder.", epilog=EXAMPLES)
@click.argument("url")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Your name for presence and co-authorship (default: git config user.name).")
@click.option("--email", help="Your email for the Co-authored-by trailer (default: git config user.email).")
@click.option("--bring-changes", is_flag=True,
              help="Merge your uncommitted changes of shared files into the session instead of refusing.")
@user_errors
def join(url: str, directory: Path | None, name: str | None, email: str | None, bring_changes: bool) -> None:
    """Mirror the session at URL into DIRECTORY (default: this checkout) until it ends."""
    from .. import eventloop
    from ..mirror import Mirror  # imported here: other commands need not load the codecs

    folder = (directory or Path.cwd()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    git_name, git_email = git_identity(folder)
    console = Console(highlight=False)
    mirror = Mirror(url, folder, name or git_name or "Anonymous", email if email is not None else git_email,
                    bring_changes, say=lambda line: console.print(line, highlight=False))
    try:
        ended = eventloop.run(_run(mirror, console))
    except KeyboardInterrupt:
        console.print("left the session; your files stay as they were last synced")
        return
    commit = ended.get("commit")
    branch = ended.get("branch") or mirror.info.get("branch", "")
    if commit:
        console.print(f"✓ session ended: commit {commit[:7]} on {branch} (the owner's side); "
                      "your files are as committed", style="green")
    else:
        console.print(f"✓ session ended without a commit on {branch}")
