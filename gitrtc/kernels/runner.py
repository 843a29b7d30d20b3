"""A kernel's queue: cells run one at a time, in the order asked, each attributed.

`KernelRunner` owns one `KernelProcess` (started on the first run), the queue of `Job`s,
each cell's state (queued / running / done / error / cancelled, who, when) and the
pending `input()` request. It is the same for the shared kernel of a notebook and for a
participant's private one; they differ only in where outputs go (`Sink`) and who hears
the events (`publish`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import KernelError, RequestError, StoreError
from ..limits import DEFAULT, Limits
from ..requests import push
from .outputs import CellRun, Sink, Spill
from .process import KernelProcess

if TYPE_CHECKING:
    from ..rooms import Connection

log = logging.getLogger(__name__)

_batches = itertools.count(1)
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(slots=True)
class Job:
    """One cell to run: its code as it was when asked, and who asked."""

    cell_id: str
    code: str
    by: str
    conn: Connection
    at: float
    batch: int


class KernelRunner:
    """One kernel and its queue of cells."""

    def __init__(
        self,
        scope: str,
        kernel_name: str,
        cwd: Path,
        sink: Sink,
        publish: Callable[[str, dict[str, Any]], None],
        outputs_dir: Path,
        executor: Executor,
        limits: Limits = DEFAULT,
    ) -> None:
        self.limits = limits
        self.scope = scope  # "shared" | "private"
        self.kernel_name = kernel_name
        self.cwd = cwd
        self.sink = sink
        self.publish = publish
        self.outputs_dir = outputs_dir
        self.executor = executor
        self.status = "not started"  # starting | idle | busy | dead | restarting | stopped
        self.last_error: str | None = None
        self.process: KernelProcess | None = None
        self.queue: deque[Job] = deque()
        self.cells: dict[str, dict[str, Any]] = {}
        self.displays: dict[str, list[tuple[str, int]]] = {}
        self.current: Job | None = None
        self.asking: Job | None = None  # the job whose input() waits for an answer
        self._current_exec: _Execution | None = None
        self._failed_batches: set[int] = set()
        self._worker: asyncio.Task[None] | None = None
        self._lifecycle = asyncio.Lock()
        self._spills = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    # -- what participants see ---------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The kernel's state, queue and cell states (the snapshot a client starts from)."""
        return {
            "scope": self.scope,
            "kernel": self.kernel_name,
            "status": self.status,
            "last_error": self.last_error,
            "queue": [j.cell_id for j in self.queue],
            "running": self.current.cell_id if self.current else None,
            "cells": self.cells,
        }

    def _status(self, status: str, error: str | None = None) -> None:
        self.status = status
        if error is not None:
            self.last_error = error
        self.publish(
            "kernel.status",
            {
                "scope": self.scope,
                "kernel": self.kernel_name,
                "status": status,
                "last_error": self.last_error,
                "queue": [j.cell_id for j in self.queue],
                "running": self.current.cell_id if self.current else None,
            },
        )

    def _cell(self, job: Job, state: str, **extra: Any) -> None:
        record = {"cell": job.cell_id, "state": state, "by": job.by, "at": job.at, **extra}
        self.cells.pop(job.cell_id, None)
        self.cells[job.cell_id] = record
        while len(self.cells) > self.limits.cell_states:
            del self.cells[next(iter(self.cells))]
        self.publish("kernel.cell", {"scope": self.scope, **record})

    # -- requests ------------------------------------------------------------------------

    def enqueue(self, cells: list[tuple[str, str]], conn: Connection) -> list[str]:
        """Queue `cells` ((id, code), in order) as one batch run by `conn`'s participant."""
        if self.closed:
            raise KernelError("the session is ending: no more runs")
        if self.status == "dead":
            raise KernelError(f"the kernel is dead ({self.last_error}): restart it")
        if len(self.queue) + len(cells) > self.limits.kernel_queue:
            raise RequestError(f"at most {self.limits.kernel_queue} cells may wait to run: wait, or interrupt")
        batch, now = next(_batches), time.time()
        for cell_id, code in cells:
            job = Job(cell_id, code, conn.participant.name, conn, now, batch)
            self.queue.append(job)
            self._cell(job, "queued")
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        return [c for c, _ in cells]

    async def interrupt(self) -> None:
        """Drop the queue and interrupt the running cell (once the kernel has begun it: an
        interrupt that arrives before is lost, so it waits for that)."""
        self._cancel_queue()
        execution = self._current_exec
        if self.process is not None and execution is not None:
            if execution.began:
                await self.process.interrupt()
            else:
                execution.interrupt_when_begun = True
        self._status(self.status)

    async def _begun(self, execution: _Execution) -> None:
        """The kernel began running `execution`'s code."""
        self._cell(execution.job, "running", started=time.time())
        if execution.interrupt_when_begun and self.process is not None:
            await self.process.interrupt()

    async def restart(self) -> None:
        """Drop the queue, stop the kernel (whatever it runs fails) and start a fresh one."""
        self._cancel_queue()
        async with self._lifecycle:
            self._status("restarting")
            await self._stop_process("the kernel was restarted")
            self.displays.clear()
            await self._start_locked()

    def answer(self, conn: Connection, value: str) -> None:
        """`conn`'s answer to the pending `input()`; `RequestError` if none is asked of it."""
        job = self.asking
        if job is None or job.conn is not conn or self.process is None:
            raise RequestError("no input is being asked of you")
        self.asking = None
        self.process.input(value)

    def disconnected(self, conn: Connection) -> None:
        """The runner of a pending `input()` left: answer it empty (the cell goes on)."""
        if self.asking is not None and self.asking.conn is conn and self.process is not None:
            self.asking = None
            self.process.input("")

    async def close(self) -> None:
        """Stop for good (the session ends, or the private kernel is switched off)."""
        self.closed = True
        self._cancel_queue()
        async with self._lifecycle:
            await self._stop_process("the session ended")
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
        self._status("stopped")

    # -- running ---------------------------------------------------------------------------

    def _cancel_queue(self) -> None:
        while self.queue:
            self._cell(self.queue.popleft(), "cancelled")

    async def _start_locked(self) -> None:
        self._status("starting")
        process = KernelProcess(
            self.kernel_name,
            self.cwd,
            self._died,
            self.outputs_dir / "kernels.log",
            self.limits.kernel_start_timeout,
            self.limits.kernel_watch_every,
            self.limits.kernel_nice,
        )
        try:
            await process.start()
        except KernelError as exc:
            self._status("dead", str(exc))
            raise
        self.process = process
        self.last_error = None
        self._status("idle")

    async def _stop_process(self, reason: str) -> None:
        process, self.process = self.process, None
        if self._current_exec is not None:
            self._current_exec.on_death(reason)
        if process is not None:
            await process.shutdown()

    def _died(self, reason: str) -> None:
        """(process callback) The kernel died by itself: shown dead; the queue is dropped."""
        self._cancel_queue()
        self._status("dead", reason)

    async def _work(self) -> None:
        try:
            while self.queue:
                job = self.queue.popleft()
                if job.batch in self._failed_batches:
                    self._cell(job, "cancelled")
                    continue
                try:
                    async with self._lifecycle:
                        if self.process is None and not self.closed:
                            await self._start_locked()
                except KernelError as exc:
                    self._cell(job, "error", error=str(exc))
                    self._cancel_queue()
                    continue
                if self.process is None or self.process.dead is not None:
                    self._cell(job, "error", error=self.last_error or "the kernel is not running")
                    continue
                await self._run(job, self.process)
        finally:
            self._worker = None
            self._failed_batches.clear()

    async def _run(self, job: Job, process: KernelProcess) -> None:
        self.current = job
        run = CellRun(job.cell_id, self.sink, lambda: self._spill(job.cell_id), self.displays, self.limits)
        execution = _Execution(self, job, run)
        self._current_exec = execution
        run.start()
        self._status("busy")
        try:
            msg_id = process.execute(job.code, execution)
        except KernelError as exc:
            execution.on_death(str(exc))
            msg_id = ""
        try:
            await execution.done.wait()
        finally:
            process.done(msg_id)
            self._current_exec = None
            self.current = None
            if self.asking is job:
                self.asking = None
            run.finish()
        try:
            await self.sink.settled()
        except StoreError as exc:  # the session reports a failing store itself; the run still ends
            log.error("outputs of cell %s may not be saved: %s", job.cell_id, exc)
        failed = run.failed or execution.error is not None
        extra: dict[str, Any] = {"ended": time.time(), "execution_count": run.execution_count}
        if execution.error is not None:
            extra["error"] = execution.error
        self._cell(job, "error" if failed else "done", **extra)
        if failed:
            self._failed_batches.add(job.batch)
        if self.status == "busy":
            self._status("idle")

    def _spill(self, cell_id: str) -> Spill:
        name = f"{_SAFE.sub('_', cell_id)[:40]}-{self.scope}-{next(self._spills)}.txt"
        return Spill(self.outputs_dir / name, self.executor)


