"""Run a session's notebook cells from a script or a terminal (`rtc run`).

The package's y-websocket client (`client.RoomClient`) keeps a pycrdt document in sync
with the notebook's room and speaks its request channel (`requests.py`, message type 100):
`request()`s answered by id, pushed events handed to `on_event`. On it,
`CellRun` asks the session's shared kernel to run cells and reports their outputs as the
server writes them into the notebook's document, so a script sees exactly what every
browser sees. A refusal (running off, a viewer, an editor invited with `--no-run`) is a
one-line `RequestError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import aiohttp
from pycrdt import Array, Map, Text

from .client import RoomClient
from .errors import JoinError, RequestError

log = logging.getLogger(__name__)

#: Seconds to wait for an answer to a request (a kernel's start is included in `run`'s).
ANSWER_TIMEOUT = 120.0


async def _synced(client: RoomClient, timeout: float = 60.0) -> None:
    """Wait for the first sync; `JoinError` if the server closed the connection first."""
    closed = asyncio.ensure_future(client.closed.wait())
    synced = asyncio.ensure_future(client.synced.wait())
    try:
        await asyncio.wait([closed, synced], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        synced.cancel()
    if not client.synced.is_set():
        why = f"closed it ({client.close_code})" if client.closed.is_set() else f"did not sync it in {timeout:.0f} s"
        raise JoinError(f"the session {why}: check the link, or ask for a fresh one")


# -- running cells ---------------------------------------------------------------------


@dataclass(slots=True)
class Printed:
    """What of one cell's outputs has been shown already."""

    outputs: int = 0  # outputs shown whole (the last may be a stream still growing)
    chars: int = 0  # characters shown of the last output, when it is a stream


@dataclass(slots=True)
class Report:
    """How the run went: each cell's final state, by cell id."""

    states: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # "cell 3", by cell id

    @property
    def failed(self) -> list[str]:
        """The cells that ended in error or were cancelled."""
        return [c for c, s in self.states.items() if s in ("error", "cancelled")]


def summarize(output: dict[str, Any]) -> str:
    """A non-stream output as terminal text: its text/plain, or what mime types it holds."""
    kind = output.get("output_type")
    if kind == "error":
        return (
            "\n".join(str(line) for line in output.get("traceback") or [])
            or f"{output.get('ename')}: {output.get('evalue')}"
        )
    data = output.get("data") or {}
    if not isinstance(data, dict):
        return ""
    others = [k for k in data if k != "text/plain"]
    text = data.get("text/plain")
    if isinstance(text, list):
        text = "".join(str(t) for t in text)
    shown = [f"[{', '.join(others)}]"] if others else []
    if isinstance(text, str) and text and not any(k.startswith("image/") for k in others):
        shown.append(text)
    return "\n".join(shown)


