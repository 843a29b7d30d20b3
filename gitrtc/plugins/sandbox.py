"""Running a plugin's code so that it cannot take the session down with it.

Each plugin gets one daemon thread of its own (`Sandbox`). A call waits at most the
plugin's time limit; a call still running then marks the plugin hung, and every later
call fails at once (a thread cannot be stopped, so nothing more is queued behind it).
The thread is a daemon: a hung plugin never keeps the process from exiting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from ..errors import PluginError

T = TypeVar("T")

#: No plugin call may hold anything up longer than this, whatever the plugin declares.
MAX_SECONDS = 10.0


def _stop() -> None:
    """The job that ends a sandbox's thread."""


_STOP = _stop


class Sandbox:
    """One plugin's worker thread, with a time limit per call."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.broken: str | None = None  # why the plugin is not called any more
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], T], seconds: float, what: str) -> T:
        """`fn()` in the plugin's thread; `PluginError` (one line) if it raises, takes
        longer than `seconds` (then the plugin is broken for good) or the plugin is broken."""
        if self.broken is not None:
            raise PluginError(f"plugin {self.plugin} is not used any more: {self.broken}")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"rtc-plugin-{self.plugin}", daemon=True)
            self._thread.start()
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        limit = min(seconds, MAX_SECONDS)
        try:
            return future.result(timeout=limit)
        except FutureTimeout:
            self.broken = f"{what} took longer than {limit:g} s (hung)"
            raise PluginError(f"plugin {self.plugin}: {self.broken}") from None
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {self.plugin}: {what} failed: {type(exc).__name__}: {exc}"[:300]) from exc

    def close(self) -> None:
        """Let the thread end once its queue is done (a hung one never ends: a daemon)."""
        if self._thread is not None:
            self._jobs.put((_STOP, Future()))
            self._thread = None

    def _work(self) -> None:
        while True:
            fn, future = self._jobs.get()
            if fn is _STOP:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, who reports it
                future.set_exception(exc)
