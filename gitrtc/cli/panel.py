"""The live terminal panel of `rtc start` and its final summary (rich)."""

from __future__ import annotations

import sys
import termios
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..session import EndResult, SessionSnapshot
from ..words import plural

if TYPE_CHECKING:
    from ..mirror import Mirror

MAX_FILE_ROWS = 15


class SessionPanel:
    """Renders the session's current state each time rich refreshes (from a snapshot)."""

    def __init__(self, snapshot: Callable[[], SessionSnapshot]) -> None:
        self.snapshot = snapshot

    def __rich__(self) -> RenderableType:
        s = self.snapshot()
        head = Text.assemble(
            ("● ", "green"),
            (f"session {s.session}", "bold"),
            f"  on {s.branch}  serving {plural(s.file_count, 'file')}",
            ("  (resumed)" if s.resumed else "", "yellow"),
            ("  persistent" if s.persistent else "", "cyan"),
            ("  code runs here (--kernels)" if s.kernels else "", "magenta"),
        )
        urls = Table.grid(padding=(0, 1))
        urls.add_row(Text("edit", style="bold"), Text(s.url, style="cyan"))
        urls.add_row(Text("view", style="bold"), Text(s.readonly_url, style="cyan"))
        files = Table("file", "kind", "state", box=None, header_style="dim")
        for f in s.files[:MAX_FILE_ROWS]:
            style = "red" if f.error else ("yellow" if f.save == "unsaved" else "green")
            files.add_row(f.path, f.kind, Text(f.save, style=style))
        if s.file_count > MAX_FILE_ROWS:
            files.add_row(f"… {s.file_count - MAX_FILE_ROWS} more", "", "")
        people = Table("who", "role", "in", box=None, header_style="dim")
        for p in s.participants:
            people.add_row(
                p["name"] + (f" <{p['email']}>" if p["email"] else ""), p["role"], ", ".join(p["files"]) or "-"
            )
        if not s.participants:
            people.add_row(Text("nobody yet — share the edit link", style="dim"), "", "")
        parts: list[RenderableType] = [head, urls, files, people]
        if s.events:
            parts.append(Text("\n".join(s.events[-3:]), style="dim"))
        parts.append(
            Text(
                "Ctrl-C pauses (rtc start resumes); rtc commit records; rtc stop ends"
                if s.persistent
                else "Ctrl-C or `rtc stop -m MSG` ends the session with one commit",
                style="dim",
            )
        )
        return Panel(Group(*parts), title="gitrtc", border_style="blue")


#: Skipped files and notes printed at the start, each; the rest are counted.
INTRO_ROWS = 20


def print_intro(console: Console, s: SessionSnapshot, notes: list[str]) -> None:
    """The plain (non-live) start lines: URLs, skipped files, notes."""
    console.print(
        f"● session {s.session}  serving {plural(s.file_count, 'file')}  {s.url}   (read-only: {s.readonly_url})",
        highlight=False,
        soft_wrap=True,
    )
    for note in notes:
        console.print(f"  {note}", style="yellow", highlight=False, soft_wrap=True)
    for label, rows in (("skipped", s.skipped), ("note", s.warnings)):
        for path, why in rows[:INTRO_ROWS]:
            console.print(f"  {label} {path}: {why}", style="yellow", highlight=False)
        if len(rows) > INTRO_ROWS:  # a large tree may have thousands: the browser's tree lists them all
            more = len(rows) - INTRO_ROWS
            console.print(
                f"  … and {more:,} more {label} lines (the browser's file tree lists every file)", style="yellow"
            )


def print_result(console: Console, result: EndResult) -> None:
    """The final summary: the commit, or why there is none."""
    if result.commit:
        console.print(
            f"✓ 1 commit on {result.branch}  {result.commit[:7]}  "
            f"({plural(len(result.coauthors), 'co-author')}, {plural(len(result.files), 'file')})",
            style="green",
            highlight=False,
        )
        for line in result.coauthors:
            console.print(f"  Co-authored-by: {line}", highlight=False)
    elif result.paused:
        console.print(f"⏸ {result.message}", highlight=False)
    elif result.ended:
        console.print(f"✓ session ended: {result.message}", highlight=False)
    else:
        console.print(f"✗ {result.message}", style="red", highlight=False)


class MirrorPanel:
    """The live panel of `rtc join`: connection, files with save state, participants."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    def __rich__(self) -> RenderableType:
        m = self.mirror
        total = len(m.links)
        up = m.connected == total and total > 0
        head = Text.assemble(
            ("● " if up else "○ ", "green" if up else "yellow"),
            (f"session {m.info.get('session', '…')}", "bold"),
            f"  on {m.info.get('branch', '…')}  mirrored into {m.folder}",
            ("" if up else f"  (connected {m.connected}/{total}, reconnecting)", "yellow"),
        )
        files = Table("file", "state", box=None, header_style="dim")
        for path in list(m.links)[:MAX_FILE_ROWS]:
            state = m.disk.files.get(path)
            label = state.label if state else "syncing"
            files.add_row(Text(path), Text(label, style="red" if state and (state.error or state.linked) else "green"))
        if total > MAX_FILE_ROWS:
            files.add_row(f"… {total - MAX_FILE_ROWS} more", "")
        people = Table("who", "role", "in", box=None, header_style="dim")
        for p in m.participants:
            people.add_row(
                Text(p["name"] + (f" <{p['email']}>" if p.get("email") else "")),  # names are
                Text(p.get("role", "")),
                Text(", ".join(p.get("files", [])) or "-"),
            )  # not markup
        return Panel(
            Group(head, files, people, Text("save files here with any editor; Ctrl-C leaves the session", style="dim")),
            title="gitrtc join",
            border_style="blue",
        )


@contextmanager
def quiet_terminal() -> Iterator[None]:
    """Keep the terminal from echoing keys (Ctrl-C's `^C`) while the live panel is shown:
    an echo moves the cursor off the panel, which then cannot erase its own top border."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else -1
    if fd < 0:
        yield
        return
    try:
        saved = termios.tcgetattr(fd)
        quiet = list(saved)
        quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except termios.error:  # not a terminal after all: nothing to keep quiet
        yield
        return
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