class CellRunner:
    """Run cells of one notebook room in its shared kernel and report their outputs."""

    def __init__(
        self, room: RoomClient, write: Callable[[str], None], ask: Callable[[str, bool], str] | None = None
    ) -> None:
        self.room = room
        self.write = write
        #: Answers the kernel's `input()` (prompt, password) → value; None: empty answers.
        self.ask = ask
        self.report = Report()
        self._waiting: list[str] = []
        self._printed: dict[str, Printed] = {}
        self._began: set[str] = set()
        self._changed = asyncio.Event()
        self._inputs: set[asyncio.Task[None]] = set()
        room.on_event = self._event
        room.on_remote_change = self._changed.set

    def cells(self) -> list[tuple[str, str]]:
        """(id, cell_type) of every cell, in order."""
        out = []
        for cell in self.room.doc.get("cells", type=Array):
            if isinstance(cell, Map):
                out.append((str(cell.get("id")), str(cell.get("cell_type"))))
        return out

    def pick(self, indices: list[int], everything: bool) -> list[str]:
        """The ids of the code cells at `indices` (0-based, as in the notebook file), or of all
        code cells; `RequestError` for an index out of range or of a non-code cell."""
        cells = self.cells()
        if everything or not indices:
            return [c for c, kind in cells if kind == "code"]
        ids = []
        for index in indices:
            if not 0 <= index < len(cells):
                raise RequestError(f"there is no cell {index}: the notebook has cells 0 to {len(cells) - 1}")
            cell_id, kind = cells[index]
            if kind != "code":
                raise RequestError(f"cell {index} is a {kind} cell: only code cells run")
            ids.append(cell_id)
        return ids

    async def run(self, ids: list[str]) -> Report:
        """Queue `ids` in the shared kernel (one batch: a failing cell cancels the rest) and
        report outputs until each has ended."""
        if not ids:
            return self.report
        self._waiting = list(ids)
        data = await self.room.request("kernel", "run", {"cells": ids})
        queued = [c for c in data.get("queued", []) if isinstance(c, str)]
        self._waiting = [c for c in self._waiting if c in queued and c not in self.report.states]
        while self._waiting:
            self._changed.clear()
            self._show()
            if not self._waiting:
                break
            closed = asyncio.ensure_future(self.room.closed.wait())
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait([closed, changed], return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                changed.cancel()
            if self.room.closed.is_set():
                self._show()
                if self._waiting:
                    raise RequestError(
                        f"the session closed the connection ({self.room.close_code}) "
                        "before the cells ran: their outputs, if any, are in the notebook"
                    )
        return self.report

    def _event(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, dict) or data.get("scope", "shared") != "shared":
            return
        if message.get("event") == "kernel.cell" and data.get("cell") in self._waiting:
            state = str(data.get("state"))
            if state == "running":
                self._began.add(str(data["cell"]))
            elif state in ("done", "error", "cancelled"):
                self.report.states[str(data["cell"])] = state
                if data.get("error"):
                    self.report.errors[str(data["cell"])] = str(data["error"])
        elif message.get("event") == "kernel.stdin":
            task = asyncio.get_running_loop().create_task(self._input(data))
            self._inputs.add(task)
            task.add_done_callback(self._inputs.discard)
        self._changed.set()

    async def _input(self, data: dict[str, Any]) -> None:
        prompt, password = str(data.get("prompt", "")), bool(data.get("password"))
        value = await asyncio.to_thread(self.ask, prompt, password) if self.ask is not None else ""
        await self.room.request("kernel", "input_reply", {"value": value})

    def _show(self) -> None:
        """Print what is new in the running cell, then close the cells that ended.

        A cell's outputs are read once the document shows it running (the server clears
        the old outputs in that same transaction: events may overtake document changes)
        or once it has ended (its outputs are stored before the server says so)."""
        cells = {str(c.get("id")): c for c in self.room.doc.get("cells", type=Array) if isinstance(c, Map)}
        for cell_id in list(self._waiting):
            ended = cell_id in self.report.states
            began = cell_id in self._began
            if not began and not ended:
                break  # not begun yet: the cells run in order
            cell = cells.get(cell_id)
            if began and cell is not None and (ended or cell.get("execution_state") == "running"):
                self._print_new(cell_id, cell)
            if not ended:
                break
            self._waiting.remove(cell_id)
            self.report.labels[cell_id] = self._label(cell_id)
            state = self.report.states[cell_id]
            if state == "cancelled":
                self.write(f"── {self._label(cell_id)}: cancelled (an earlier cell failed)\n")
            elif cell_id in self.report.errors:
                self.write(f"── {self._label(cell_id)}: {self.report.errors[cell_id]}\n")

    def _label(self, cell_id: str) -> str:
        index = next((i for i, (c, _) in enumerate(self.cells()) if c == cell_id), None)
        return f"cell {index}" if index is not None else f"cell {cell_id}"

    def _print_new(self, cell_id: str, cell: Map[Any]) -> None:
        outputs = cell.get("outputs")
        items = list(outputs) if isinstance(outputs, Array) else []
        printed = self._printed.get(cell_id)
        if printed is None:
            self.write(f"── {self._label(cell_id)} [{cell_id}]\n")
            printed = self._printed[cell_id] = Printed()
        if len(items) < printed.outputs:  # cleared (clear_output): start over
            printed.outputs, printed.chars = 0, 0
        for index in range(printed.outputs, len(items)):
            output = items[index]
            if not isinstance(output, Map):
                continue
            if output.get("output_type") == "stream":
                text = output.get("text")
                whole = str(text) if isinstance(text, Text) else str(text or "")
                if len(whole) < printed.chars:  # a progress bar rewrote itself
                    printed.chars = 0
                self.write(whole[printed.chars :])
                printed.chars = len(whole)
                if index < len(items) - 1:
                    printed.outputs, printed.chars = index + 1, 0
                continue
            shown = summarize(output.to_py() or {})
            if shown:
                self.write(shown if shown.endswith("\n") else shown + "\n")
            printed.outputs, printed.chars = index + 1, 0


# -- finding the session -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where to run: the session's HTTP and WebSocket bases, a token, TLS trust."""

    http: str
    ws: str
    token: str
    ssl_context: ssl.SSLContext | None = None


def target_of(url_or_session: str | None, cwd: Path) -> Target:
    """The session a join link names, or (None) the one running in the checkout at `cwd`."""
    from .mirror import parse_join_url

    if url_or_session:
        link = parse_join_url(url_or_session)
        return Target(link.http, link.ws, link.token)
    from .ownerapi import running_session

    data = running_session(cwd)
    base = str(data.get("control_url") or f"http://127.0.0.1:{data.get('port')}")
    context = None
    if base.startswith("https://"):
        context = ssl.create_default_context(cafile=str(data["certfile"])) if data.get("certfile") else None
        if context is not None:
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            context.check_hostname = False  # the owner's own session, reached on loopback
    ws = "wss" + base[len("https") :] if base.startswith("https") else "ws" + base[len("http") :]
    return Target(base, ws, str(data["token"]), context)


async def _session_info(http: aiohttp.ClientSession, target: Target) -> dict[str, Any]:
    try:
        async with http.get(
            f"{target.http}/api/session", ssl=target.ssl_context if target.ssl_context is not None else True
        ) as response:
            if response.status in (401, 403):
                raise JoinError("the session refused the link's token: ask for a fresh link")
            if response.status != 200:
                raise JoinError(f"the session answered {response.status} for /api/session")
            info: dict[str, Any] = json.loads(await response.read())
            return info
    except aiohttp.ClientError as exc:
        raise JoinError(f"cannot reach the session at {target.http}: {exc}") from None


def room_of(info: dict[str, Any], notebook: str) -> str:
    """The room of the shared notebook `notebook` (a path in the session); `RequestError` if
    the session does not share it."""
    wanted = PurePosixPath(notebook.replace("\\", "/"))
    files = info.get("files") or []
    for f in files:
        if PurePosixPath(str(f.get("path"))) == wanted:
            if f.get("kind") != "notebook":
                raise RequestError(f"{notebook} is not a notebook: only notebooks run code")
            return str(f["room"])
    shared = ", ".join(str(f.get("path")) for f in files if f.get("kind") == "notebook") or "none"
    raise RequestError(f"the session does not share {notebook}: its notebooks are {shared}")


async def run_cells(
    target: Target,
    notebook: str,
    indices: list[int],
    everything: bool,
    name: str,
    write: Callable[[str], None],
    ask: Callable[[str, bool], str] | None = None,
) -> Report:
    """Run cells of `notebook` in the session's shared kernel, writing their outputs as they
    arrive; the report. `RequestError` (one line) if the session refuses."""
    headers = {"Authorization": f"Bearer {target.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        info = await _session_info(http, target)
        room = room_of(info, notebook)
        kernels = info.get("kernels") or {}
        if not kernels.get("enabled"):
            raise RequestError("running code is off in this session: the owner can allow it with rtc start --kernels")
        url = f"{target.ws}/rooms/{room}?token={quote(target.token)}&name={quote(name)}"
        client = RoomClient(url, ssl_context=target.ssl_context)
        try:
            await client.connect(http)
        except (aiohttp.ClientError, OSError) as exc:
            raise JoinError(f"cannot reach the session: {exc}") from None
        try:
            await _synced(client)
            runner = CellRunner(client, write, ask)
            return await runner.run(runner.pick(indices, everything))
        finally:
            await client.close()
