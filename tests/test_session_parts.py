"""The session's parts: its supervised background tasks, the UI's snapshot, the error
middleware, and credit and write-back decided from transaction origins."""

from __future__ import annotations

import asyncio
import dataclasses
import os

import aiohttp
import pytest
from pycrdt import Text

from gitrtc import protocol
from gitrtc.origins import (
    ClientEdit,
    DiskLoad,
    DiskMerge,
    Participant,
    ServerEdit,
    StoreReplay,
    credit_for,
    dirties_disk,
)

from .conftest import Live
from .support import async_wait_until

ALICE = Participant("Alice", "alice@example.org", "editor")
VIEWER = Participant("Vic", "vic@example.org", "viewer")


def test_credit_and_write_back_are_decided_from_the_origin() -> None:
    assert credit_for(ClientEdit(ALICE)) is ALICE
    assert credit_for(ClientEdit(VIEWER)) is None
    for origin in (DiskLoad("a.md"), DiskMerge("a.md"), StoreReplay(), ServerEdit(), None, "x"):
        assert credit_for(origin) is None, origin
    assert dirties_disk(ClientEdit(ALICE))
    assert dirties_disk(DiskMerge("a.md")) and dirties_disk(DiskLoad("a.md"))  # verified by the write
    assert not dirties_disk(StoreReplay()) and not dirties_disk(ServerEdit()) and not dirties_disk(None)


async def test_only_participants_who_changed_something_are_credited(live: Live) -> None:
    """A disk merge is nobody's; a client's resync that repeats what the room has is not
    an edit; Alice's typing is hers."""
    readme = live.repo / "README.md"
    async with live.client("README.md") as alice, live.client("README.md", name="Bob", email="bob@example.org") as bob:
        await alice.wait_synced()
        await bob.wait_synced()
        readme.write_text("# Project\n\nHello world, from the owner's editor.\n")
        await async_wait_until(lambda: "owner's editor" in str(alice.doc.get("source", type=Text)), what="merge")
        await bob.send_raw(protocol.sync_step2(bob.doc.get_update()))  # all of it already in the room
        await live.session.store.flush()
        assert await live.session.store.credits() == []
        alice.doc.get("source", type=Text).insert(0, "A ")
        await async_wait_until(lambda: readme.read_text().startswith("A "), what="Alice's edit on disk")
        await bob.send_raw(protocol.sync_step2(bob.doc.get_update()))
        await live.session.store.flush()
        assert await live.session.store.credits() == [("Alice", "alice@example.org")]


async def test_a_merged_save_is_not_written_back_over_itself(live: Live) -> None:
    """What the disk sync just merged renders to the same bytes: the file is left as the
    editor saved it (same inode, same mtime), not rewritten."""
    tool = live.repo / "src" / "tool.py"
    async with live.client("src/tool.py") as client:
        await client.wait_synced()
        tool.write_text("def f():\n    return 2\n")
        saved = os.stat(tool)
        await async_wait_until(lambda: "return 2" in str(client.doc.get("source", type=Text)), what="merge")
        await live.session.disk.flush()
        after = os.stat(tool)
        assert (after.st_ino, after.st_mtime_ns) == (saved.st_ino, saved.st_mtime_ns)


async def test_a_failing_background_task_is_reported_not_swallowed(live: Live) -> None:
    async def broken() -> None:
        raise RuntimeError("disk on fire")

    live.session.tasks.start("broken", broken())
    await async_wait_until(
        lambda: any("background task broken failed" in e and "disk on fire" in e for e in live.session.events),
        what="the failure reported",
    )
    assert live.session.tasks.running("watch")  # the others go on


async def test_background_tasks_are_stopped_when_the_session_closes(live: Live) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    live.session.tasks.start("forever", forever())
    await started.wait()
    await live.session.tasks.close()
    assert cancelled.is_set() and not live.session.tasks.running("watch")
    with pytest.raises(RuntimeError):
        live.session.tasks.start("late", forever())


async def test_the_ui_reads_an_immutable_snapshot(live: Live) -> None:
    async with live.client("README.md") as client:
        await client.wait_synced()
        snap = live.session.snapshot()
        assert [p["name"] for p in snap.participants] == ["Alice"]
        assert {f.path for f in snap.files} == {f.path for f in live.session.manifest.files}
        with pytest.raises(dataclasses.FrozenInstanceError):
            snap.url = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("method", "path", "role", "body", "status"),
    [
        ("GET", "/api/session", None, None, 401),
        ("GET", "/api/status", "editor", None, 403),
        ("GET", "/api/original/nope", "editor", None, 404),
        ("POST", "/api/kick", "owner", {"name": "nobody"}, 404),
        ("POST", "/api/invite", "owner", {"name": "  "}, 400),
    ],
)
async def test_api_errors_answer_with_their_class_status(
    live: Live, method: str, path: str, role: str | None, body: dict[str, str] | None, status: int
) -> None:
    headers = {"Authorization": f"Bearer {live.tokens[role]}"} if role else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, live.http + path, json=body, headers=headers) as answer:
            assert answer.status == status
            assert "error" in await answer.json()
