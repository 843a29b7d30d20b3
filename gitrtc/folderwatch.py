"""Watching the shared folders for files created, renamed and deleted (a background task).

`watchfiles.awatch` (inotify through the Rust `notify` crate; a bounded poll where
inotify cannot be used) batches what changed; each batch goes to
`FileSet.disk_changed`, which decides what joins, moves or leaves the session. Nothing
changes: nothing runs (idle CPU stays near zero). Changes inside `.git` are ignored
here; git's ignore rules are applied by the file set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import Change, awatch

log = logging.getLogger(__name__)

#: Milliseconds between looks when inotify is unavailable (bounded polling).
POLL_MS = 1000


def _not_git(change: Change, path: str) -> bool:
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
    ) -> None:
        self.workdir = workdir
        self.folders = folders
        self._on_changes = on_changes
        self._event = event
        self.force_polling = force_polling
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
            log.warning("watching with inotify failed (%s): polling every %d ms", exc, POLL_MS)
            self._event(f"cannot watch the shared folders with inotify ({exc}): looking every {POLL_MS / 1000:g} s")
            await self._watch(roots, True)

    async def _watch(self, roots: list[Path], force_polling: bool | None) -> None:
        changes = awatch(
            *roots,
            watch_filter=_not_git,
            step=50,
            force_polling=force_polling,
            poll_delay_ms=POLL_MS,
            ignore_permission_denied=True,
        )
        # the generator's first step builds the watcher (its inotify watches in place)
        # before it waits in a thread: once that step ran, a change is never missed
        first = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0)
        if first.done() and first.exception() is not None:
            raise first.exception()  # type: ignore[misc]
        self.ready.set()
        self.watching = True
        try:
            batch = await first
            while True:
                await self._take(batch)
                batch = await anext(changes)
        except StopAsyncIteration:
            return
        finally:
            self.watching = False
            first.cancel()
            await changes.aclose()

    async def _take(self, batch: set[tuple[Change, str]]) -> None:
        try:
            await self._on_changes({path for _change, path in batch})
        except Exception as exc:  # keep watching; say what failed
            log.exception("taking in changed files failed")
            self._event(f"files changed in a shared folder could not be taken in ({exc})")
