"""One thread that runs jobs in the order they were posted: the store's way to the disk.

`concurrent.futures.ThreadPoolExecutor` makes a future, a work item, a lock and a
condition for every job, and releases a semaphore after each. With one hand-over per
keystroke that bookkeeping was a fifth of the store thread's time and a tenth of the
loop's (W2 at N = 1, where every keystroke finds the CPU's caches cold). Here a job is a
tuple on a `SimpleQueue`; a job either reports back itself (`post`) or through a loop
future (`run`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

log = logging.getLogger(__name__)

_Job = tuple[Callable[..., Any], tuple[Any, ...]]


class Worker:
    """A single thread, started on first use, that runs posted jobs one after another."""

    def __init__(self, name: str, initializer: Callable[[], None] | None = None) -> None:
        self.name = name
        self._initializer = initializer
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._thread: threading.Thread | None = None

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the thread after every job posted before it.

        Nothing comes back: `fn` reports its outcome itself (`call_soon_threadsafe`). An
        exception it lets out is a bug; it is logged, and the thread goes on.
        """
        if self._thread is None:
            self._start()
        self._jobs.put((fn, args))

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the thread, after every job posted before it: its result, or its
        exception raised here."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.post(_call_into, loop, future, fn, args)
        return await future

    def close(self) -> None:
        """Let the jobs posted so far run, then end the thread (waits for it)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        if self._initializer is not None:
            self._initializer()
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # a bug in a job must not take the thread (and every later job) down
                log.exception("a job on thread %s failed", self.name)


def _call_into(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
               fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """(worker thread) Run `fn` and settle `future` with its outcome on the loop."""
    try:
        result = fn(*args)
    except BaseException as exc:  # handed to the awaiting coroutine, which acts on it
        loop.call_soon_threadsafe(_settle, future, None, exc)
    else:
        loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the awaiting coroutine gave up; the job still ran
        return
    if isinstance(error, StopIteration):  # a future cannot hold one
        error = RuntimeError(f"StopIteration from a job: {error}")
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
