"""A cell's outputs as a kernel emits them, written the way JupyterLab saves them.

A `CellRun` turns one execution's IOPub messages into output operations and hands them,
coalesced, to a `Sink`: `DocSink` writes them into the notebook's shared document (the
shared kernel, under the `KernelOutput` origin), `ListSink` keeps them for one participant
(a private kernel). The rules follow JupyterLab's output area and nbformat's
`output_from_msg`: consecutive `stream` messages of the same name append to one output's
text; `display_data`/`execute_result`/`error` add an output; `update_display_data`
replaces the data of every output shown with that `display_id`; `clear_output(wait=True)`
clears at the next output. Operations are applied at most every `Limits.output_flush_every`
seconds per cell (and at once at the end), so a flood costs a few document updates a
second. What a cell run keeps is capped (`Limits.cell_text` characters of stream text,
`Limits.cell_output` in all, so a few plots fit but a million-line print does not): past either the cell says so,
further rich outputs are dropped, and the run's whole stream text goes to a file under
the session folder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol

from pycrdt import Array, Map, Text

from ..limits import DEFAULT, Limits
from ..rooms import Room

log = logging.getLogger(__name__)

Op = tuple[Any, ...]


class Sink(Protocol):
    """Where a cell's output operations go."""

    def apply(self, cell_id: str, ops: list[Op]) -> None:
        """Apply `ops` (in order) to the outputs of cell `cell_id`."""
        ...

    async def settled(self) -> None:
        """Wait until what was applied has reached the participants (so an event sent
        next, "done", never overtakes the outputs it announces)."""
        ...


def output_from_msg(msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
    """The nbformat output a display/result/error message stands for (None for others)."""
    if msg_type == "display_data":
        return {"output_type": "display_data", "data": content.get("data", {}), "metadata": content.get("metadata", {})}
    if msg_type == "execute_result":
        return {
            "output_type": "execute_result",
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
            "execution_count": content.get("execution_count"),
        }
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": list(content.get("traceback", [])),
        }
    return None


_BACKSPACE = re.compile(r"[^\n]\x08")
_CR_NEWLINE = re.compile(r"\r+\n")


def overwrites(text: str) -> bool:
    """Whether stream text holds carriage returns or backspaces (a progress bar)."""
    return "\r" in text or "\x08" in text


def remove_overwritten(text: str) -> str:
    """Stream text as a terminal shows it, as JupyterLab keeps it: a backspace erases the
    character before it, a carriage return goes back to the line's start and what follows
    overwrites it (a trailing one stays, for the next chunk to overwrite)."""
    if not overwrites(text):  # the common case, as it is: a flood's 256 KiB chunk cost 4 ms on the loop
        return text
    return terminal_text(text)


def terminal_text(text: str) -> str:
    """`remove_overwritten` without its shortcut for text that overwrites nothing."""
    while True:
        shorter = _BACKSPACE.sub("", text)
        if len(shorter) == len(text):
            break
        text = shorter
    text = _CR_NEWLINE.sub("\n", text)
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            parts = line.split("\r")
            shown = ""
            for part in parts:
                shown = part + shown[len(part) :]
            line = shown + ("\r" if parts[-1] == "" else "")
        lines.append(line)
    return "\n".join(lines)


def _size(chars: int) -> str:
    """A cap for people: 256 KiB, 16 MiB, 300 characters."""
    for unit, name in ((1024 * 1024, "MiB"), (1024, "KiB")):
        if chars >= unit and chars % unit == 0:
            return f"{chars // unit} {name}"
    return f"{chars} characters"


def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))  # noqa: RUF071 (strings, compared by character on purpose)


class Spill:
    """The full stream text of a truncated cell run, appended to a file off the event loop."""

    def __init__(self, path: Path, executor: Executor) -> None:
        self.path = path
        self._executor = executor

    def write(self, text: str) -> None:
        """Append `text` (in order: the executor has one thread)."""
        future = self._executor.submit(_append, self.path, text)
        future.add_done_callback(_report)


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def _report(future: Any) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("could not keep a cell's full output: %s", exc)


