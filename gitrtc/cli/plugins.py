"""`rtc plugins [--json]`: the document kinds and services installed, and why one is not loaded."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from .main import cli

EXAMPLES = """
\b
Examples:
  rtc plugins           kinds and services, where each comes from, and errors
  rtc plugins --json    the same as JSON
"""


@cli.command(short_help="List installed document kinds and services.", epilog=EXAMPLES)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List the document kinds and services gitrtc found (entry points `gitrtc.documents`
    and `gitrtc.services`), and why one was not loaded."""
    from ..plugins.loader import installed

    report = installed().report()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table("type", "name", "from", "state", box=None)
    for item in report:
        state = "loaded" if item["error"] is None else f"not loaded: {item['error']}"
        table.add_row(item["type"], item["name"], item["dist"], state, style=None if item["error"] is None else "red")
    Console(highlight=False).print(table)
