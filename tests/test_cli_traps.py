"""The command line without traps (issue 18): a busy port, a failed start, a paused
session, JSON that is always JSON, help with examples, counted nouns, a clean Ctrl-C,
and what an end after `rtc commit` says. Real `rtc` processes in real repositories."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import select
import signal
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pycrdt import Map

from .conftest import FILES
from .support import RTC, RtcProcess, YClient, edit, get_json, git, make_repo, wait_until
from .test_cli import run_rtc, ws_url

DEFAULT_PORT = 8765


@contextmanager
def taken(port: int) -> Iterator[int]:
    """Keep `port` on 127.0.0.1 busy (0: any free one) for the block; the port. A port
    another program holds already is just as busy."""
    sock = socket.socket()
    try:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        yield sock.getsockname()[1] if sock.getsockname()[1] else port
    finally:
        sock.close()


def test_a_busy_default_port_moves_to_the_next_free_one_and_says_so(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    with taken(DEFAULT_PORT):
        proc = RtcProcess(repo, ["README.md"], port=None)
        try:
            info = proc.wait_ready()
            out, err = proc.terminate()
        finally:
            proc.kill()
    assert info["port"] != DEFAULT_PORT
    assert f"port {DEFAULT_PORT} is taken by another program: serving on {info['port']}" in out, out + err
    assert "serving 1 file " in out  # one file, not "1 files"


def test_a_resumed_session_prefers_its_own_port_and_says_when_it_cannot_have_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md", "--persistent"])
    try:
        first = proc.wait_ready()
        proc.terminate()  # paused
    finally:
        proc.kill()
    again = RtcProcess(repo, [], port=None)  # no --port: the session's own
    try:
        assert again.wait_ready()["port"] == first["port"]
        again.terminate()
    finally:
        again.kill()
    with taken(first["port"]):
        third = RtcProcess(repo, [], port=None)
        try:
            moved = third.wait_ready()
            out, err = third.terminate()
        finally:
            third.kill()
    assert moved["port"] != first["port"]
    assert (
        f"port {first['port']}, which this session's links use, is taken by another program: "
        f"serving on {moved['port']}, so the links changed" in out
    ), out + err


def test_a_start_that_failed_leaves_nothing_behind_and_the_port_error_says_it_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    with taken(0) as port:
        done = run_rtc(repo, "start", "--no-open", "--port", str(port), "README.md")
    assert done.returncode == 1
    assert (
        done.stderr == f"Error: cannot listen on 127.0.0.1:{port} (address already in use): "
        "choose another --port (0 = any free one)\n"
    )
    assert not list((repo / ".git/rtc/sessions").iterdir())
    proc = RtcProcess(repo, ["docs"])
    try:
        proc.wait_ready()
        out, _ = proc.terminate()
    finally:
        proc.kill()
    assert "resumed" not in out and "serving 1 file " in out
    assert proc.info["files"] == ["docs/guide.md"]


def test_resuming_with_other_paths_says_which_files_it_serves_and_why(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md", "--persistent"])
    try:
        proc.wait_ready()
        proc.terminate()
    finally:
        proc.kill()
    again = RtcProcess(repo, ["docs"])
    try:
        again.wait_ready()
        out, _ = again.terminate()
    finally:
        again.kill()
    assert "resumed paused session" in out and "serving its 1 file: README.md" in out
    assert "not the paths given (docs): a session keeps its files until it ends" in out
    assert again.info["files"] == ["README.md"]


def test_a_paused_session_shows_in_status_and_rtc_stop_ends_it_with_its_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    base = git(repo, "rev-parse", "HEAD").strip()
    proc = RtcProcess(repo, ["README.md", "--persistent"])
    try:
        info = proc.wait_ready()
        asyncio.run(edit(ws_url(proc, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "A. ")))
        out, _ = proc.terminate()
    finally:
        proc.kill()
    assert "paused" in out
    shown = run_rtc(repo, "status")
    assert shown.returncode == 0, shown.stderr
    assert "(paused)" in shown.stdout and info["url"] in shown.stdout and "README.md" in shown.stdout
    data = json.loads(run_rtc(repo, "status", "--json").stdout)
    assert data["state"] == "paused" and data["url"] == info["url"] and data["readonly_url"] == info["readonly_url"]
    refused = run_rtc(repo, "commit")
    assert refused.returncode == 1 and "paused" in refused.stderr and "rtc stop ends it" in refused.stderr
    done = run_rtc(repo, "stop", "-m", "Ended while paused")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == git(repo, "rev-parse", "HEAD").strip()
    assert "(1 co-author, 1 file)" in done.stderr
    assert git(repo, "rev-parse", "HEAD^").strip() == base
    assert git(repo, "show", "HEAD:README.md").startswith("A. # Project")
    assert "Co-authored-by: Alice <alice@example.org>" in git(repo, "log", "-1", "--format=%B")
    assert not list((repo / ".git/rtc/sessions").iterdir())
    assert json.loads(run_rtc(repo, "status", "--json").stdout) == {"state": "none"}


def test_status_json_is_always_json_and_the_help_has_examples(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    none = run_rtc(repo, "status", "--json")
    assert none.returncode == 0 and json.loads(none.stdout) == {"state": "none"}
    outside = tmp_path / "plain"
    outside.mkdir()
    broken = run_rtc(outside, "status", "--json")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["state"] == "error" and "git repository" in json.loads(broken.stdout)["error"]
    alone = run_rtc(repo)
    assert alone.returncode == 0 and alone.stdout.startswith("Usage: rtc") and "Examples:" in alone.stdout
    commands = alone.stdout.split("Commands:")[1].split("Examples:")[0]
    verbs = re.findall(r"^  (\w+) ", commands, re.M)
    assert {"start", "stop", "status", "commit", "invite", "kick", "join"} <= set(verbs)
    assert "..." not in commands  # summaries whole, not cut off
    for verb in verbs:
        helped = run_rtc(repo, verb, "--help")
        assert helped.returncode == 0 and "Examples:" in helped.stdout and f"rtc {verb}" in helped.stdout, verb


def test_an_end_after_rtc_commit_says_nothing_changed_since_that_commit(tmp_path: Path) -> None:
    """In the terminal of `rtc stop` and of `rtc start`, and in every tab (the session
    room's `message`, which the browser shows)."""
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md"])

    async def scenario() -> tuple[str, str]:
        await edit(ws_url(proc, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "A. "))
        committed = await asyncio.to_thread(run_rtc, repo, "commit", "-m", "checkpoint")
        assert committed.returncode == 0, committed.stderr
        _, session = await get_json(f"{proc.base}/api/session", proc.info["token"])
        url = f"{proc.ws_base}{session['session_room']}?token={proc.info['token']}&name=Tab"
        async with YClient(url) as tab:
            await tab.wait_synced()
            stopped = await asyncio.to_thread(run_rtc, repo, "stop")
            assert stopped.returncode == 0, stopped.stderr
            await tab.wait_closed(timeout=30)
            shown = tab.doc.get("session", type=Map).get("message")
        return committed.stdout.strip(), f"{stopped.stderr}\n{shown}"

    try:
        proc.wait_ready()
        commit, said = asyncio.run(scenario())
        out, _ = proc.proc.communicate(timeout=30)
    finally:
        proc.kill()
    expected = f"nothing changed since commit {commit[:7]}"
    stop_line, tab_message = said.split("\n", 1)
    assert expected in stop_line and expected in tab_message and expected in out
    assert git(repo, "rev-parse", "HEAD").strip() == commit


class Screen:
    """What a terminal shows after some output: the few controls rich's live panel uses
    (cursor up, erase line), with the terminal's deferred wrap at the last column."""

    CONTROL = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b.")

    def __init__(self, columns: int, rows: int) -> None:
        self.columns, self.rows = columns, rows
        self.lines: list[list[str]] = [[]]
        self.row = self.col = 0
        self.wrap = False

    def feed(self, text: str) -> None:
        at = 0
        while at < len(text):
            control = self.CONTROL.match(text, at)
            if control:
                if control.group(2) == "A":
                    top = max(0, len(self.lines) - self.rows)
                    self.row, self.wrap = max(top, self.row - int(control.group(1) or 1)), False
                elif control.group(2) == "K" and control.group(1) == "2":
                    self.lines[self.row] = []
                at = control.end()
                continue
            char = text[at]
            if char == "\r":
                self.col, self.wrap = 0, False
            elif char == "\n":
                self._down()
            elif char >= " ":
                if self.wrap:
                    self._down()
                    self.col = 0
                line = self.lines[self.row]
                line.extend(" " * (self.col + 1 - len(line)))
                line[self.col] = char
                self.col += 1
                if self.col == self.columns:
                    self.col, self.wrap = self.columns - 1, True
            at += 1

    def _down(self) -> None:
        self.row, self.wrap = self.row + 1, False
        if self.row == len(self.lines):
            self.lines.append([])

    def text(self) -> list[str]:
        return ["".join(line).rstrip() for line in self.lines]


def test_ctrl_c_leaves_no_stray_border_of_the_live_panel(tmp_path: Path) -> None:
    import fcntl
    import pty
    import termios

    repo = make_repo(tmp_path / "r", FILES)
    columns, rows = 100, 40
    pid, fd = pty.fork()
    if pid == 0:  # the child: `rtc start` in a terminal of that size
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        os.chdir(repo)
        os.execvpe(
            RTC[0],
            [*RTC, "start", "--port", "0", "--no-open", "README.md"],
            {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)},
        )
    output = bytearray()

    def read(timeout: float) -> bool:
        """Read what is there; False at the end of the output."""
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        output.extend(chunk)
        return bool(chunk)

    try:
        wait_until(
            lambda: not read(0.05) or (b"gitrtc" in output and (repo / ".git/rtc/session.json").exists()),
            what="the live panel",
        )
        settled = time.monotonic() + 1.0  # a refresh or two of the panel (4 a second)
        while time.monotonic() < settled:
            read(0.05)
        os.write(fd, b"\x03")  # Ctrl-C, typed
        deadline = time.monotonic() + 30
        while read(0.1) and time.monotonic() < deadline:
            pass
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")
    screen = Screen(columns, rows)
    screen.feed(output.decode("utf-8", errors="replace"))
    shown = "\n".join(screen.text())
    assert "session ended" in shown
    assert not any(mark in shown for mark in "╭╰│"), shown
    assert "^C" not in shown
