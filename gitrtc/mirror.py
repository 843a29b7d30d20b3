"""`rtc join`: mirror a session into a local folder and keep both in sync.

Each shared file gets a local pycrdt doc connected to its room (`RoomLink`, which
reconnects by itself); remote changes are written to the file with the same debounced
atomic write-back the owner uses (`disk.DiskSync`), and local saves (any editor, a local
JupyterLab) are merged in through the codec's diff → minimal CRDT operations. Edits made
while disconnected stay in the local doc and reach the session through the sync
handshake on reconnect.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from pycrdt import Awareness, Doc, TransactionEvent

from . import protocol
from .disk import DiskSync, atomic_write
from .documents import Codec, open_codec
from .errors import CLOSE_CODES, DocumentError, JoinError
from .origins import DiskMerge

log = logging.getLogger(__name__)

CLOSE_ENDED = CLOSE_CODES["ENDED"]
FATAL_CLOSES = {CLOSE_CODES["UNAUTHORIZED"], CLOSE_CODES["FORBIDDEN"], CLOSE_CODES["UNKNOWN_ROOM"]}
#: Seconds between re-announcements of the mirror's presence (browsers drop a state not
#: renewed within 30 s).
PRESENCE_EVERY = 15.0
#: The colours the browser client picks from (by name), so a terminal participant looks alike.
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#1a9e9e", "#d6359f", "#7f8f1a",
           "#9a6324", "#800000", "#2e7d32", "#000075", "#c05800", "#5b5bd6")


@dataclass(frozen=True, slots=True)
class JoinURL:
    """The parts of a join URL: where the server is and the token from its fragment."""

    http: str
    ws: str
    token: str


def parse_join_url(url: str) -> JoinURL:
    """Split `http://HOST:PORT/#t=TOKEN`; `JoinError` if it is not a join URL."""
    parts = urlsplit(url)
    token = ""
    for item in parts.fragment.split("&"):
        if item.startswith("t="):
            token = item[2:]
    if parts.scheme not in ("http", "https") or not parts.netloc or not token:
        raise JoinError(f"{url!r} is not a session link: copy the whole URL rtc start printed (with #t=…)")
    path = parts.path.rstrip("/")
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    return JoinURL(f"{parts.scheme}://{parts.netloc}{path}", f"{ws_scheme}://{parts.netloc}{path}", token)


def safe_relative(path: str) -> PurePosixPath:
    """A server-given path, refusing anything that could leave the mirror folder."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or ".git" in pure.parts:
        raise JoinError(f"the session lists an unsafe path {path!r}: refusing to mirror it")
    return pure


