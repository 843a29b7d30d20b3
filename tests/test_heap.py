"""`heap.steady`: full collections freeze their survivors, sweeps still reclaim frozen
garbage cycles, and `rtc start`'s runner leaves the collector as it found it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import os
import signal
import weakref
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from gitrtc import heap, launch, sessionfile
from gitrtc.cli import runner

from .support import async_wait_until


class Node:
    """A cycle's member (weak-referenceable, tracked by the collector)."""

    other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    """Two nodes referring to each other: only the collector frees them."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@contextlib.contextmanager
def collector_restored() -> Iterator[None]:
    """Whatever a test leaves frozen is unfrozen (the next tests' garbage stays collectable)."""
    try:
        yield
    finally:
        gc.unfreeze()


async def test_a_full_collection_freezes_and_a_sweep_reclaims_frozen_cycles() -> None:
    with collector_restored(), heap.steady(sweep_every=3600):
        kept, alive = cycle()
        gc.collect()  # a full collection: its survivors, the cycle among them, are frozen
        assert gc.get_freeze_count() > 0
        del kept  # now garbage, but frozen: full collections no longer look at it
        gc.collect()
        assert alive() is not None
        heap.sweep()
        assert alive() is None
        assert gc.get_freeze_count() > 0  # the sweep's own survivors are frozen again
    assert gc.get_freeze_count() == 0  # left: nothing stays frozen


async def test_the_periodic_sweep_reclaims_frozen_cycles() -> None:
    with collector_restored(), heap.steady(sweep_every=0.05):
        kept, alive = cycle()
        gc.collect()
        del kept
        gc.collect()
        assert alive() is not None
        await async_wait_until(lambda: alive() is None, what="the periodic sweep reclaimed the cycle")


async def test_the_runner_freezes_while_serving_and_stops_when_the_server_stops(repo: Path) -> None:
    with collector_restored():
        console = Console(file=io.StringIO())
        plan = launch.Plan(cwd=repo, paths=["README.md"])
        serving = asyncio.create_task(runner.run(plan, runner.Options(port=0, open_browser=False), console))
        await async_wait_until(
            lambda: sessionfile.read_session_file(repo / ".git") is not None or serving.done(), what="serving"
        )
        assert not serving.done(), serving.exception()
        assert heap.freeze_survivors in gc.callbacks
        gc.collect()
        assert gc.get_freeze_count() > 0
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the runner ends the session
        result = await asyncio.wait_for(serving, 60)
        assert result.ended
        assert heap.freeze_survivors not in gc.callbacks
        assert gc.get_freeze_count() == 0
