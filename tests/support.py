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
from pycrdt import Doc, Text

from gitrtc import protocol
from gitrtc.client import RoomClient

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


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    pause: Callable[[], object] = lambda: time.sleep(0.02),
) -> Any:
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

    def __init__(
        self,
        repo: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        gitdir: Path | None = None,
        port: str | None = "0",
    ) -> None:
        self.repo = repo
        self.gitdir = gitdir or repo / ".git"  # a linked worktree has its own
        self.proc = subprocess.Popen(  # port None: no --port, as a user starts it
            [*RTC, "start", *(["--port", port] if port is not None else []), "--no-open", *args],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
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


class YClient(RoomClient):
    """The package's y-websocket client (`gitrtc.client.RoomClient`), keeping the auth
    and awareness frames it receives for tests to look at."""

    def __init__(self, url: str, doc: Doc | None = None) -> None:
        super().__init__(url, doc)
        self.auth_messages: list[bytes] = []
        self.awareness_frames: list[bytes] = []
        self.on_message = self._keep

    def _keep(self, message: protocol.Message, frame: bytes) -> None:
        if message.type is protocol.MessageType.AUTH:
            self.auth_messages.append(frame)
        elif message.type is protocol.MessageType.AWARENESS:
            self.awareness_frames.append(frame)

    async def send_raw(self, data: bytes) -> None:
        await self.send(data)


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


def make_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class MemoryTransport:
    """An in-memory `rooms.Transport` (the core is transport-agnostic) for in-process tests
    of rooms (fuzzing, fan-out): frames collected in `sent`, the close in `closed`."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def try_send(self, frames: list[bytes]) -> bool:
        self.sent.extend(frames)
        return True

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
