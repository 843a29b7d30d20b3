"""`rtc status [--json]`: the running session's URLs, files, participants and state."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..ownerapi import call, running_session
from .main import cli, user_errors


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def status(as_json: bool) -> None:
    """Show the running session of this repository."""
    data = running_session(Path.cwd())
    info = call(data, "GET", "/api/status", timeout=20)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    console = Console(highlight=False)
    console.print(f"session {info['session']} on {info['branch']} ({info['state']})"
                  f"{'  resumed' if info.get('resumed') else ''}")
    console.print(f"  edit: {info['url']}\n  view: {info['readonly_url']}")
    kernels = info.get("kernels") or {}
    if kernels.get("enabled"):
        console.print(f"  code runs on this machine: {len(kernels.get('shared', {}))} shared and "
                      f"{kernels.get('private', 0)} private kernel(s)")
    table = Table("file", "kind", "state", "store", box=None)
    for f in info["files"]:
        table.add_row(f["path"], f["kind"], f["save"], f"{f['store_bytes']:,} B")
    console.print(table)
    for p in info["participants"]:
        console.print(f"  {p['name']} ({p['role']}) in {', '.join(p['files']) or '-'}")
    if not info["participants"]:
        console.print("  nobody connected")
