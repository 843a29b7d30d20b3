"""The `rtc` entry point: `rtc stop` without loading the full command line.

Ending a session should take no longer than `git commit`; importing click alone costs
as much as the whole commit. So the plain forms of `rtc stop` (`-m/--message`,
`--no-commit`, `--onto-branch`) run straight through `ownerapi.stop_session` (and, when
it only made the request, leave with `os._exit` once their output is flushed), and
everything else (help, other verbs, anything unusual) goes to the click group in
`main`, which defines the options and their help.
"""

from __future__ import annotations

import os
import sys

_STOP_VALUES = {"-m": "message", "--message": "message", "--onto-branch": "onto_branch"}


def plain_stop_options(args: list[str]) -> dict[str, str | bool | None] | None:
    """The options of a plain `rtc stop …` invocation, or None to leave it to click."""
    options: dict[str, str | bool | None] = {"message": None, "no_commit": False, "onto_branch": None}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if arg == "--no-commit":
            options["no_commit"] = True
        elif name in _STOP_VALUES and name.startswith("--") and eq:
            options[_STOP_VALUES[name]] = value
        elif arg in _STOP_VALUES and rest and not eq:
            options[_STOP_VALUES[arg]] = rest.pop(0)
        elif arg.startswith("-m") and len(arg) > 2 and not arg.startswith("--"):
            options["message"] = arg[2:]
        else:
            return None
    return options


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    options = plain_stop_options(args[1:]) if args[:1] == ["stop"] else None
    if options is None:
        from .main import main as full_command_line

        full_command_line()
        return
    from ..errors import RtcError
    from ..ownerapi import stop_session

    try:
        message, onto = options["message"], options["onto_branch"]
        commit, summary = stop_session(
            message if isinstance(message, str) else None,
            bool(options["no_commit"]),
            onto if isinstance(onto, str) else None,
        )
    except RtcError as exc:
        print(f"Error: {exc}", file=sys.stderr)  # the form click gives every other verb's errors
        sys.exit(1)
    except KeyboardInterrupt:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    if commit:
        print(commit)
    print(summary, file=sys.stderr)
    if "threading" not in sys.modules:  # the request over the socket; not a headless end
        # Nothing is left to tear down (no thread, file or handler of ours): skip the
        # interpreter's finalization, an eighth of this command's instructions.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
