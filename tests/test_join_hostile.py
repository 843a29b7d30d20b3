"""`rtc join` against a server it should not trust, and with the joiner's own work at stake.

The hostile server is a small real aiohttp server speaking just enough of gitrtc's API
(`/api/session`, `/api/original/{room}`) and of y-websocket (step 2 with the room's
content, then the end of the session); the joins are real `rtc join` processes. After
each refusal the file system is checked: nothing is written outside DIR, nothing where
the server pointed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from pycrdt import Doc, Text

from gitrtc import protocol

from .conftest import FILES
from .support import RTC, RtcProcess, async_wait_until, git, make_repo

TOKEN = "hostile-token"


def text_update(content: str) -> bytes:
    """A room's whole state for a text file (YUnicode: `source`)."""
    doc = Doc()
    doc.get("source", type=Text).insert(0, content)
    return doc.get_update()


class HostileServer:
    """Serves a session listing and rooms of the test's choosing; ends the session once
    every room has been synced (so an old, trusting `rtc join` runs to its end)."""

    def __init__(self, session: dict[str, Any], rooms: dict[str, tuple[bytes, bytes]]) -> None:
        self.session = session
        self.rooms = rooms  # room -> (original bytes, update the room's step 2 carries)
        self.synced: set[str] = set()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/session", self._session)
        app.router.add_get("/api/original/{room:.*}", self._original)
        app.router.add_get("/rooms/{room:.*}", self._room)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/#t={TOKEN}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _session(self, request: web.Request) -> web.Response:
        return web.json_response(self.session)

    async def _original(self, request: web.Request) -> web.Response:
        room = self.rooms.get(request.match_info["room"])
        return web.Response(body=room[0]) if room else web.Response(status=404)

    async def _room(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        name = request.match_info["room"]
        room = self.rooms.get(name)
        if room is None:
            await ws.close(code=4404)
            return ws
        async for msg in ws:
            if msg.type is not WSMsgType.BINARY:
                continue
            m = protocol.parse(msg.data)
            if m.type is protocol.MessageType.SYNC and m.sync is protocol.SyncType.STEP1:
                await ws.send_bytes(protocol.sync_step2(room[1]))
                self.synced.add(name)
                break
        # stay a while, so the join writes its files, then end the session
        while len(self.synced) < len(self.rooms):  # noqa: ASYNC110  (the other rooms' handlers add to it)
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        await ws.close(code=4410, message=b'{"commit": null, "branch": "main"}')
        return ws


@pytest.fixture
async def hostile() -> AsyncIterator[list[HostileServer]]:
    servers: list[HostileServer] = []
    yield servers
    for server in servers:
        await server.stop()


async def serve(
    servers: list[HostileServer], session: dict[str, Any], rooms: dict[str, tuple[bytes, bytes]]
) -> HostileServer:
    server = HostileServer(session, rooms)
    await server.start()
    servers.append(server)
    return server


async def rtc_join(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run `rtc join ARGS` to its end; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *RTC,
        "join",
        *args,
        "--name",
        "Joan",
        "--email",
        "joan@example.org",
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def read_until(proc: asyncio.subprocess.Process, text: str, timeout: float = 60) -> str:
    """What `rtc join` printed up to the line containing `text`; its stderr if it exits first."""
    assert proc.stdout is not None and proc.stderr is not None
    said = ""
    while text not in said:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode()
        if not line:
            raise AssertionError(
                f"rtc join exited before printing {text!r}: {said}{(await proc.stderr.read()).decode()}"
            )
        said += line
    return said


async def finish(proc: asyncio.subprocess.Process | None) -> None:
    """Make sure an `rtc join` process is gone (a failed test leaves it reconnecting)."""
    if proc is not None and proc.returncode is None:
        proc.kill()
        await proc.communicate()


def listing(tmp_path: Path) -> set[str]:
    """Every path under tmp_path (to see what a join wrote, and where)."""
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}


def one_line_refusal(code: int, err: str, *words: str) -> None:
    assert code != 0, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for word in words:
        assert word in lines[0], err


GOOD_ROOM = "abcdefgh.0123456789abcdef"


def session_json(session: object = "0123456789abcdef", files: object = None, base: object = None) -> dict[str, Any]:
    return {
        "session": session,
        "role": "editor",
        "state": "live",
        "branch": "main",
        "base": base,
        "files": files if files is not None else [{"path": "README.md", "kind": "text", "room": GOOD_ROOM}],
        "participants": [],
    }


HOSTILE_LISTINGS = {
    # the session id was a folder name: ../ and absolute ids put the join's state anywhere
    "session id with ..": (lambda tmp: session_json(session="../../escaped-session"), "session id"),
    "absolute session id": (lambda tmp: session_json(session=str(tmp / "absolute-session")), "session id"),
    "session id with a control character": (lambda tmp: session_json(session="abc\x1b[2Jdef"), "session id"),
    # paths: a .git folder in another case (the same folder on macOS and Windows), control
    # characters (a terminal escape in a file name), a backslash (a separator on Windows)
    ".GIT in a path": (
        lambda tmp: session_json(files=[{"path": ".GIT/hooks/pre-commit", "kind": "text", "room": GOOD_ROOM}]),
        ".GIT",
    ),
    "control character in a path": (
        lambda tmp: session_json(files=[{"path": "docs/\x1b]0;pwned\x07.md", "kind": "text", "room": GOOD_ROOM}]),
        "path",
    ),
    "backslash in a path": (
        lambda tmp: session_json(files=[{"path": "..\\..\\escaped.md", "kind": "text", "room": GOOD_ROOM}]),
        "path",
    ),
    "a file that is also a folder": (
        lambda tmp: session_json(
            files=[
                {"path": "a.md", "kind": "text", "room": GOOD_ROOM},
                {"path": "a.md/b.md", "kind": "text", "room": "abcdefgh.1111111111111111"},
            ]
        ),
        "a.md",
    ),
    # room names go into URLs: a .. segment or a query is not a room
    "room name with ..": (
        lambda tmp: session_json(files=[{"path": "README.md", "kind": "text", "room": "../../api/session"}]),
        "room name",
    ),
    "room name with a query": (
        lambda tmp: session_json(files=[{"path": "README.md", "kind": "text", "room": "x?token=1"}]),
        "room name",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LISTINGS))
async def test_hostile_names_are_refused_and_nothing_is_written(
    tmp_path: Path, hostile: list[HostileServer], case: str
) -> None:
    make_session, word = HOSTILE_LISTINGS[case]
    session = make_session(tmp_path)
    rooms = {f["room"]: (b"hello\n", text_update("hello\n")) for f in session["files"]}
    server = await serve(hostile, session, rooms)
    folder = tmp_path / "join"  # a plain folder: the mirror's state would go inside it
    before = listing(tmp_path)
    code, _out, err = await rtc_join(server.url, str(folder))
    one_line_refusal(code, err, "unsafe", word)
    assert listing(tmp_path) - before <= {"join"}, "rtc join wrote something"
    assert not any(folder.iterdir())


async def test_a_session_too_large_to_mirror_says_so_and_what_to_do(
    tmp_path: Path, hostile: list[HostileServer]
) -> None:
    files = [{"path": f"d/f{i}.md", "kind": "text", "room": f"abcdefgh.{i:016x}"} for i in range(10_001)]
    server = await serve(hostile, session_json(files=files), {})
    folder = tmp_path / "join"
    code, _out, err = await rtc_join(server.url, str(folder))
    one_line_refusal(code, err, "10,001 files", "at most 10,000", "browser")
    assert "unsafe" not in err
    assert not any(folder.iterdir())


async def test_a_malformed_update_from_the_server_is_a_one_line_error(
    tmp_path: Path, hostile: list[HostileServer]
) -> None:
    server = await serve(hostile, session_json(), {GOOD_ROOM: (b"hello\n", b"\x07garbage-not-an-update")})
    folder = tmp_path / "join"
    code, _out, err = await rtc_join(server.url, str(folder))
    one_line_refusal(code, err, "cannot be applied")
    assert not (folder / "README.md").exists()


async def test_base_null_does_not_skip_the_checks(tmp_path: Path, hostile: list[HostileServer]) -> None:
    clone = make_repo(tmp_path / "clone", FILES)
    (clone / "README.md").write_text("uncommitted work\n")
    server = await serve(hostile, session_json(base=None), {GOOD_ROOM: (b"hello\n", text_update("hello\n"))})
    code, _out, err = await rtc_join(server.url, str(clone))
    one_line_refusal(code, err, "base")
    assert (clone / "README.md").read_text() == "uncommitted work\n"
    for odd in (["a list"], "HEAD", "0" * 39, 42):
        hostile_session = session_json(base=odd)
        server.session = hostile_session
        code, _out, err = await rtc_join(server.url, str(clone))
        one_line_refusal(code, err, "base")
        assert (clone / "README.md").read_text() == "uncommitted work\n"


async def test_a_symlinked_folder_in_dir_is_not_followed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    folder = tmp_path / "plain"
    outside = tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "docs").symlink_to(outside)  # a plain folder whose docs/ leads elsewhere
    owner = RtcProcess(repo, ["README.md", "docs"])
    try:
        info = owner.wait_ready()
        code, _out, err = await rtc_join(info["url"], str(folder))
        one_line_refusal(code, err, "symbolic link")
    finally:
        owner.terminate()
        owner.kill()
    assert list(outside.iterdir()) == [], "rtc join wrote through the symlink"
    assert not (folder / "README.md").exists(), "a refused join wrote some files first"


