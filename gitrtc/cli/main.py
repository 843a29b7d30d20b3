"""`rtc`: the command group and the boundary where domain errors become one-line exits."""

from __future__ import annotations

import functools
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rtc")
def cli() -> None:
    """Share files of this git checkout live; end the session as one commit."""


def main() -> None:
    """Console-script entry point."""
    from . import commit, invite, join, kick, start, status, stop  # noqa: F401  (registers the commands)

    cli()
