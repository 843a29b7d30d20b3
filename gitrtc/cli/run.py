"""`rtc run [URL] NOTEBOOK [CELL...] [--all]`: run a session's notebook cells in its shared kernel."""

from __future__ import annotations

import getpass
import re
import sys
from pathlib import Path

import click

from ..errors import RequestError
from ..git import user_identity
from .main import cli, user_errors


def split_arguments(args: tuple[str, ...]) -> tuple[str | None, str, list[int]]:
    """(join link or None, notebook, cell indices) of `rtc run`'s arguments."""
    rest = list(args)
    url = rest.pop(0) if rest and rest[0].startswith(("http://", "https://")) else None
    if not rest:
        raise click.UsageError("name the notebook to run: rtc run [URL] NOTEBOOK [CELL...] [--all]")
    notebook = rest.pop(0)
    indices = []
    for arg in rest:
        if not arg.isdigit():
            raise click.UsageError(f"{arg!r} is not a cell index: cells are numbered from 0, as in the file")
        indices.append(int(arg))
    return url, notebook, indices


def session_path(notebook: str, cwd: Path) -> str:
    """`notebook` as the session names it: relative to the checkout's root when it is a file
    under `cwd` (the owner may run from a subfolder), else as given."""
    local = (cwd / notebook).resolve()
    if not local.is_file():
        return notebook
    for folder in (local.parent, *local.parent.parents):
        if (folder / ".git").exists():
            return local.relative_to(folder).as_posix()
    return notebook


def _ask(prompt: str, password: bool) -> str:
    """Answer the kernel's `input()` from this terminal."""
    return getpass.getpass(prompt) if password else input(prompt)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _write(text: str) -> None:
    """Print outputs as they come (a traceback's colours only on a terminal)."""
    sys.stdout.write(text if sys.stdout.isatty() else _ANSI.sub("", text))
    sys.stdout.flush()


EXAMPLES = """
\b
Examples:
  rtc run analysis.ipynb                  run every code cell in the shared kernel
  rtc run analysis.ipynb 0 2              run cells 0 and 2 (counted from 0, as in the file)
  rtc run 'http://host:8765/#t=TOKEN' analysis.ipynb --all   …of a session you joined
"""


@cli.command(short_help="Run notebook cells in the shared kernel.", epilog=EXAMPLES)
@click.argument("args", nargs=-1, required=True, metavar="[URL] NOTEBOOK [CELL]...")
@click.option("--all", "everything", is_flag=True, help="Run every code cell (the default when no CELL is given).")
@click.option("--name", help="Your name, shown as who ran the cells (default: git config user.name).")
@user_errors
def run(args: tuple[str, ...], everything: bool, name: str | None) -> None:
    """Run cells of NOTEBOOK in the session's shared kernel and print their outputs.

    URL is a session link (as for rtc join); without it, the session running in this
    checkout. CELL indices count every cell from 0, as in the notebook file. Exits
    non-zero if the session refuses or a cell fails.
    """
    from .. import eventloop
    from ..runcells import run_cells, target_of

    url, notebook, indices = split_arguments(args)
    target = target_of(url, Path.cwd())
    if url is None:
        notebook = session_path(notebook, Path.cwd())
    who = name or user_identity(Path.cwd())[0] or "rtc run"
    ask = _ask if sys.stdin.isatty() else None
    report = eventloop.run(run_cells(target, notebook, indices, everything, who, _write, ask))
    failed = report.failed
    if failed:
        raise RequestError(
            f"{len(failed)} of {len(report.states)} cells did not complete "
            f"({', '.join(f'{report.labels.get(c, c)}: {report.states[c]}' for c in failed[:5])})"
        )