class CellRun:
    """One execution of one cell: its messages in, coalesced operations out."""

    def __init__(
        self,
        cell_id: str,
        sink: Sink,
        spill: Callable[[], Spill],
        displays: dict[str, list[tuple[str, int]]],
        limits: Limits = DEFAULT,
    ) -> None:
        self.cell_id = cell_id
        self.max_text = limits.cell_text
        self.max_output = limits.cell_output
        self.flush_every = limits.output_flush_every
        self.sink = sink
        self._spill_factory = spill
        self.spill: Spill | None = None
        #: display_id → [(cell id, output index)], shared by every run of one kernel.
        self.displays = displays
        self.ops: list[Op] = []
        #: updates of displays shown by other cells, by (cell id, output index)
        self.others: dict[tuple[str, int], Op] = {}
        self.outputs = 0  # outputs in the cell now
        self.last_stream: str | None = None  # name of the last output if it is a stream
        self.used = 0  # characters of output kept (all kinds)
        self.text_used = 0  # of which stream text
        self.kept: list[str] = []  # the stream text kept so far (written to the spill on truncation)
        self.truncated = False
        self.pending_clear = False
        self.failed = False
        self.execution_count: int | None = None
        self._timer: asyncio.Handle | None = None
        self._last_flush = 0.0

    def start(self) -> None:
        """The run begins: the cell's old outputs and count go (as in JupyterLab)."""
        self._forget_displays()
        self.ops += [("clear",), ("count", None), ("state", "running")]
        self.flush()

    def handle(self, msg_type: str, content: dict[str, Any]) -> None:
        """Take one IOPub message of this run."""
        if msg_type == "stream":
            self._clear_if_waiting()
            self._stream(str(content.get("name", "stdout")), str(content.get("text", "")))
        elif msg_type == "clear_output":
            if content.get("wait"):
                self.pending_clear = True
            else:
                self._clear()
        elif msg_type == "update_display_data":
            display_id = (content.get("transient") or {}).get("display_id")
            for cell_id, index in self.displays.get(display_id, []) if isinstance(display_id, str) else []:
                op = ("update", index, content.get("data", {}), content.get("metadata", {}))
                if cell_id != self.cell_id:
                    self.others[(cell_id, index)] = op  # the latest wins; written at the next flush
                    self._schedule()
                elif self.ops and self.ops[-1][:2] == op[:2]:
                    self.ops[-1] = op  # an update of an update not yet written replaces it
                else:
                    self._add(op)
        elif msg_type == "execute_input":
            count = content.get("execution_count")
            if isinstance(count, int):
                self.execution_count = count
                self._add(("count", count))
        else:
            output = output_from_msg(msg_type, content)
            if output is None:
                return
            self._clear_if_waiting()
            if msg_type == "error":
                self.failed = True
            if not self._fits(len(json.dumps(output, default=str))):
                return
            display_id = (content.get("transient") or {}).get("display_id")
            if isinstance(display_id, str):
                self.displays.setdefault(display_id, []).append((self.cell_id, self.outputs))
            self._add(("append", output))
            self.outputs += 1
            self.last_stream = None

    def finish(self) -> None:
        """The run is over: write what is left now."""
        self._add(("state", "idle"))
        self.flush()

    def _stream(self, name: str, text: str) -> None:
        if not text:
            return
        if self.truncated:
            assert self.spill is not None
            self.spill.write(text)
            return
        room = min(self.max_text - self.text_used, self.max_output - self.used)
        kept = text[:room]
        if kept:
            self.used += len(kept)
            self.text_used += len(kept)
            self.kept.append(kept)
            if self.last_stream == name and self.ops and self.ops[-1][0] == "stream" and self.ops[-1][1] == name:
                self.ops[-1] = ("stream", name, self.ops[-1][2] + kept)  # coalesce while waiting
                self._schedule()
            else:
                self._add(("stream", name, kept))
            if self.last_stream != name:
                self.outputs += 1
                self.last_stream = name
        if len(kept) < len(text):
            self._truncate()
            assert self.spill is not None
            self.spill.write(text[len(kept) :])

    def _fits(self, size: int) -> bool:
        if self.truncated:
            return False
        if self.used + size <= self.max_output:
            self.used += size
            return True
        self._truncate()
        return False

    def _truncate(self) -> None:
        """Past the cap: say so in the cell and keep the full stream in a file."""
        if self.truncated:
            return
        self.truncated = True
        self.spill = self._spill_factory()
        self.spill.write("".join(self.kept))
        self.kept = []
        note = (
            f"Output truncated (at most {_size(self.max_text)} of text and "
            f"{_size(self.max_output)} in all are kept in the notebook); the full text "
            f"output is kept on the owner's machine in {self.spill.path}"
        )
        self._add(
            (
                "append",
                {
                    "output_type": "display_data",
                    "data": {"text/plain": note},
                    "metadata": {"gitrtc": {"truncated": True, "file": str(self.spill.path)}},
                },
            )
        )
        self.outputs += 1
        self.last_stream = None

    def _clear_if_waiting(self) -> None:
        if self.pending_clear:
            self.pending_clear = False
            self._clear()

    def _clear(self) -> None:
        self._forget_displays()
        self.ops.append(("clear",))
        self.outputs = 0
        self.last_stream = None
        self.used = 0  # characters of output kept (all kinds)
        self.text_used = 0  # of which stream text
        self.kept = []
        self._schedule()

    def _forget_displays(self) -> None:
        for key in list(self.displays):
            kept = [(c, i) for c, i in self.displays[key] if c != self.cell_id]
            if kept:
                self.displays[key] = kept
            else:
                del self.displays[key]

    def _add(self, op: Op) -> None:
        self.ops.append(op)
        self._schedule()

    def _schedule(self) -> None:
        """Flush now if the last flush is old enough, else once `flush_every` has passed."""
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_flush + self.flush_every - loop.time()
        if wait <= 0:
            self._timer = loop.call_soon(self.flush)  # after this tick's messages: they coalesce
        else:
            self._timer = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Apply the operations gathered so far, in one write."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_flush = asyncio.get_running_loop().time()
        if self.ops:
            ops, self.ops = self.ops, []
            self.sink.apply(self.cell_id, ops)
        if self.others:
            others, self.others = self.others, {}
            for (cell_id, _index), op in others.items():
                self.sink.apply(cell_id, [op])


