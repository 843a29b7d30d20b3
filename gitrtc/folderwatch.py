"""Watching the shared folders for files created, renamed and deleted (a background task).

`watchfiles`' watcher (inotify through the Rust `notify` crate; a bounded poll where
inotify cannot be used; built and waited on in threads, never on the event loop) batches
what changed; each batch goes to
`FileSet.disk_changed`, which decides what joins, moves or leaves the session. Nothing
changes: nothing runs (idle CPU stays near zero). Changes inside `.git` are ignored
here; git's ignore rules are applied by the file set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

log = logging.getLogger(__name__)

#: Milliseconds between looks when inotify is unavailable (bounded polling), at least;
#: a large tree is looked at less often (`poll_ms`): each look stats every file.
POLL_MS = 1000


def poll_ms(files: int) -> int:
    """Milliseconds between polling looks for a tree of `files` files: 1 s up to 10,000,
    then 1 s more per 10,000 (100,000 files: every 10 s, ~1% of a core)."""
    return max(POLL_MS, files // 10)


#: A batch of changes is taken in once none came for `STEP_MS`, or after `DEBOUNCE_MS`.
DEBOUNCE_MS = 1600
STEP_MS = 50
#: The watching thread comes back this often with nothing: a stop is never missed, and
#: its first return says the watches are in place (`ready`).
TIMEOUT_MS = 500


def _not_git(path: str) -> bool:
    return "/.git/" not in path and not path.endswith("/.git")


class FolderWatch:
    """Watches `folders` (repository-relative; "" = the whole work tree) under `workdir`."""

    def __init__(
        self,
        workdir: Path,
        folders: list[str],
        on_changes: Callable[[set[str]], Awaitable[None]],
        event: Callable[[str], None],
        force_polling: bool | None = None,
        poll_every_ms: int = POLL_MS,
    ) -> None:
        self.workdir = workdir
        self.folders = folders
        self._on_changes = on_changes
        self._event = event
        self.force_polling = force_polling
        self.poll_every_ms = poll_every_ms
        #: Set once the watches are in place (a change made after it is seen).
        self.ready = asyncio.Event()
        #: Whether changes are being reported now (files in the folders need no polling).
        self.watching = False

    async def run(self) -> None:
        """Watch until cancelled; a batch that cannot be taken in is reported, not fatal."""
        roots = [self.workdir / f for f in self.folders if (self.workdir / f).is_dir()]
        if not roots:
            self.ready.set()
            return
        try:
            await self._watch(roots, self.force_polling)
        except (OSError, RuntimeError) as exc:  # no inotify (limits, file system): poll, bounded
            if self.force_polling:
                raise
            every = self.poll_every_ms
            log.warning("watching with inotify failed (%s): polling every %d ms", exc, every)
            self._event(f"cannot watch the shared folders with inotify ({exc}): looking every {every / 1000:g} s")
            await self._watch(roots, True)

    async def _watch(self, roots: list[Path], force_polling: bool | None) -> None:
        # watchfiles' own generator runs in a thread of its own: on a large tree, putting
        # its inotify watch on every folder takes seconds (1,000 folders: ~1 s) that must
        # not stall the event loop (`watchfiles.awatch` builds its watcher on the loop).
        # Its first return (a batch, or nothing after TIMEOUT_MS) comes once the watches
        # are in place: a change made after `ready` is seen.
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def started() -> None:
            if not stop.is_set():
                self.ready.set()
                self.watching = True

        def watched() -> None:
            for changes in watchfiles.watch(
                *roots,
                watch_filter=None,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=stop,
                rust_timeout=TIMEOUT_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
                force_polling=force_polling,
                poll_delay_ms=self.poll_every_ms,
                ignore_permission_denied=True,
            ):
                loop.call_soon_threadsafe(started)
                paths = {path for _change, path in changes if _not_git(path)}
                if paths and not stop.is_set():  # taken in on the loop, one batch at a time
                    taking = asyncio.run_coroutine_threadsafe(self._take(paths), loop)
                    while True:  # never blocked for good on a loop that is closing
                        try:
                            taking.result(timeout=TIMEOUT_MS / 1000)
                            break
                        except concurrent.futures.TimeoutError:
                            if stop.is_set():
                                taking.cancel()
                                return

        try:
            await asyncio.to_thread(watched)
        finally:
            self.watching = False
            stop.set()  # the thread's watch returns within a step; then the watcher is closed

    async def _take(self, paths: set[str]) -> None:
        try:
            await self._on_changes(paths)
        except Exception as exc:  # keep watching; say what failed
            log.exception("taking in changed files failed")
            self._event(f"files changed in a shared folder could not be taken in ({exc})")
