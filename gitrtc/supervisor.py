"""A small supervisor for a session's background tasks (one owner, one place to stop).

Like `asyncio.TaskGroup`, every task it starts is awaited when it closes; unlike it, a
task that fails does not cancel its siblings (a failed disk watcher must not stop the
compactor): the failure is logged with its traceback and reported to `on_failure`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Supervisor:
    """Named background tasks, started, stopped and closed here and nowhere else."""

    def __init__(self, on_failure: Callable[[str], None]) -> None:
        self._on_failure = on_failure
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._closed = False

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` as the task `name` (replacing nothing: `name` must not be running)."""
        if self._closed:
            coro.close()
            raise RuntimeError("the supervisor is closed")
        if self.running(name):
            coro.close()
            raise RuntimeError(f"background task {name} is already running")
        task = asyncio.get_running_loop().create_task(coro, name=f"rtc-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda t: self._done(name, t))

    def running(self, name: str) -> bool:
        """Whether the task `name` is running."""
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def _done(self, name: str, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s failed", name, exc_info=exc)
            self._on_failure(f"background task {name} failed: {exc!r}")

    async def stop(self, *names: str) -> None:
        """Cancel these tasks and wait until they are gone."""
        tasks = [self._tasks[n] for n in names if n in self._tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def close(self) -> None:
        """Stop every task; no new ones after this."""
        self._closed = True
        await self.stop(*list(self._tasks))
