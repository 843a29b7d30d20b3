"""Crash and resume: `kill -9` of `rtc start`, then `rtc start` again in the same repository."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from .conftest import FILES
from .support import RtcProcess, async_wait_until, edit, edit_stored, git, make_repo
from .test_cli import ws_url


def test_kill_9_then_start_resumes_same_session_without_duplicates(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    first = RtcProcess(repo, ["README.md"])
    kept = Doc()
    try:
        info = first.wait_ready()
        url = ws_url(first, "README.md", "Alice", "alice@example.org")
        asyncio.run(edit_stored(url, lambda t: t.insert(0, "Before crash. "), kept))
    finally:
        first.kill()  # SIGKILL: no clean-up at all
    second = RtcProcess(repo, [])
    try:
        again = second.wait_ready()
        assert again["session"] == info["session"]
        assert again["token"] == info["token"] and again["readonly_token"] == info["readonly_token"]
        assert again["url"].split("#")[1] == info["url"].split("#")[1]
        url = ws_url(second, "README.md", "Alice", "alice@example.org")
        text = asyncio.run(edit(url, lambda t: t.insert(0, "After. "), kept))  # the doc kept across the crash
        assert text == "After. Before crash. # Project\n\nHello world.\n"
        asyncio.run(async_wait_until(lambda: (repo / "README.md").read_text() == text, what="write-back after resume"))
        done = second.stop("-m", "resumed")
        out = second.output[0]
    finally:
        second.kill()
    assert done.returncode == 0, done.stderr
    assert "resumed" in out
    assert git(repo, "show", "HEAD:README.md") == text
    assert "Co-authored-by: Alice <alice@example.org>" in git(repo, "log", "-1", "--format=%B")


def test_disk_edit_after_resume_merges_without_duplicating_earlier_edits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    first = RtcProcess(repo, ["README.md"])
    try:
        first.wait_ready()
        url = ws_url(first, "README.md", "Alice", "alice@example.org")
        asyncio.run(edit_stored(url, lambda t: t.insert(0, "Session edit. ")))
        asyncio.run(
            async_wait_until(
                lambda: (repo / "README.md").read_text().startswith("Session edit. "),
                what="write-back before the crash",
            )
        )
    finally:
        first.kill()
    second = RtcProcess(repo, [])
    try:
        second.wait_ready()
        disk = repo / "README.md"
        disk.write_text(disk.read_text() + "Owner's line.\n")  # the owner's editor, after the resume
        expected = "Session edit. # Project\n\nHello world.\nOwner's line.\n"
        done = second.stop("-m", "after resume")
    finally:
        second.kill()
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "HEAD:README.md") == expected


def test_branch_moved_while_no_session_ran_is_merged_not_reverted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    first = RtcProcess(repo, ["README.md"])
    try:
        first.wait_ready()
        url = ws_url(first, "README.md", "Alice", "alice@example.org")
        asyncio.run(edit_stored(url, lambda t: t.insert(0, "Live ")))
    finally:
        first.kill()
    # meanwhile the owner commits a change of the same file on the branch (another clone)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "config", "user.email", "o@example.org")
    git(clone, "config", "user.name", "O")
    (clone / "README.md").write_text("# Project\n\nHello world.\n\nFooter.\n")
    git(clone, "commit", "-q", "-am", "footer")
    git(repo, "fetch", "-q", str(clone), "main")
    git(repo, "update-ref", "refs/heads/main", "FETCH_HEAD")
    second = RtcProcess(repo, [])
    try:
        second.wait_ready()
        done = second.stop("-m", "resumed after the branch moved")
    finally:
        second.kill()
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "HEAD:README.md") == "Live # Project\n\nHello world.\n\nFooter.\n"


@pytest.mark.parametrize("trigger", ["every minute", "busy room"])
async def test_busy_room_log_is_compacted_and_still_replays(tmp_path: Path, trigger: str) -> None:
    from gitrtc.limits import Limits

    from .conftest import live_session

    if trigger == "every minute":  # a little behind, compacted at the minute
        limits = Limits(compact_look_every=0.1, compact_every=0.2, compact_after=50)
        behind = 50
    else:  # far behind: compacted at the next look, long before the minute
        limits = Limits(compact_look_every=0.1, compact_every=3600, compact_soon=100)
        behind = 100
    repo = make_repo(tmp_path / "r", FILES)
    async with live_session(repo, ["README.md"], limits) as live:
        async with live.client("README.md") as client:
            await client.wait_synced()
            text = client.doc.get("source", type=Text)
            for i in range(300):
                text.insert(0, "x")
                if i % 20 == 0:
                    await asyncio.sleep(0.01)
            room = live.room("README.md")
            await async_wait_until(
                lambda: len(str(live.session.rooms[room].doc.get("source", type=Text))) == len(str(text)),
                what="all edits applied",
            )

            async def log_rows() -> int:
                return len(await live.session.store.updates(room))

            deadline = asyncio.get_running_loop().time() + 10
            # a look during the typing may leave a tail that is not behind enough to compact again
            while await log_rows() > 1 + behind:
                assert asyncio.get_running_loop().time() < deadline, "the log was never compacted"
                await asyncio.sleep(0.05)
            replay = Doc()
            for update in await live.session.store.updates(room):
                replay.apply_update(update)
            assert str(replay.get("source", type=Text)) == str(text)