class RoomLink:
    """A doc kept in sync with one room over a WebSocket that reconnects by itself."""

    def __init__(self, http: aiohttp.ClientSession, url: str, doc: Doc,
                 on_remote: Callable[[], None], on_state: Callable[[str], None],
                 presence: Callable[[], bytes] | None = None) -> None:
        self.http = http
        #: This client's awareness frame, sent on connecting and every `PRESENCE_EVERY` s.
        self.presence = presence
        self.url = url
        self.doc = doc
        self.synced = asyncio.Event()
        self.ended: dict[str, Any] | None = None
        self._on_remote = on_remote
        self._on_state = on_state
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._applying = False
        self._sub = doc.observe(self._local_change)

    def _local_change(self, event: TransactionEvent) -> None:
        if self._applying:
            self._on_remote()
            return
        if self._ws is not None and not self._ws.closed:
            asyncio.get_running_loop().create_task(self._send(protocol.sync_update(event.update)))
        # offline: the edit stays in the doc and goes out in the next sync handshake

    async def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            try:
                await ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                pass  # the reader notices the drop and the next handshake resends it

    async def run(self) -> None:
        """Connect, sync, follow; reconnect with back-off until the session ends."""
        delay = 0.5
        while self.ended is None:
            try:
                async with self.http.ws_connect(self.url, max_msg_size=0, heartbeat=30) as ws:
                    self._ws = ws
                    delay = 0.5
                    self._on_state("connected")
                    await ws.send_bytes(protocol.sync_step1(self.doc))
                    announcing = asyncio.ensure_future(self._announce(ws)) if self.presence else None
                    try:
                        await self._pump(ws)
                    finally:
                        if announcing is not None:
                            announcing.cancel()
                    code = ws.close_code
            except (aiohttp.ClientError, OSError) as exc:
                code = None
                log.info("connection failed: %s", exc)
            self._ws = None
            if self.ended is None and code != CLOSE_ENDED:
                self._on_state("disconnected")
            if self.ended is not None or code == CLOSE_ENDED:
                self.ended = self.ended or {}
                return
            if code in FATAL_CLOSES:
                raise JoinError(f"the session refused this link (close code {code})")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    async def _announce(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send our presence now and renew it while connected."""
        assert self.presence is not None
        while not ws.closed:
            try:
                await ws.send_bytes(self.presence())
            except (ConnectionError, RuntimeError):
                return  # the reader notices the drop and reconnects
            await asyncio.sleep(PRESENCE_EVERY)

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):
                if ws.close_code == CLOSE_ENDED or msg.data == CLOSE_ENDED:
                    self.ended = _end_reason(msg.extra)
                return
            if msg.type is not aiohttp.WSMsgType.BINARY:
                continue
            m = protocol.parse(msg.data)
            if m.type is protocol.MessageType.AUTH:  # the server refused a change of ours (not applied there)
                reason, _ = protocol.read_var_bytes(m.payload, 1)
                log.warning("%s: the session refused a change: %s", self.url.split("?")[0],
                            reason.decode("ascii", "replace"))
                continue
            if m.type is not protocol.MessageType.SYNC:
                continue
            if m.sync is protocol.SyncType.STEP1:
                await ws.send_bytes(protocol.sync_step2(self.doc.get_update(m.payload)))
                continue
            self._applying = True
            try:
                self.doc.apply_update(m.payload)
            finally:
                self._applying = False
            if m.sync is protocol.SyncType.STEP2:
                self.synced.set()


async def _first_sync(links: Any, tasks: list[asyncio.Future[None]]) -> None:
    """Wait until every room has synced once; a link that fails first raises its error."""
    synced = asyncio.ensure_future(asyncio.gather(*(link.synced.wait() for link in links)))
    await asyncio.wait([synced, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if synced.done():
        return
    synced.cancel()
    for task in tasks:
        if task.done() and task.exception() is not None:
            for other in tasks:
                other.cancel()
            raise task.exception()  # type: ignore[misc]
    raise JoinError("the session ended before this folder was synced")


def _end_reason(extra: object) -> dict[str, Any]:
    """The server's JSON close reason at the end of a session (commit, branch)."""
    try:
        data = json.loads(extra) if isinstance(extra, (str, bytes)) and extra else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Mirror:
    """A session mirrored into `folder`."""

    def __init__(self, url: str, folder: Path, name: str, email: str,
                 bring_changes: bool = False, say: Callable[[str], None] = print) -> None:
        self.link = parse_join_url(url)
        self.folder = folder
        self.name = name
        self.email = email
        self.bring_changes = bring_changes
        self.say = say
        self.docs: dict[str, Doc] = {}
        self.codecs: dict[str, Codec] = {}
        self.links: dict[str, RoomLink] = {}
        self.info: dict[str, Any] = {}
        self.disk = DiskSync(folder, self._render, lambda: True, say, self._merge_local, self._remember)
        self.state_dir: Path | None = None
        self._state_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtc-mirror")
        self._connected: set[str] = set()
        self._announced = False
        self.participants: list[dict[str, Any]] = []
        #: This person's own token (exchanged for the link's when joining; see `Access.join`).
        self.token = self.link.token
        self.presence: RoomLink | None = None

    def _remember(self, path: str, data: bytes) -> None:
        """Keep the last content both sides agreed on: the base for merging after a restart."""
        if self.state_dir is not None:  # one writer thread: kept in order, off the loop
            self._state_writer.submit(atomic_write, self._state_file(path), data)

    def _link_state(self, path: str, state: str) -> None:
        """Say when the mirror as a whole loses or regains the session (not per file)."""
        was_all = len(self._connected) == len(self.links)
        if state == "connected":
            self._connected.add(path)
        else:
            self._connected.discard(path)
        now_all = len(self._connected) == len(self.links)
        if was_all and not now_all:
            self.say("● disconnected from the session: local edits are kept; reconnecting…")
        elif now_all and not was_all and self._announced:
            self.say("● reconnected: local edits made meanwhile are being sent")

    def _state_file(self, path: str) -> Path:
        assert self.state_dir is not None
        return self.state_dir / hashlib.sha256(path.encode()).hexdigest()[:24]

    def _last_synced(self, path: str) -> bytes | None:
        if self.state_dir is None:
            return None
        try:
            return self._state_file(path).read_bytes()
        except FileNotFoundError:
            return None

    def _render(self, path: str) -> bytes:
        return self.codecs[path].dump(self.docs[path])

    async def _merge_local(self, path: str, data: bytes, base: bytes | None) -> None:
        try:
            self.codecs[path].apply_file(self.docs[path], data, DiskMerge(path), base=base)
        except DocumentError as exc:
            self.say(f"{path}: your saved file cannot be merged ({exc}); fix it and save again")

    async def run(self) -> dict[str, Any]:
        """Mirror until the session ends; return what the server said at the end."""
        headers = {"Authorization": f"Bearer {self.link.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            self.info = await self._get_json(http, "/api/session")
            await self._join(http)
            self.participants = self.info.get("participants", [])
            files = self.info["files"]
            base = self.info.get("base")
            repo = await asyncio.to_thread(_checkout_of, self.folder)
            if repo is not None and base and not await asyncio.to_thread(_has_commit, self.folder, base):
                raise JoinError(f"this checkout does not have the session's base commit {base[:10]}: "
                                "git fetch first, then join again")
            params = f"token={quote(self.token)}&name={quote(self.name)}&email={quote(self.email)}"
            for f in files:
                path = str(safe_relative(f["path"]))
                original = await self._get_bytes(http, f"/api/original/{f['room']}")
                self.codecs[path] = open_codec(path, original)
                doc = Doc()
                self.docs[path] = doc
                self.links[path] = RoomLink(http, f"{self.link.ws}/rooms/{f['room']}?{params}", doc,
                                            lambda p=path: self._remote_changed(p),
                                            lambda state, p=path: self._link_state(p, state))
            tasks = [asyncio.ensure_future(link.run()) for link in self.links.values()]
            if self.info.get("session_room"):  # be listed among the People of every browser
                self.presence = RoomLink(http, f"{self.link.ws}/rooms/{self.info['session_room']}?{params}", Doc(),
                                         lambda: None, lambda state: None, self._presence_frame())
                tasks.append(asyncio.ensure_future(self.presence.run()))
            await _first_sync(self.links.values(), tasks)
            self.state_dir = await asyncio.to_thread(_state_dir, self.folder, repo, self.info["session"])
            await self._first_write(base if repo is not None else None)
            self._announced = True
            self.say(f"● mirroring {len(files)} files of session {self.info['session']} into {self.folder}")
            watcher = asyncio.ensure_future(self.disk.watch())
            poller = asyncio.ensure_future(self._poll_participants(http))
            try:
                await asyncio.gather(*tasks)
            finally:
                watcher.cancel()
                poller.cancel()
                for task in tasks:
                    task.cancel()
                await self.disk.flush()
                self._state_writer.shutdown(wait=True)
        ended = next((link.ended for link in self.links.values() if link.ended is not None), {})
        return ended or {}

    async def _join(self, http: aiohttp.ClientSession) -> None:
        """Exchange the link's token for this person's own, bound to our name, so the owner
        can remove exactly us (`POST /api/join`); a server without it keeps the link's."""
        try:
            async with http.post(self.link.http + "/api/join", json={"name": self.name},
                                 headers={"Authorization": f"Bearer {self.link.token}"}) as response:
                if response.status == 404:
                    return
                body = await response.json(content_type=None)
                if response.status != 200 or not isinstance(body, dict) or not isinstance(body.get("token"), str):
                    error = body.get("error") if isinstance(body, dict) else None
                    raise JoinError(f"the session would not let us join: {error or response.status}")
        except aiohttp.ClientError as exc:
            raise JoinError(f"cannot reach the session at {self.link.http}: {exc}") from None
        self.token = body["token"]
        if isinstance(body.get("name"), str):
            self.name = body["name"]

    def _presence_frame(self) -> Callable[[], bytes]:
        """Our presence in the session room, as the browser client publishes its own (a
        `user`, no file open: a mirror has them all); each call renews it."""
        awareness = Awareness(Doc())
        color = PALETTE[int(hashlib.sha256(self.name.encode()).hexdigest(), 16) % len(PALETTE)]
        role = "viewer" if self.info.get("role") == "viewer" else "editor"
        state = {"user": {"name": self.name[:80], "color": color, "colorLight": f"{color}33",
                          "sid": secrets.token_hex(8), "role": role},
                 "file": None, "place": None, "client": "rtc join"}

        def frame() -> bytes:
            awareness.set_local_state(state)
            return protocol.awareness_frame(awareness.encode_awareness_update([awareness.client_id]))

        return frame

    async def _poll_participants(self, http: aiohttp.ClientSession, every: float = 2.0) -> None:
        """Keep `participants` fresh for the panel (who else is in the session)."""
        while True:
            await asyncio.sleep(every)
            try:
                self.participants = (await self._get_json(http, "/api/session")).get("participants", [])
            except JoinError as exc:
                log.info("participants not refreshed: %s", exc)

    @property
    def connected(self) -> int:
        """How many of the files' rooms are connected right now."""
        return len(self._connected)

    def _remote_changed(self, path: str) -> None:
        if path in self.disk.files:
            self.disk.changed(path)

    async def _first_write(self, base: str | None) -> None:
        for path, doc in self.docs.items():
            target = self.folder / path
            current = self.codecs[path].dump(doc)
            local = target.read_bytes() if target.is_file() else None
            if local is not None and local != current:
                synced = self._last_synced(path)
                ancestor = synced if synced is not None or not base else \
                    await asyncio.to_thread(_blob, self.folder, base, path)
                if ancestor is not None and local != ancestor:
                    if synced is None and not self.bring_changes:
                        raise JoinError(f"{path} has uncommitted changes here: commit or stash them, "
                                        "or join with --bring-changes to merge them into the session")
                    self.codecs[path].apply_file(doc, local, DiskMerge(path), base=ancestor)
                    self.say(f"{path}: your local changes were merged into the session")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.disk.track(path, local if local is not None else b"")
            self.disk.changed(path)
        await self.disk.flush()

    async def _get_json(self, http: aiohttp.ClientSession, path: str) -> dict[str, Any]:
        return json.loads(await self._get_bytes(http, path))

    async def _get_bytes(self, http: aiohttp.ClientSession, path: str) -> bytes:
        try:
            async with http.get(self.link.http + path, headers={"Authorization": f"Bearer {self.token}"}) as response:
                if response.status == 401:
                    raise JoinError("the session refused the link's token: ask for a fresh link")
                if response.status != 200:
                    raise JoinError(f"the session answered {response.status} for {path}")
                return await response.read()
        except aiohttp.ClientError as exc:
            raise JoinError(f"cannot reach the session at {self.link.http}: {exc}") from None


def _state_dir(folder: Path, repo: Path | None, session: str) -> Path:
    """Where the mirror remembers what it last synced (inside .git for a checkout)."""
    if repo is not None:
        done = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], cwd=folder,
                              capture_output=True, text=True, check=False)
        root = Path(done.stdout.strip()) / "rtc" / "mirror"
    else:
        root = folder / ".rtc-mirror"
    path = root / session
    path.mkdir(parents=True, exist_ok=True)
    return path


def _checkout_of(folder: Path) -> Path | None:
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder,
                          capture_output=True, text=True, check=False)
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def _has_commit(folder: Path, commit: str) -> bool:
    done = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=folder,
                          capture_output=True, check=False)
    return done.returncode == 0


def _blob(folder: Path, commit: str, path: str) -> bytes | None:
    top = _checkout_of(folder)
    if top is None:
        return None
    rel = (folder / path).resolve().relative_to(top.resolve()).as_posix()
    done = subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=folder, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None