async def test_a_symlinked_file_in_dir_is_not_read_or_replaced(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    folder = tmp_path / "plain"
    folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("private\n")
    (folder / "README.md").symlink_to(secret)
    owner = RtcProcess(repo, ["README.md"])
    try:
        info = owner.wait_ready()
        code, _out, err = await rtc_join(info["url"], str(folder), "--bring-changes")
        one_line_refusal(code, err, "symbolic link")
        assert "private" not in (repo / "README.md").read_text()
    finally:
        owner.terminate()
        owner.kill()
    assert (folder / "README.md").is_symlink() and secret.read_text() == "private\n"


async def test_uncommitted_work_brought_in_is_kept_as_a_copy(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    mine = "# Project\n\nHello world.\nUncommitted here.\n"
    (clone / "README.md").write_text(mine)
    owner = RtcProcess(repo, ["README.md"])
    proc = None
    try:
        info = owner.wait_ready()
        proc = await asyncio.create_subprocess_exec(
            *RTC,
            "join",
            info["url"],
            str(clone),
            "--bring-changes",
            "--name",
            "Joan",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        said = await read_until(proc, "mirroring")
        kept = [line.split(" is kept at ", 1)[1].strip() for line in said.splitlines() if " is kept at " in line]
        assert len(kept) == 1, said
        assert Path(kept[0]).read_text() == mine
        assert Path(kept[0]).resolve().is_relative_to((clone / ".git" / "rtc" / "join").resolve())
        stopped = await asyncio.to_thread(owner.stop, "-m", "brought")
        assert stopped.returncode == 0, stopped.stderr
        await asyncio.wait_for(proc.communicate(), 30)
    finally:
        owner.kill()
        await finish(proc)
    assert "Uncommitted here." in git(repo, "show", "HEAD:README.md")


async def test_an_untracked_file_in_the_way_is_not_overwritten(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    folder = tmp_path / "plain"  # not a checkout: nothing here is committed
    folder.mkdir()
    (folder / "README.md").write_text("my own notes\n")
    owner = RtcProcess(repo, ["README.md"])
    try:
        info = owner.wait_ready()
        code, _out, err = await rtc_join(info["url"], str(folder))
        one_line_refusal(code, err, "README.md", "--bring-changes")
    finally:
        owner.terminate()
        owner.kill()
    assert (folder / "README.md").read_text() == "my own notes\n"


@pytest.mark.parametrize("how", ["environment", "stdin"])
async def test_the_link_can_stay_out_of_the_process_list(tmp_path: Path, how: str) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    folder = tmp_path / "plain"
    owner = RtcProcess(repo, ["README.md"])
    proc = None
    try:
        info = owner.wait_ready()
        env = {**os.environ, "RTC_JOIN_URL": info["url"]} if how == "environment" else dict(os.environ)
        args = [str(folder)] if how == "environment" else ["-", str(folder)]
        proc = await asyncio.create_subprocess_exec(
            *RTC,
            "join",
            *args,
            "--name",
            "Joan",
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        if how == "stdin":
            proc.stdin.write(info["url"].encode() + b"\n")
        proc.stdin.close()
        await read_until(proc, "mirroring")
        if sys.platform.startswith("linux"):
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            assert info["token"].encode() not in cmdline
        await async_wait_until(lambda: (folder / "README.md").exists(), what="the mirrored file")
        stopped = await asyncio.to_thread(owner.stop, "-m", "joined")
        assert stopped.returncode == 0, stopped.stderr
        await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0
    finally:
        owner.kill()
        await finish(proc)
    assert (folder / "README.md").read_bytes() == git(repo, "show", "HEAD:README.md").encode()


def test_no_link_anywhere_is_a_one_line_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RTC_JOIN_URL"}
    done = subprocess.run(
        [*RTC, "join", str(tmp_path)], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    one_line_refusal(done.returncode, done.stderr, "RTC_JOIN_URL")
    assert listing(tmp_path) == set()
