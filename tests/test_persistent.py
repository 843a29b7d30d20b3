"""Persistent sessions: rtc commit without ending, pause and resume with the same links,
personal invites that rtc kick revokes at once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from pycrdt import Text

from .conftest import FILES
from .support import RtcProcess, YClient, async_wait_until, edit, git, make_repo
from .test_cli import run_rtc, ws_url


def test_commit_pause_resume_stop(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    base = git(repo, "rev-parse", "HEAD").strip()
    proc = RtcProcess(repo, ["README.md", "--persistent"])
    try:
        info = proc.wait_ready()
        asyncio.run(edit(ws_url(proc, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "A. ")))
        done = run_rtc(repo, "commit", "-m", "first checkpoint")
        assert done.returncode == 0, done.stderr
        first = done.stdout.strip()
        assert git(repo, "rev-parse", "HEAD").strip() == first and git(repo, "rev-parse", "HEAD^").strip() == base
        assert "Co-authored-by: Alice <alice@example.org>" in git(repo, "log", "-1", "--format=%B")
        assert "README.md" not in git(repo, "status", "--porcelain")
        asyncio.run(edit(ws_url(proc, "README.md", "Bob", "bob@example.org"), lambda t: t.insert(0, "B. ")))
        out, err = proc.terminate(signal.SIGTERM)  # a restart, not the end
        assert proc.proc.returncode == 0, err
        assert "paused" in out
        assert git(repo, "rev-parse", "HEAD").strip() == first
    finally:
        proc.kill()
    again = RtcProcess(repo, ["--port", str(info["port"])])
    try:
        resumed = again.wait_ready()
        assert resumed["url"] == info["url"] and resumed["readonly_url"] == info["readonly_url"]
        done = again.stop("-m", "second")
    finally:
        again.kill()
    assert done.returncode == 0, done.stderr
    assert git(repo, "rev-parse", "HEAD^").strip() == first
    assert git(repo, "show", "HEAD:README.md").startswith("B. A. # Project")
    message = git(repo, "log", "-1", "--format=%B")
    assert "Co-authored-by: Bob <bob@example.org>" in message and "Alice" not in message


def test_invite_and_kick(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md"])
    try:
        proc.wait_ready()
        done = run_rtc(repo, "invite", "Carol")
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip().split("#t=")[1]
        viewer = run_rtc(repo, "invite", "Vic", "--viewer").stdout.strip().split("#t=")[1]
        room = ws_url(proc, "README.md", "x", "").split("/rooms/")[1].split("?")[0]

        async def scenario() -> None:
            url = f"{proc.ws_base}{room}?token={token}&name=Carol&email=carol@example.org"
            async with YClient(url) as carol, YClient(f"{proc.ws_base}{room}?token={viewer}&name=Vic") as vic:
                await carol.wait_synced()
                await vic.wait_synced()
                carol.doc.get("source", type=Text).insert(0, "C. ")
                vic.doc.get("source", type=Text).insert(0, "V. ")
                await async_wait_until(lambda: vic.auth_messages, what="the viewer invite to be read-only")
                await async_wait_until(
                    lambda: (repo / "README.md").read_text().startswith("C. "),
                    what="Carol's edit, before she is kicked",
                )
                kicked = await asyncio.to_thread(run_rtc, repo, "kick", "Carol")
                assert kicked.returncode == 0, kicked.stderr
                assert await carol.wait_closed() == 4403
            async with YClient(f"{proc.ws_base}{room}?token={token}&name=Carol") as again:
                assert await again.wait_closed() == 4401
            assert run_rtc(repo, "kick", "Nobody").returncode != 0

        asyncio.run(scenario())
        done = proc.stop("-m", "with Carol")
    finally:
        proc.kill()
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "HEAD:README.md").startswith("C. # Project")
    assert "Co-authored-by: Carol <carol@example.org>" in git(repo, "log", "-1", "--format=%B")


async def test_a_commit_rewrites_only_its_part_of_the_stored_manifest(tmp_path: Path) -> None:
    """After `rtc commit` only the base and baseline are written; reopening the store
    gives the manifest with both, and a store written before the split still opens."""
    from gitrtc.manifest import MANIFEST_KEY, FileEntry, Manifest
    from gitrtc.store import Store

    manifest = Manifest.new("refs/heads/main", "a" * 40, persistent=True, created=1.0)
    manifest.files = [FileEntry(f"f{i}.md", "text", manifest.room_for(f"f{i}.md")) for i in range(3)]
    store = Store(tmp_path / "s" / "store.sqlite")
    await store.open()
    await store.add_files([(f.room, f.path, f.kind, b"") for f in manifest.files])  # the files are rows
    await store.set_meta(manifest.to_meta())
    manifest.invites.append({"name": "Ann", "role": "editor", "token": "t"})
    manifest.base = "b" * 40
    manifest.baseline[manifest.files[0].room] = "d" * 64
    await store.set_meta(manifest.to_meta(commit_only=True))
    await store.close()
    reopened = Store(tmp_path / "s" / "store.sqlite")
    await reopened.open()
    meta = await reopened.get_meta()
    await reopened.close()
    loaded = Manifest.from_meta(meta)
    assert loaded.base == "b" * 40 and loaded.baseline == {manifest.files[0].room: "d" * 64}
    assert loaded.files == manifest.files and loaded.tokens == manifest.tokens
    assert loaded.invites == []  # not part of a commit: written by the full save only
    assert meta[MANIFEST_KEY]["base"] == "a" * 40  # the large entry was left alone
    assert "files" not in meta[MANIFEST_KEY]  # a change of the file list writes rows, not this entry
    files = [{"path": f.path, "kind": f.kind, "room": f.room} for f in manifest.files]
    older = Manifest.from_meta({MANIFEST_KEY: {**meta[MANIFEST_KEY], "files": files}})  # before the split
    assert older.base == "a" * 40 and older.files == manifest.files
