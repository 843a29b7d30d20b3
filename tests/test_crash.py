"""kill -9 in the middle of a burst of edits from several clients, then resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pycrdt import Doc, Text

from .conftest import FILES
from .support import RtcProcess, YClient, async_wait_until, git, make_repo
from .test_cli import ws_url


async def burst(clients: list[YClient], stop: asyncio.Event, typed: list[int]) -> None:
    async def typist(i: int, client: YClient) -> None:
        text = client.doc.get("source", type=Text)
        while not stop.is_set():
            text.insert(len(text) if i % 2 else 0, f"{i}")
            typed[i] += 1
            await asyncio.sleep(0.002)

    await asyncio.gather(*(typist(i, c) for i, c in enumerate(clients)))


def test_kill_9_during_a_burst_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    owner = RtcProcess(repo, ["README.md"])
    docs = [Doc() for _ in range(3)]
    typed = [0, 0, 0]
    try:
        info = owner.wait_ready()
        urls = [ws_url(owner, "README.md", f"P{i}", f"p{i}@example.org") for i in range(3)]

        async def before_crash() -> None:
            clients = [YClient(url, doc) for url, doc in zip(urls, docs, strict=True)]
            for c in clients:
                await c.connect()
                await c.wait_synced()
            stop = asyncio.Event()
            typing = asyncio.ensure_future(burst(clients, stop, typed))
            await async_wait_until(lambda: sum(typed) >= 150, what="a burst under way")
            await asyncio.to_thread(owner.kill)  # SIGKILL mid-burst
            killed_at = sum(typed)
            await async_wait_until(lambda: sum(typed) >= killed_at + 30, what="typing on after the kill")
            stop.set()
            await typing
            for c in clients:
                await c.close()

        asyncio.run(before_crash())
        owner = RtcProcess(repo, ["--port", str(info["port"])])
        owner.wait_ready()

        async def after_restart() -> str:
            clients = [YClient(url, doc) for url, doc in zip(urls, docs, strict=True)]
            for c in clients:
                await c.connect()
                await c.wait_synced()
            texts = [d.get("source", type=Text) for d in docs]
            await async_wait_until(lambda: len({str(t) for t in texts}) == 1, what="all clients converge")
            for c in clients:
                await c.close()
            return str(texts[0])

        final = asyncio.run(after_restart())
        done = owner.stop("-m", "after the crash")
    finally:
        owner.kill()
    assert done.returncode == 0, done.stderr
    committed = git(repo, "show", "HEAD:README.md")
    assert committed == final
    assert committed.count("# Project\n\nHello world.\n") == 1  # the original text, once
    assert [committed.count(str(i)) for i in range(3)] == typed  # every keystroke, exactly once
    assert sum(typed) + len("# Project\n\nHello world.\n") == len(committed)
    assert sum(typed) > 30  # the burst really happened
