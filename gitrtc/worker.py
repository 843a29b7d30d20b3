"""One thread that runs jobs in the order they were posted: the store's way to the disk.

`concurrent.futures.ThreadPoolExecutor` makes a future, a work item, a lock and a
condition for every job, and releases a semaphore after each; `call_soon_threadsafe`
makes a handle, and the loop then reads its wake-up pipe until it raises. With one
hand-over per keystroke, each of those showed at W2 N = 1, where every keystroke finds
the CPU's caches cold. Here a job is a tuple on a `SimpleQueue`, its reply a tuple on a
deque, and the wake-up one byte on a pipe the loop reads once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from queue import SimpleQueue
from typing import Any

log = logging.getLogger(__name__)

#: Called on the loop with a job's result, or the exception it raised.
Reply = Callable[[Any, "BaseException | None"], None]
_Job = tuple[Callable[..., Any], tuple[Any, ...], Reply]


class Worker:
    """A single thread, started on first use (on the running loop), that runs jobs one
    after another and hands each outcome back to that loop, in order."""

    def __init__(self, name: str, initializer: Callable[[], None] | None = None) -> None:
        self.name = name
        self._initializer = initializer
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._replies: deque[tuple[Reply, Any, BaseException | None]] = deque()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipe: tuple[int, int] | None = None

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], reply: Reply) -> None:
        """Run `fn(*args)` on the thread after every job before it, then
        `reply(result, error)` on the loop (after the replies of those jobs)."""
        if self._thread is None:
            self._start()
        self._jobs.put((fn, args, reply))

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the thread, after every job before it: its result, or its
        exception raised here."""
        future = asyncio.get_running_loop().create_future()
        self.call(fn, args, partial(_settle, future))
        return await future

    def close(self) -> None:
        """Let the jobs posted so far run and reply, then end the thread (waits for it)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        thread.join()
        if self._pipe is not None and self._loop is not None:
            self._loop.remove_reader(self._pipe[0])
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
        self._deliver()

    def _start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        try:
            loop.add_reader(read_end, self._deliver)
            self._pipe = (read_end, write_end)
        except NotImplementedError:  # a loop without readers (Windows): the generic wake-up
            os.close(read_end)
            os.close(write_end)
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        if self._initializer is not None:
            self._initializer()
        jobs, replies = self._jobs, self._replies
        while (job := jobs.get()) is not None:
            fn, args, reply = job
            outcome: tuple[Callable[[Any, BaseException | None], None], Any, BaseException | None]
            try:
                outcome = (reply, fn(*args), None)
            except BaseException as exc:  # handed to the reply, which acts on it
                outcome = (reply, None, exc)
            replies.append(outcome)  # before the wake-up, so the loop cannot miss it
            self._wake()

    def _wake(self) -> None:
        """(worker thread) Make the loop run `_deliver`."""
        if self._pipe is None:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._deliver)
            return
        try:
            os.write(self._pipe[1], b"\0")
        except BlockingIOError:  # the pipe is full: the loop has wake-ups enough pending
            pass

    def _deliver(self) -> None:
        """(loop) Run the replies that are in, in order."""
        if self._pipe is not None:
            try:
                os.read(self._pipe[0], 4096)
            except BlockingIOError:  # already read by an earlier call
                pass
        replies = self._replies
        while replies:
            reply, result, error = replies.popleft()
            try:
                reply(result, error)
            except Exception:  # one reply's bug must not strand the replies after it
                log.exception("a reply from thread %s failed", self.name)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the awaiting coroutine gave up; the job still ran
        return
    if isinstance(error, StopIteration):  # a future cannot hold one
        error = RuntimeError(f"StopIteration from a job: {error}")
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
