"""`rtc join`: mirror a session into a local folder and keep both in sync.

Each shared file gets a local pycrdt doc kept in sync with its room by a
`client.RoomClient` (which reconnects by itself); remote changes are written to the file
with the same debounced atomic write-back the owner uses (`disk.DiskSync`), and local
saves (any editor, a local JupyterLab) are merged in through the codec's diff → minimal
CRDT operations. Edits made while disconnected stay in the local doc and reach the
session through the sync handshake on reconnect.

The server is not trusted: everything it names is validated (`joinnames`) before it is
used; the first write of each file goes through `safefs` (never through a symlink);
the mirror's own state lives in one fixed folder (`.git/rtc/join/` of the checkout, or
`DIR/.rtc-join/`); and a local file that is not committed is never replaced without the
user asking (`--bring-changes`) and a copy kept there.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from pycrdt import Doc, Map

from . import git, joinformat, joinnames, markers, protocol, safefs
from .celldeletes import watch_remote_deletes
from .client import CLOSE_REFUSED, RoomClient
from .conflicts import attach, merge_later
from .disk import DiskSync
from .documents import MAX_FILE_BYTES, Codec
from .documents.notebook import NotebookCodec, notebook_problem
from .errors import CLOSE_CODES, DocumentError, JoinError, ProtocolError, RtcError, UnsafePathError
from .joinnames import SharedFile
from .origins import DiskMerge
from .plugins.loader import open_kind

log = logging.getLogger(__name__)

#: Largest answer accepted from the server's HTTP API (a file's original bytes are at
#: most `MAX_FILE_BYTES`; the session listing is far smaller).
MAX_RESPONSE_BYTES = MAX_FILE_BYTES + 1024 * 1024
#: Largest WebSocket message accepted from the server (a whole document with its history).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
#: Seconds between re-announcements of the mirror's presence in the session room (browsers
#: drop a state not renewed within 30 s).
PRESENCE_EVERY = 15.0
#: The colours the browser client picks from (by name), so a terminal participant looks alike.
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#1a9e9e",
    "#d6359f",
    "#7f8f1a",
    "#9a6324",
    "#800000",
    "#2e7d32",
    "#000075",
    "#c05800",
    "#5b5bd6",
)
#: What a token looks like (the server's answer to `POST /api/join` is checked against it).
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}\Z")


@dataclass(frozen=True, slots=True)
class JoinURL:
    """The parts of a join URL: where the server is and the token from its fragment."""

    http: str
    ws: str
    token: str


def parse_join_url(url: str) -> JoinURL:
    """Split `http://HOST:PORT/#t=TOKEN`; `JoinError` if it is not a join URL."""
    parts = urlsplit(url.strip())
    token = ""
    for item in parts.fragment.split("&"):
        if item.startswith("t="):
            token = item[2:]
    if parts.scheme not in ("http", "https") or not parts.netloc or not token:
        shown = url.split("#")[0]  # never echo the token
        raise JoinError(f"{shown!r} is not a session link: copy the whole URL rtc start printed (with #t=…)")
    path = parts.path.rstrip("/")
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    return JoinURL(f"{parts.scheme}://{parts.netloc}{path}", f"{ws_scheme}://{parts.netloc}{path}", token)


@dataclass(frozen=True, slots=True)
class StateDir:
    """Where the mirror keeps its own state: `root/prefix/` (one fixed place per folder)."""

    root: Path
    prefix: str

    @property
    def path(self) -> Path:
        return self.root / self.prefix

    def write(self, rel: str, data: bytes) -> Path:
        """(thread) Write a state file (0600, folders 0700); its path."""
        write_local(self.root, f"{self.prefix}/{rel}", data, mode=0o600, folder_mode=0o700)
        return self.path / rel

    def read(self, rel: str) -> bytes | None:
        """(thread) A state file's bytes, or None."""
        return read_local(self.root, f"{self.prefix}/{rel}")


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the first write does with one file, decided before anything is written."""

    local: bytes | None  # the file here before the join
    merge_base: bytes | None  # merge `local` into the session from this base
    merge: bool = False
    keep: bool = False  # keep a copy of `local`: it is not committed and will be replaced


async def _first_sync(clients: list[RoomClient], tasks: Sequence[asyncio.Future[None]]) -> None:
    """Wait until every room has synced once; a link that fails first raises its error."""
    waiting = {asyncio.ensure_future(client.synced.wait()) for client in clients}
    try:
        while waiting:
            pending: set[asyncio.Future[Any]] = {*waiting, *tasks}
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done():
                    task.result()  # a link that failed raises its error here
                    raise JoinError("the session ended before this folder was synced")
            waiting -= done
    finally:
        for wait in waiting:
            wait.cancel()


def _end_reason(extra: str) -> dict[str, Any]:
    """The server's JSON close reason at the end of a session: a commit id and a branch."""
    try:
        data = json.loads(extra) if extra else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    commit = data.get("commit")
    return {
        "commit": commit if isinstance(commit, str) and joinnames.COMMIT_ID.fullmatch(commit) else None,
        "branch": joinnames.label(data.get("branch")),
    }


