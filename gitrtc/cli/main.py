"""`rtc`: the command group and the boundary where domain errors become one-line exits."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import __version__
from ..errors import RtcError

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn `RtcError`s into click's one-line `Error: …` and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RtcError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


#: Each verb's module, imported only when that verb runs: `rtc stop` needs neither the
#: server nor the notebook machinery, and starts in a fraction of the time.
COMMANDS = ("commit", "invite", "join", "kick", "plugins", "relay", "run", "start", "status", "stop")


class LazyGroup(click.Group):
    """A command group that imports a verb's module (which registers it) on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__package__}.{cmd_name}")
        return super().get_command(ctx, cmd_name)


EXAMPLES = """
\b
Examples:
  rtc start notes.md analysis.ipynb    share two files; Ctrl-C ends with one commit
  rtc status                           the links, files and who is where
  rtc stop -m "Edit the analysis"      end the session from another terminal

Run rtc COMMAND --help for a command's options and examples.
"""


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    epilog=EXAMPLES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="rtc")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Share files of this git checkout live; end the session as one commit."""
    if ctx.invoked_subcommand is None:  # `rtc` alone: the help, and success
        click.echo(ctx.get_help())


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="rtc")  # also as `python -m gitrtc`