class _Execution:
    """Routes one request's messages to its `CellRun`; `done` once reply and idle are in."""

    def __init__(self, runner: KernelRunner, job: Job, run: CellRun) -> None:
        self.runner = runner
        self.job = job
        self.run = run
        self.done = asyncio.Event()
        self.error: str | None = None
        self.began = False
        self.interrupt_when_begun = False
        self._idle = False
        self._replied = False

    def on_iopub(self, msg_type: str, content: dict[str, Any]) -> None:
        if msg_type == "status":
            if content.get("execution_state") == "idle":
                self._idle = True
                self._check()
            return
        if msg_type == "execute_input" and not self.began:
            self.began = True
            task = asyncio.get_running_loop().create_task(self.runner._begun(self))
            self.runner._tasks.add(task)
            task.add_done_callback(self.runner._tasks.discard)
        self.run.handle(msg_type, content)

    def on_reply(self, content: dict[str, Any]) -> None:
        self._replied = True
        if content.get("status") == "error":
            self.run.failed = True
        elif content.get("status") == "aborted":
            self.error = "aborted by the kernel"
        count = content.get("execution_count")
        if isinstance(count, int) and self.run.execution_count is None:
            self.run.execution_count = count
            self.run.ops.append(("count", count))
        self._check()

    def on_stdin(self, content: dict[str, Any]) -> None:
        conn = self.job.conn
        if conn.closed:  # the runner left: an empty answer, not a kernel stuck forever
            if self.runner.process is not None:
                self.runner.process.input("")
            return
        self.runner.asking = self.job
        push(
            conn,
            "kernel.stdin",
            {
                "scope": self.runner.scope,
                "cell": self.job.cell_id,
                "prompt": str(content.get("prompt", "")),
                "password": bool(content.get("password", False)),
            },
        )

    def on_death(self, reason: str) -> None:
        if not self.done.is_set():
            self.error = reason
            self.done.set()

    def _check(self) -> None:
        if self._idle and self._replied:
            self.done.set()