class Mirror:
    """A session mirrored into `folder`."""

    def __init__(
        self,
        url: str,
        folder: Path,
        name: str,
        email: str,
        bring_changes: bool = False,
        say: Callable[[str], None] = print,
        conflict_markers: bool = False,
    ) -> None:
        self.link = parse_join_url(url)
        self.folder = folder
        self.name = name
        self.email = email
        self.bring_changes = bring_changes
        #: Write nbdime's inline markers into the cells of open source conflicts (the
        #: user asked for them: `rtc join --conflict-markers`); off, every file here is
        #: the session's document as is, byte for byte what the owner writes.
        self.conflict_markers = conflict_markers
        #: Path → (the marked bytes last written here, the same without markers).
        self._marked: dict[str, tuple[bytes, bytes]] = {}
        #: Path → the session's formatting digest last followed (`joinformat`).
        self._formats: dict[str, str] = {}
        self._http: aiohttp.ClientSession | None = None
        self._format_tasks: set[asyncio.Task[None]] = set()
        self.say = say
        self.docs: dict[str, Doc[Any]] = {}
        self.codecs: dict[str, Codec] = {}
        self.links: dict[str, RoomClient] = {}
        self.info: dict[str, Any] = {}
        self.disk = DiskSync(folder, self._render, lambda: True, say, self._merge_local, self._remember)
        self.state: StateDir | None = None
        self._state_key = ""
        self._state_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtc-mirror")
        self._connected: set[str] = set()
        self._invalid: dict[str, str] = {}  # path → why the notebook written here is invalid
        self._announced = False
        self._ended: dict[str, Any] | None = None
        self.participants: list[dict[str, Any]] = []
        #: This person's own token (exchanged for the link's when joining; see `_join`).
        self.token = self.link.token
        #: The shared files mirrored here now (path → file), and each room's path: the set
        #: is live (`joinfiles.JoinFiles`): files join, move and leave while mirroring.
        self.files: dict[str, SharedFile] = {}
        self.path_of: dict[str, str] = {}
        #: The session's shared folders (files created here inside them join the session).
        self.folders: list[str] = []
        self.params = ""
        self.tasks: dict[str, asyncio.Future[None]] = {}  # room → its link's task
        self._over = asyncio.Event()  # the session ended, or a link failed (`_failure`)
        self._failure: BaseException | None = None
        self.on_room_gone: Callable[[str], None] = lambda room: None
        #: Files saved here during the session (a delete in the session keeps a copy of them).
        self.edited_here: set[str] = set()
        self.on_files_changed: Callable[[], None] = lambda: None

    def _remember(self, path: str, data: bytes) -> None:
        """Keep the last content both sides agreed on: the base for merging after a restart."""
        marked = self._marked.get(path)
        if marked is not None and marked[0] == data:
            data = marked[1]  # the document's side: markers are never a base to merge from
        if self.state is not None:  # one writer thread: kept in order, off the loop
            self._state_writer.submit(self.state.write, self._state_file(path), data)
        codec = self.codecs.get(path)
        if isinstance(codec, NotebookCodec) and codec.schema_valid:
            loop = asyncio.get_running_loop()
            self._state_writer.submit(self._check_notebook, loop, path, data)

    def _check_notebook(self, loop: asyncio.AbstractEventLoop, path: str, data: bytes) -> None:
        """(thread) Say loudly when a notebook written here does not validate (nbformat)
        and when it does again: the folder must never silently hold an invalid one."""
        problem = notebook_problem(data)
        if problem == self._invalid.get(path):
            return
        if problem:
            self._invalid[path] = problem
            line = f"⚠ {path} here is NOT a valid notebook ({problem}): tell the session's owner"
        else:
            del self._invalid[path]
            line = f"✓ {path} here is a valid notebook again"
        loop.call_soon_threadsafe(self.say, line)

    def _link_state(self, room: str, state: str) -> None:
        """Say when the mirror as a whole loses or regains the session (not per file)."""
        was_all = len(self._connected) == len(self.links)
        if state == "connected":
            self._connected.add(room)
        else:
            self._connected.discard(room)
        now_all = len(self._connected) == len(self.links)
        if was_all and not now_all:
            self.say("● disconnected from the session: local edits are kept; reconnecting…")
        elif now_all and not was_all and self._announced:
            self.say("● reconnected: local edits made meanwhile are being sent")

    def _state_file(self, path: str) -> str:
        """A state file's name: a hash of the session, this folder and the path (never a
        name the server chose)."""
        return "synced/" + hashlib.sha256(f"{self._state_key}\0{path}".encode()).hexdigest()[:32]

    def _render(self, path: str) -> bytes:
        codec, doc = self.codecs[path], self.docs[path]
        data = codec.dump(doc)
        if self.conflict_markers and isinstance(codec, NotebookCodec):
            marked = markers.mark(codec, doc)
            if marked is not None:
                self._marked[path] = (marked, data)
                return marked
        self._marked.pop(path, None)
        self._formats.pop(path, None)
        return data

    async def _merge_local(self, path: str, data: bytes, base: bytes | None) -> None:
        self.edited_here.add(path)
        codec, doc = self.codecs[path], self.docs[path]
        resolved: list[str] = []
        if self.conflict_markers and isinstance(codec, NotebookCodec):
            marked = self._marked.get(path)
            if base is not None and marked is not None and base == marked[0]:
                base = marked[1]
            data, resolved = markers.unmark(doc, data, marked[0] if marked is not None else None)
        try:
            await merge_later(codec, doc, data, DiskMerge(path), base, _keeping_format(codec))
        except DocumentError as exc:
            self.say(f"{path}: your saved file cannot be merged ({exc}); fix it and save again")
            return
        if resolved:
            markers.close(doc, resolved)
            self.say(f"{path}: {len(resolved)} conflict(s) resolved by your edit")
        self.disk.changed(path)  # the file becomes the session's rendering (written only if it differs)

    async def run(self) -> dict[str, Any]:
        """Mirror until the session ends; return what the server said at the end."""
        await self._join()
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            info = await self._get_json(http, "/api/session")
            session = joinnames.session_id(info.get("session"))
            files = joinnames.shared_files(info.get("files"))
            self.info = {"session": session, "branch": joinnames.label(info.get("branch"))}
            self.participants = joinnames.participants(info.get("participants"))
            checkout = await asyncio.to_thread(git.checkout_of, self.folder)
            base = await self._check_base(checkout, info.get("base"))
            self.state = self._state_dir(checkout)
            self._state_key = f"{session}\0{self.folder}"
            self.folders = joinnames.folders(info.get("folders"))
            for f in files:  # fail before connecting if a path leads through a link here
                await asyncio.to_thread(read_local, self.folder, f.path)
            self.params = f"name={quote(self.name)}&email={quote(self.email)}"  # the token goes in a header
            self._http = http
            for f in files:
                self.open_link(f, await self._get_bytes(http, f"/api/original/{f.room}"))
            tasks = [self.follow(http, f.room) for f in files]
            session_room = info.get("session_room")
            present = None
            if session_room is not None:  # be listed among the People of every browser
                present = self._spawn(
                    self._present(http, joinnames.room_name(session_room), self.params, info.get("role"))
                )
            try:
                await _first_sync(list(self.links.values()), [*tasks, *([present] if present else [])])
                for path in list(self.links):  # written like the owner's file from the first write
                    mark = self._format_wanted(path)
                    if mark is not None:
                        await self._follow_format(path, mark)
                await self._first_write(files, checkout, base)
            except BaseException:
                for task in [*self.tasks.values(), *([present] if present else [])]:
                    task.cancel()
                self._state_writer.shutdown(wait=True)
                raise
            self._announced = True
            from .joinfiles import JoinFiles  # the live file set: files join, move, leave

            live = JoinFiles(self, http, checkout)
            others = [
                asyncio.ensure_future(self.disk.watch()),
                asyncio.ensure_future(self._poll_participants(http)),
                self._spawn(live.run()),
            ]
            try:
                # said once the folder is watched: a file made here from then on is seen
                waits: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(live.watch.ready.wait()),
                    asyncio.ensure_future(self._over.wait()),
                ]
                await asyncio.wait([*waits, others[2]], return_when=asyncio.FIRST_COMPLETED)
                for wait in waits:
                    wait.cancel()
                self.say(f"● mirroring {len(files)} files of session {session} into {self.folder}")
                await self._over.wait()
                if self._failure is not None:
                    raise self._failure
                # the session ended: every link hears it; let them take their last updates
                await asyncio.wait(list(self.tasks.values()), timeout=10)
            finally:
                for task in [*others, *self.tasks.values(), *([present] if present else [])]:
                    task.cancel()
                await self.disk.flush()
                for client in self.links.values():
                    await client.flush()
                self._state_writer.shutdown(wait=True)
        return self._ended or {}

    def _spawn(self, work: Any) -> asyncio.Future[None]:
        """Run `work` as a task whose failure ends the mirror with its error."""
        task: asyncio.Future[None] = asyncio.ensure_future(work)

        def done(task: asyncio.Future[None]) -> None:
            if not task.cancelled() and task.exception() is not None and self._failure is None:
                self._failure = task.exception()
                self._over.set()

        task.add_done_callback(done)
        return task

    def open_link(self, f: SharedFile, original: bytes) -> RoomClient:
        """The codec, doc and (not yet connected) link of shared file `f`, from its original bytes."""
        self.codecs[f.path] = _open(f, original)
        attach(self.codecs[f.path], f"the join folder of {self.name}")
        doc: Doc[Any] = Doc()
        self.docs[f.path] = doc
        client = RoomClient(
            f"{self.link.ws}/rooms/{f.room}?{self.params}&client=join",
            doc,
            heartbeat=30,
            max_msg_size=MAX_MESSAGE_BYTES,
        )
        # the path of a room changes when the file is renamed: looked up at each call
        client.on_remote_change = lambda r=f.room: self._remote_changed(self.path_of.get(r, ""))
        room = f.room
        client.on_message = lambda message, frame: self._server_message(self.path_of.get(room, room), message)
        codec = self.codecs[f.path]
        if isinstance(codec, NotebookCodec):  # a cell deleted while we were offline keeps our edits
            watch_remote_deletes(client, codec, "someone in the session")
        self.links[f.path] = client
        self.files[f.path] = f
        self.path_of[f.room] = f.path
        return client

    def follow(self, http: aiohttp.ClientSession, room: str) -> asyncio.Future[None]:
        """Start following `room`'s link (opened with `open_link`); its task."""
        task = self._spawn(self._follow(http, room, self.links[self.path_of[room]]))
        self.tasks[room] = task
        return task

    async def close_link(self, path: str) -> None:
        """Stop mirroring `path` (it left the session): its link closed, its doc dropped."""
        f = self.files.pop(path)
        self.path_of.pop(f.room, None)
        self._connected.discard(f.room)
        task = self.tasks.pop(f.room, None)
        client = self.links.pop(path)
        if task is not None:
            task.cancel()
        await client.close()
        self.docs.pop(path, None)
        self.codecs.pop(path, None)
        self._marked.pop(path, None)

    def rekey(self, old: str, new: str) -> None:
        """Shared file `old` is now at `new` (same room, same doc, same link)."""
        f = self.files.pop(old)
        self.files[new] = SharedFile(new, f.kind, f.room)
        self.path_of[f.room] = new
        self.links[new] = self.links.pop(old)
        self.docs[new] = self.docs.pop(old)
        self.codecs[new] = self.codecs.pop(old)
        if old in self._marked:
            self._marked[new] = self._marked.pop(old)
        if old in self._formats:
            self._formats[new] = self._formats.pop(old)
        codec = self.codecs[new]
        if hasattr(codec, "path"):
            codec.path = new

    async def _follow(self, http: aiohttp.ClientSession, room: str, client: RoomClient) -> None:
        code = await client.follow(http, on_state=lambda state: self._link_state(room, state))
        if code == CLOSE_CODES["UNKNOWN_ROOM"] and self._announced:
            self.on_room_gone(room)  # the file left the session (deleted): the file set follows
            return
        if code in CLOSE_REFUSED:
            raise JoinError(f"the session refused this link (close code {code})")
        self._ended = self._ended or _end_reason(client.close_reason)
        self._over.set()

    async def _join(self) -> None:
        """Exchange the link's token for this person's own, bound to our name, so the owner
        can remove exactly us (`POST /api/join`); a server without it keeps the link's."""
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    self.link.http + "/api/join",
                    json={"name": self.name},
                    headers={"Authorization": f"Bearer {self.link.token}"},
                ) as response,
            ):
                if response.status == 404:
                    return
                if response.status == 401:
                    raise JoinError("the session refused the link's token: ask for a fresh link")
                body = json.loads(await response.content.read(64 * 1024)) if response.status == 200 else None
        except (aiohttp.ClientError, ValueError) as exc:
            raise JoinError(f"cannot join the session at {self.link.http}: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("token"), str) or not TOKEN.match(body["token"]):
            raise JoinError(f"the session did not let us join (answer {response.status}): ask for a fresh link")
        self.token = body["token"]
        name = body.get("name")
        if isinstance(name, str) and name:
            self.name = joinnames.label(name, 80)

    async def _present(self, http: aiohttp.ClientSession, room: str, params: str, role: object) -> None:
        """Our presence in the session room, as the browser client publishes its own (a
        `user`, no file open: a mirror has them all), announced on each connection and
        renewed every `PRESENCE_EVERY` seconds."""
        client = RoomClient(
            f"{self.link.ws}/rooms/{room}?{params}",
            Doc(),
            send_local=False,
            heartbeat=30,
            max_msg_size=MAX_MESSAGE_BYTES,
        )
        color = PALETTE[int(hashlib.sha256(self.name.encode()).hexdigest(), 16) % len(PALETTE)]
        state = {
            "user": {
                "name": self.name[:80],
                "color": color,
                "colorLight": f"{color}33",
                "sid": secrets.token_hex(8),
                "role": "viewer" if role == "viewer" else "editor",
            },
            "file": None,
            "place": None,
            "client": "rtc join",
        }

        async def announce() -> None:
            announced: object = None
            last = 0.0
            while True:
                ws = client.ws
                due = ws is not announced or time.monotonic() - last > PRESENCE_EVERY
                if ws is not None and not ws.closed and due:
                    try:
                        await client.send_awareness(state)
                        announced, last = ws, time.monotonic()
                    except (ConnectionError, RuntimeError):
                        pass  # the connection dropped: announced again on the next one
                await asyncio.sleep(0.5)

        announcer = asyncio.ensure_future(announce())
        files = client.doc.get("session", type=Map)
        watch = files.observe(lambda event: self.on_files_changed())  # files_version moved: the set changed
        try:
            code = await client.follow(http)
        finally:
            announcer.cancel()
            files.unobserve(watch)
        if code in CLOSE_REFUSED:
            raise JoinError(f"the session refused this link (close code {code})")
        self._ended = self._ended or _end_reason(client.close_reason)
        self._over.set()

    async def _check_base(self, checkout: git.Checkout | None, base: object) -> str | None:
        """The session's base commit, which a checkout must have (none needed in a plain folder)."""
        if checkout is None:
            return None
        if self.folder == checkout.gitdir or checkout.gitdir in self.folder.parents:
            raise JoinError(f"{self.folder} is inside a .git folder: join into a work tree or a plain folder")
        commit = joinnames.commit_id(base)
        if not await asyncio.to_thread(git.has_commit, checkout, commit):
            raise JoinError(
                f"this checkout does not have the session's base commit {commit[:10]}: git fetch first, then join again"
            )
        return commit

    def _state_dir(self, checkout: git.Checkout | None) -> StateDir:
        """`.git/rtc/join/` of the checkout, or `DIR/.rtc-join/` for a plain folder."""
        if checkout is not None:
            return StateDir(checkout.gitdir, "rtc/join")
        return StateDir(self.folder, joinnames.STATE_FOLDER)

    async def _poll_participants(self, http: aiohttp.ClientSession, every: float = 2.0) -> None:
        """Keep `participants` fresh for the panel (who else is in the session)."""
        while True:
            await asyncio.sleep(every)
            try:
                info = await self._get_json(http, "/api/session")
            except JoinError as exc:
                log.info("participants not refreshed: %s", exc)
                continue
            self.participants = joinnames.participants(info.get("participants"))

    @property
    def connected(self) -> int:
        """How many of the files' rooms are connected right now."""
        return len(self._connected)

    def _server_message(self, path: str, message: protocol.Message) -> None:
        """The server refused a change of ours (not applied there): say so in the log."""
        if message.type is protocol.MessageType.AUTH:
            try:
                reason = protocol.read_var_bytes(message.payload, 1)[0].decode("ascii", "replace")
            except ProtocolError:
                reason = "no reason given"
            log.warning("%s: the session refused a change: %s", path, joinnames.label(reason))

    def _remote_changed(self, path: str) -> None:
        if path in self.disk.files:
            self.disk.changed(path)
            if isinstance(self.codecs.get(path), NotebookCodec):  # read once the transaction is over
                asyncio.get_running_loop().call_soon(self._check_format, path)

    def _check_format(self, path: str) -> None:
        """Follow the owner's file's formatting if the session announced a new one."""
        mark = self._format_wanted(path)
        if mark is not None:
            task = asyncio.get_running_loop().create_task(self._follow_format(path, mark))
            self._format_tasks.add(task)
            task.add_done_callback(self._format_tasks.discard)

    def _format_wanted(self, path: str) -> str | None:
        """The session's new formatting digest of a notebook, if not followed yet."""
        codec = self.codecs.get(path)
        if not isinstance(codec, NotebookCodec):
            return None
        mark = joinformat.wanted(self.docs[path], codec)
        return mark if mark is not None and mark != self._formats.get(path) else None

    async def _follow_format(self, path: str, mark: str) -> None:
        """Write a notebook like the owner's file from now on (`GET /api/format/{room}`)."""
        self._formats[path] = mark  # once per announced formatting, whatever the answer
        codec, http = self.codecs[path], self._http
        if not isinstance(codec, NotebookCodec) or http is None:
            return
        try:
            data = await self._get_bytes(http, f"/api/format/{self.files[path].room}")
            codec.write_like(self.docs[path], data)
        except (JoinError, DocumentError) as exc:
            log.warning("%s: written with its own formatting, not the owner's: %s", path, exc)
            return
        if path in self.disk.files:
            self.disk.changed(path)

    async def _plan(self, f: SharedFile, checkout: git.Checkout | None, base: str | None) -> _Plan:
        """Decide what happens to the file here; refuse before anything is written."""
        local = await asyncio.to_thread(read_local, self.folder, f.path)
        current = self.codecs[f.path].dump(self.docs[f.path])
        if local is None or local == current:
            return _Plan(local, None)
        assert self.state is not None
        synced = await asyncio.to_thread(self.state.read, self._state_file(f.path))
        if synced is not None:  # mirrored here before: merge what changed here since
            return _Plan(local, synced, merge=True, keep=local != synced)
        committed = None
        if checkout is not None and base is not None:
            committed = await asyncio.to_thread(git.committed_blob, checkout, base, self.folder / f.path)
        if local == committed:
            return _Plan(local, None)  # in git: the session's version replaces it
        if not self.bring_changes:
            if committed is None:
                raise JoinError(
                    f"{f.path} exists here but is not committed in the session's base: move it "
                    "away, or join with --bring-changes to merge it into the session"
                )
            raise JoinError(
                f"{f.path} has uncommitted changes here: commit or stash them, "
                "or join with --bring-changes to merge them into the session"
            )
        return _Plan(local, committed, merge=True, keep=True)

    async def _first_write(self, files: list[SharedFile], checkout: git.Checkout | None, base: str | None) -> None:
        plans = {f.path: await self._plan(f, checkout, base) for f in files}
        assert self.state is not None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for path, plan in plans.items():
            if plan.keep and plan.local is not None:
                kept = await asyncio.to_thread(self.state.write, f"kept/{stamp}/{path}", plan.local)
                self.say(f"{path}: your version from before this join is kept at {kept}")
            if plan.merge and plan.local is not None:
                codec = self.codecs[path]
                origin = DiskMerge(path)
                await merge_later(codec, self.docs[path], plan.local, origin, plan.merge_base, _keeping_format(codec))
                self.say(f"{path}: your local changes were merged into the session")
            data = self._render(path)
            if data != plan.local:
                await asyncio.to_thread(write_local, self.folder, path, data)
            self.disk.track(path, data)
            self._remember(path, data)

    async def _get_json(self, http: aiohttp.ClientSession, path: str) -> dict[str, Any]:
        try:
            data = json.loads(await self._get_bytes(http, path))
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise JoinError(f"the session's {path} is not a JSON object: is this a gitrtc session link?")
        return data

    async def _get_bytes(self, http: aiohttp.ClientSession, path: str) -> bytes:
        try:
            async with http.get(self.link.http + path) as response:
                if response.status == 401:
                    raise JoinError("the session refused the link's token: ask for a fresh link")
                if response.status != 200:
                    raise JoinError(f"the session answered {response.status} for {path}")
                if (response.content_length or 0) > MAX_RESPONSE_BYTES:
                    raise JoinError(f"the session's answer for {path} is larger than {MAX_RESPONSE_BYTES} bytes")
                data = bytearray()
                async for chunk in response.content.iter_any():
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        raise JoinError(f"the session's answer for {path} is larger than {MAX_RESPONSE_BYTES} bytes")
                return bytes(data)
        except aiohttp.ClientError as exc:
            raise JoinError(f"cannot reach the session at {self.link.http}: {exc}") from None


def _keeping_format(codec: Codec) -> Callable[[Callable[[], bool]], bool]:
    """Apply a local save without adopting its formatting: the folder is written like the
    session's file (`joinformat`), so its bytes are the commit's."""

    def run(apply: Callable[[], bool]) -> bool:
        if not isinstance(codec, NotebookCodec):
            return apply()
        reference = codec.reference
        try:
            return apply()
        finally:
            codec.reference = reference

    return run


def _open(f: SharedFile, original: bytes) -> Codec:
    """The codec of a shared file from its original bytes (sent by the server: may be anything)."""
    try:
        return open_kind(f.kind, f.path, original)  # read as the session reads it (a plugin kind: installed here)
    except RtcError as exc:
        raise JoinError(f"the session's {f.path} cannot be mirrored: {exc}") from exc


def _refused(root: Path, rel: str, exc: OSError) -> JoinError:
    return JoinError(
        f"{root / rel}: {exc.strerror or exc} — rtc join does not read or write through symbolic "
        "links or over what is not a regular file; remove it or join into another folder"
    )


def read_local(root: Path, rel: str) -> bytes | None:
    """(thread) The bytes of root/rel read without following a link (`safefs`), or None if
    it (or a folder on the way) does not exist."""
    try:
        return safefs.read_file(root, rel)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a link (UnsafePathError), a folder where a file is, a FIFO …
        raise _refused(root, rel, exc) from None


def write_local(root: Path, rel: str, data: bytes, mode: int = 0o644, folder_mode: int = 0o777) -> None:
    """(thread) Replace root/rel atomically without following a link, making missing folders."""
    try:
        safefs.replace_file(root, rel, data, mode, make_folders=folder_mode)
    except (UnsafePathError, NotADirectoryError, IsADirectoryError) as exc:
        raise _refused(root, rel, exc) from None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # not a regular file
            raise _refused(root, rel, exc) from None
        raise