class DocSink:
    """Writes output operations into a notebook room's document, as the server."""

    def __init__(self, room: Room, origin: object) -> None:
        self.room = room
        self.origin = origin
        self._index: dict[str, int] = {}

    def apply(self, cell_id: str, ops: list[Op]) -> None:
        """Apply `ops` to cell `cell_id` in one transaction (a deleted cell takes nothing)."""
        self.room.edit(lambda: self._apply(cell_id, ops), self.origin)

    async def settled(self) -> None:
        """Wait until the writes are durable, hence forwarded (the room forwards a change
        once it is stored)."""
        if self.room.store is not None:
            await self.room.store.flush()

    def _find(self, cell_id: str) -> Map[Any] | None:
        cells = self.room.doc.get("cells", type=Array)
        index = self._index.get(cell_id)
        if index is not None and index < len(cells):
            cell = cells[index]
            if isinstance(cell, Map) and cell.get("id") == cell_id:
                return cell
        for i, cell in enumerate(cells):
            if isinstance(cell, Map) and cell.get("id") == cell_id:
                self._index[cell_id] = i
                return cell
        return None

    def _apply(self, cell_id: str, ops: list[Op]) -> None:
        cell = self._find(cell_id)
        if cell is None:
            return
        outputs = cell.get("outputs")
        if not isinstance(outputs, Array):
            outputs = cell["outputs"] = Array()
        for op in ops:
            kind = op[0]
            if kind == "clear":
                if len(outputs):
                    outputs.clear()
            elif kind == "stream":
                last = outputs[len(outputs) - 1] if len(outputs) else None
                if (
                    isinstance(last, Map)
                    and last.get("output_type") == "stream"
                    and last.get("name") == op[1]
                    and isinstance(last.get("text"), Text)
                ):
                    text = last["text"]
                    old = str(text) if overwrites(op[2]) or str(text).endswith("\r") else None
                    if old is None:
                        text.insert(len(text), op[2])
                    else:  # rewrite only from where the shown text changes
                        new = remove_overwritten(old + op[2])
                        keep = _common_prefix(old, new)
                        if keep < len(old):
                            del text[keep:]
                        text.insert(keep, new[keep:])
                else:
                    outputs.append(
                        Map({"output_type": "stream", "name": op[1], "text": Text(remove_overwritten(op[2]))})
                    )
            elif kind == "append":
                outputs.append(Map(op[1]))
            elif kind == "update":
                if op[1] < len(outputs):
                    target = outputs[op[1]]
                    if isinstance(target, Map):
                        target["data"] = op[2]
                        target["metadata"] = op[3]
            elif kind == "count":
                cell["execution_count"] = op[1]
            elif kind == "state":
                cell["execution_state"] = op[1]


class ListSink:
    """Keeps output operations as plain outputs and hands every change to `publish`
    (a private kernel's outputs, which reach one participant and never the document)."""

    def __init__(self, publish: Callable[[str, list[dict[str, Any]], int | None], None]) -> None:
        self.publish = publish
        self.cells: dict[str, list[dict[str, Any]]] = {}
        self.counts: dict[str, int | None] = {}

    def apply(self, cell_id: str, ops: list[Op]) -> None:
        """Apply `ops` to the cell's outputs and publish the result."""
        outputs = self.cells.setdefault(cell_id, [])
        for op in ops:
            kind = op[0]
            if kind == "clear":
                outputs.clear()
            elif kind == "stream":
                last = outputs[-1] if outputs else None
                if last is not None and last.get("output_type") == "stream" and last.get("name") == op[1]:
                    last["text"] = remove_overwritten(last["text"] + op[2])
                else:
                    outputs.append({"output_type": "stream", "name": op[1], "text": remove_overwritten(op[2])})
            elif kind == "append":
                outputs.append(dict(op[1]))
            elif kind == "update":
                if op[1] < len(outputs):
                    outputs[op[1]] = {**outputs[op[1]], "data": op[2], "metadata": op[3]}
            elif kind == "count":
                self.counts[cell_id] = op[1]
        self.publish(cell_id, outputs, self.counts.get(cell_id))

    async def settled(self) -> None:
        """Published at once, on the same connection as the events: nothing to wait for."""
