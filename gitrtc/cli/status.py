"""`rtc status [--json]`: the session's URLs, files, participants and state — a running
one, a paused one (nothing serves it; `rtc start` resumes it, `rtc stop` ends it), or none."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..errors import NoSessionError, RtcError, SessionPausedError
from ..ownerapi import call, running_session
from ..words import plural
from .main import cli

EXAMPLES = """
\b
Examples:
  rtc status            the links, files and who is where
  rtc status --json     the same as JSON ({"state": "none"} when there is no session)
"""


@cli.command(short_help="Show this repository's session.", epilog=EXAMPLES)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, always (also with no session or an error).")
def status(as_json: bool) -> None:
    """Show this repository's session: links, files, participants; a paused one too."""
    try:
        info = _status()
    except RtcError as exc:
        if not as_json:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps({"state": "error", "error": str(exc)}, indent=2))
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    elif info["state"] == "none":
        click.echo("no session in this repository: start one with rtc start")
    elif info["state"] in ("paused", "unfinished", "unreadable"):
        _print_paused(info)
    else:
        _print_running(info)


def _status() -> dict[str, Any]:
    """The running session's status, else a paused one's, else `{"state": "none"}`."""
    try:
        data = running_session(Path.cwd())
    except SessionPausedError:
        from ..sessionfile import find_gitdir
        from ..unfinished import describe

        gitdir = find_gitdir(Path.cwd())
        return (describe(gitdir) if gitdir else None) or {"state": "none"}
    except NoSessionError:
        return {"state": "none"}
    return call(data, "GET", "/api/status", timeout=20)


def _print_paused(info: dict[str, Any]) -> None:
    console = Console(highlight=False)
    if info["state"] == "unreadable":
        console.print(f"an unfinished session's store cannot be read ({info['error']}): {info['store']}")
        return
    what = "paused" if info["state"] == "paused" else "unfinished (its process ended without ending it)"
    console.print(f"session {info['session']} on {info['branch']} ({what}): nothing serves it now")
    if info.get("url"):
        console.print(f"  edit: {info['url']}\n  view: {info['readonly_url']}")
        console.print("  the links work again once it is resumed", style="dim")
    files = [f["path"] for f in info["files"]]
    console.print(f"  {plural(len(files), 'file')}: {', '.join(files)}")
    if info.get("last_commit"):
        console.print(f"  last commit: {info['last_commit'][:7]}")
    console.print("  rtc start resumes it; rtc stop ends it with its commit")


def _print_running(info: dict[str, Any]) -> None:
    console = Console(highlight=False)
    console.print(
        f"session {info['session']} on {info['branch']} ({info['state']}){'  resumed' if info.get('resumed') else ''}"
    )
    console.print(f"  edit: {info['url']}\n  view: {info['readonly_url']}")
    kernels = info.get("kernels") or {}
    if kernels.get("enabled"):
        console.print(
            f"  code runs on this machine: {len(kernels.get('shared', {}))} shared and "
            f"{plural(kernels.get('private', 0), 'private kernel')}"
        )
    table = Table("file", "kind", "state", "store", box=None)
    for f in info["files"]:
        table.add_row(f["path"], f["kind"], f["save"], f"{f['store_bytes']:,} B")
    console.print(table)
    conflicts = info.get("conflicts") or []
    if conflicts:
        console.print(f"  {plural(len(conflicts), 'open merge conflict')} (rtc stop and rtc commit wait for them):")
        for c in conflicts:
            where = f"cell {c['cell']}" if c.get("cell") else "notebook metadata"
            console.print(f"    {c['path']}: {c['kind']} in {where}, from {c.get('from')}  [{c['id']}]")
    for p in info["participants"]:
        console.print(f"  {p['name']} ({p['role']}) in {', '.join(p['files']) or '-'}")
    if not info["participants"]:
        console.print("  nobody connected")
    for plugin in info.get("plugins") or []:
        if plugin.get("error"):
            console.print(f"  plugin {plugin['type']} {plugin['name']} not in use: {plugin['error']}", style="yellow")
    for r in info.get("relays") or ():
        console.print(f"  relay {r['id']} at {r['url'] or '?'}: {plural(r['clients'], 'client')}")
