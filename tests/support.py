"""Shared test helpers: real git repositories, real `rtc` processes, a real pycrdt client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from pycrdt import Doc, Text, TransactionEvent

from gitrtc import protocol

from .corpus import CORPUS  # noqa: F401  (where the real-world test data is: see corpus.py)

ROOT = Path(__file__).resolve().parents[1]
RTC = [sys.executable, "-m", "gitrtc"]


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in `repo` as a user would; return stdout."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def make_repo(path: Path, files: dict[str, str | bytes]) -> Path:
    """A git repository at `path` with `files` committed on `main`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Owner Person")
    git(path, "config", "user.email", "owner@example.org")
    git(path, "config", "commit.gpgsign", "false")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
               pause: Callable[[], object] = lambda: time.sleep(0.02)) -> Any:
    """Poll `predicate` until it returns something truthy (no fixed sleeps in tests).

    `pause` runs between looks (a browser test passes one that lets playwright work).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause()


async def async_wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """`wait_until` for async tests."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class RtcProcess:
    """`rtc start` running as a real process in a repository."""

    def __init__(self, repo: Path, args: list[str], env: dict[str, str] | None = None,
                 gitdir: Path | None = None, port: str | None = "0") -> None:
        self.repo = repo
        self.gitdir = gitdir or repo / ".git"  # a linked worktree has its own
        self.proc = subprocess.Popen(  # port None: no --port, as a user starts it
            [*RTC, "start", *(["--port", port] if port is not None else []), "--no-open", *args],
            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        self.info: dict[str, Any] = {}
        self.output: tuple[str, str] = ("", "")

    @property
    def session_file(self) -> Path:
        return self.gitdir / "rtc" / "session.json"

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"rtc start exited {self.proc.returncode}: {out}\n{err}")
            try:
                data = json.loads(self.session_file.read_text())
            except (OSError, ValueError):
                return None
            return data if data.get("pid") == self.proc.pid else None

        self.info = wait_until(ready, timeout, "session.json")
        return self.info

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.info['port']}/rooms/"

    def stop(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`rtc stop ARGS` from another process, then wait for `rtc start` to exit."""
        done = subprocess.run([*RTC, "stop", *args], cwd=self.repo, capture_output=True, text=True)
        if done.returncode == 0:
            self.output = self.proc.communicate(timeout=30)
        return done

    def terminate(self, sig: int = signal.SIGTERM) -> tuple[str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        return out, err

    def kill(self) -> None:
        """Make sure the process is gone and its pipes are closed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


class YClient:
    """A real y-websocket client built from pycrdt, over aiohttp."""

    def __init__(self, url: str, doc: Doc | None = None) -> None:
        self.url = url
        self.doc = doc or Doc()
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.auth_messages: list[bytes] = []
        self.awareness_frames: list[bytes] = []
        self._session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sub = None
        self._applying = False
        self._sending: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> YClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, headers: dict[str, str] | None = None) -> None:
        self._session = aiohttp.ClientSession()
        self.ws = await self._session.ws_connect(self.url, headers=headers, max_msg_size=0)
        self._sub = self.doc.observe(self._local_change)
        await self.ws.send_bytes(protocol.sync_step1(self.doc))
        self._reader = asyncio.get_running_loop().create_task(self._read())

    def _local_change(self, event: TransactionEvent) -> None:
        if self._applying or self.ws is None or self.ws.closed:
            return
        task = asyncio.get_running_loop().create_task(self._send(protocol.sync_update(event.update)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, frame: bytes) -> None:
        try:
            if self.ws is not None:
                await self.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError):
            pass  # dropped connection: the edit stays in the doc and goes out on the next sync

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.BINARY:
                continue
            m = protocol.parse(msg.data)
            if m.type is protocol.MessageType.SYNC:
                if m.sync is protocol.SyncType.STEP1:
                    await self.ws.send_bytes(protocol.sync_step2(self.doc.get_update(m.payload)))
                else:
                    self._applying = True
                    try:
                        self.doc.apply_update(m.payload)
                    finally:
                        self._applying = False
                    if m.sync is protocol.SyncType.STEP2:
                        self.synced.set()
            elif m.type is protocol.MessageType.AUTH:
                self.auth_messages.append(msg.data)
            elif m.type is protocol.MessageType.AWARENESS:
                self.awareness_frames.append(msg.data)
        self.close_code = self.ws.close_code
        self.closed.set()

    async def send_raw(self, data: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(data)

    async def wait_synced(self, timeout: float = 20) -> None:
        await asyncio.wait_for(asyncio.shield(self.synced.wait()), timeout)

    async def wait_closed(self, timeout: float = 20) -> int | None:
        await asyncio.wait_for(asyncio.shield(self.closed.wait()), timeout)
        return self.close_code

    async def close(self) -> None:
        if self._sub is not None:
            self.doc.unobserve(self._sub)
            self._sub = None
        if self._sending:  # edits made just before closing leave first, as a real client's would
            await asyncio.gather(*self._sending)
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (asyncio.TimeoutError, aiohttp.ClientError):
                self._reader.cancel()
        if self._session is not None:
            await self._session.close()


async def get_json(url: str, token: str | None) -> tuple[int, Any]:
    """GET a JSON endpoint with a bearer token; (status, body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as response:
            return response.status, await response.json(content_type=None)


async def edit(url: str, fn: Callable[[Text], Any], doc: Doc | None = None) -> str:
    """Apply `fn` to the room's `source` through one client, which then closes (its edit
    leaves before the close); the text it left with."""
    async with YClient(url, doc) as client:
        await client.wait_synced()
        source = client.doc.get("source", type=Text)
        fn(source)
        return str(source)


async def edit_stored(url: str, fn: Callable[[Text], Any], doc: Doc | None = None) -> str:
    """`edit`, returning once a second client has received the edit: the server forwards
    an update only after it is stored, so from then on it survives a `kill -9`."""
    async with YClient(url) as witness:
        await witness.wait_synced()
        expected = await edit(url, fn, doc)
        seen = witness.doc.get("source", type=Text)
        await async_wait_until(lambda: str(seen) == expected, what="the edit to be stored and forwarded")
        return expected
