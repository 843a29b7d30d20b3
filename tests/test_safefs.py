"""A hostile file system: shared paths that become symbolic links mid-session, and the
permissions of what gitrtc keeps under `.git/rtc` (issue 13)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from pycrdt import Text

from gitrtc.server import views

from .conftest import FILES, Live
from .support import RtcProcess, async_wait_until, edit_stored, git, make_repo, wait_until
from .test_cli import ws_url


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (names relative to it) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def reported(live: Live) -> bool:
    """The session told the owner a shared path is a symbolic link now."""
    return any("symbolic link now" in e for e in live.session.events)


async def a_write_back_ran(live: Live, path: str, before: asyncio.Task[None] | None) -> None:
    """Wait until a write-back of `path` newer than `before` has run to its end."""
    state = live.session.disk.files[path]
    await async_wait_until(
        lambda: state.task is not None and state.task is not before and state.task.done(),
        what=f"a write-back of {path}",
    )
    assert state.task is not None and state.task.exception() is None


async def test_a_file_replaced_by_a_link_is_frozen_never_sent_and_committed_as_the_link(
    live: Live, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    readme = live.repo / "README.md"
    state = live.session.disk.files["README.md"]
    async with (
        live.client("README.md") as editor,
        live.client("README.md", role="viewer", name="Vic", email="vic@example.org") as viewer,
    ):
        await editor.wait_synced()
        await viewer.wait_synced()
        text = editor.doc.get("source", type=Text)
        seen = viewer.doc.get("source", type=Text)
        text.insert(len(text), "Alice's line.\n")
        await async_wait_until(lambda: readme.read_text().endswith("Alice's line.\n"), what="write-back")
        # an editor saves a link in the file's place (write a new one, rename it over)
        os.symlink(secret, live.repo / ".README.md.new")
        os.replace(live.repo / ".README.md.new", readme)
        leaked = lambda: "TOP SECRET" in str(text) or "TOP SECRET" in str(seen)  # noqa: E731
        await async_wait_until(lambda: reported(live) or leaked(), what="the link to be noticed")
        assert not leaked()
        assert any("README.md is a symbolic link" in e for e in live.session.events)
        status = {f["path"]: f for f in (await views.status(live.session))["files"]}
        assert status["README.md"]["save"].startswith("frozen: README.md is a symbolic link")

        before = state.task
        text.insert(0, "While frozen. ")  # nothing is written over the link, nor through it
        await a_write_back_ran(live, "README.md", before)
        await async_wait_until(lambda: str(seen).startswith("While frozen. "), what="the edit to reach the viewer")
        assert readme.is_symlink() and os.readlink(readme) == str(secret)
        assert not leaked()
    result = await live.session.end("Session with a link")
    assert result.commit is not None and "README.md" in result.files
    assert secret.read_text() == "TOP SECRET\n"  # the target is untouched
    assert readme.is_symlink()
    mode, kind, blob = git(live.repo, "ls-tree", "HEAD", "README.md").split("\t")[0].split()
    assert (mode, kind) == ("120000", "blob")
    assert git(live.repo, "cat-file", "-p", blob) == str(secret)  # the link text, never the target
    assert "TOP SECRET" not in git(live.repo, "show", "HEAD")
    # the session's version is kept, not lost
    kept = live.repo / ".git" / "rtc" / f"linked-{live.session.manifest.session}" / "README.md"
    assert kept.read_text() == "While frozen. # Project\n\nHello world.\nAlice's line.\n"
    assert str(kept.parent) in result.message


@pytest.mark.parametrize("outside_files", [{}, {"guide.md": b"OUTSIDE SECRET\n"}], ids=["empty", "same-name"])
async def test_a_folder_swapped_for_a_link_is_never_read_or_written_through(
    live: Live, tmp_path: Path, outside_files: dict[str, bytes]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, data in outside_files.items():
        (outside / name).write_bytes(data)
    docs = live.repo / "docs"
    state = live.session.disk.files["docs/guide.md"]
    async with live.client("docs/guide.md") as editor:
        await editor.wait_synced()
        text = editor.doc.get("source", type=Text)
        os.rename(docs, live.repo / "docs-moved")
        os.symlink(outside, docs)
        before = state.task
        text.insert(0, "Edited. ")
        await async_wait_until(
            lambda: reported(live) or files_in(outside) != outside_files or "OUTSIDE" in str(text),
            what="the linked folder to be noticed",
        )
        await a_write_back_ran(live, "docs/guide.md", before)
        assert files_in(outside) == outside_files  # nothing written there, not even a temporary file
        assert "OUTSIDE" not in str(text)
        assert "docs/guide.md is in docs, a symbolic link" in (state.linked or "")
    result = await live.session.end("Session with a linked folder")
    assert files_in(outside) == outside_files
    assert result.commit is not None
    # the session's version (the folder's link is the owner's to commit), never the target's
    assert git(live.repo, "show", "HEAD:docs/guide.md") == "Edited. Guide\n=====\n\nText with émojis 📊.\n"


def private_violations(rtc: Path) -> list[str]:
    """Everything under `.git/rtc` that a group or other user could read, write or enter."""
    found = [rtc] if rtc.exists() else []
    found += list(rtc.rglob("*"))
    return [f"{p} {stat.filemode(p.lstat().st_mode)}" for p in found if p.lstat().st_mode & 0o077]


def test_everything_under_git_rtc_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    rtc = repo / ".git" / "rtc"
    old_umask = os.umask(0o022)  # the usual one: files 0644, folders 0755 by default
    try:
        # a session with edits in its store, killed (its store stays, unfinished)
        first = RtcProcess(repo, ["README.md"])
        try:
            first.wait_ready()
            asyncio.run(edit_stored(ws_url(first, "README.md", "A", "a@example.org"), lambda t: t.insert(0, "First. ")))
            wait_until(lambda: (repo / "README.md").read_text().startswith("First. "), what="write-back")
            assert any(p.name.endswith("-wal") for p in rtc.rglob("*"))
            assert private_violations(rtc) == []
        finally:
            first.kill()
        # the owner changes the file while no session runs: the resume keeps a copy aside
        (repo / "README.md").write_text("Owner's version.\n")
        second = RtcProcess(repo, [])
        try:
            second.wait_ready()
            wait_until(lambda: list(rtc.rglob("disk-at-resume/README.md")), what="the disk's version kept aside")
            assert private_violations(rtc) == []
        finally:
            second.kill()
        # a fresh start saves the unfinished session as a patch
        third = RtcProcess(repo, ["README.md", "--fresh"])
        try:
            third.wait_ready()
            assert list(rtc.glob("unfinished-*.patch"))
            asyncio.run(edit_stored(ws_url(third, "README.md", "A", "a@example.org"), lambda t: t.insert(0, "Third. ")))
            assert private_violations(rtc) == []
            done = third.stop("-m", "third")
            assert done.returncode == 0, done.stderr
        finally:
            third.kill()
        assert private_violations(rtc) == []  # and after the end
    finally:
        os.umask(old_umask)


async def test_a_link_brought_by_a_fast_forward_is_not_followed_nor_replaced(live: Live, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(live.repo), str(clone))
    (clone / "README.md").unlink()
    os.symlink(secret, clone / "README.md")
    git(clone, "-c", "user.name=B", "-c", "user.email=b@example.org", "commit", "-qam", "README is a link")
    async with live.client("README.md", role="viewer", name="Vic", email="vic@example.org") as viewer:
        await viewer.wait_synced()
        seen = viewer.doc.get("source", type=Text)
        git(live.repo, "pull", "-q", "--ff-only", str(clone), "main")
        moved = git(live.repo, "rev-parse", "HEAD").strip()
        await async_wait_until(lambda: reported(live) or "TOP SECRET" in str(seen), what="the link to be noticed")
        assert "TOP SECRET" not in str(seen)
        async with live.client("README.md") as editor:
            await editor.wait_synced()
            before = live.session.disk.files["README.md"].task
            editor.doc.get("source", type=Text).insert(0, "Edited. ")
            await a_write_back_ran(live, "README.md", before)
    result = await live.session.end("After the pull")
    assert result.commit is None  # the branch already holds the link: nothing to add
    assert git(live.repo, "rev-parse", "HEAD").strip() == moved
    assert git(live.repo, "ls-tree", "HEAD", "README.md").startswith("120000 blob")
    assert (live.repo / "README.md").is_symlink() and secret.read_text() == "TOP SECRET\n"
    kept = live.repo / ".git" / "rtc" / f"linked-{live.session.manifest.session}" / "README.md"
    assert kept.read_text() == "Edited. # Project\n\nHello world.\n"


def test_safefs_refuses_every_way_out_of_its_folder(tmp_path: Path) -> None:
    from gitrtc import safefs
    from gitrtc.errors import UnsafePathError

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    (outside / "f").write_text("outside\n")
    (root / "d" / "f").write_text("inside\n")
    os.symlink(outside, root / "ld")
    os.symlink(outside / "f", root / "lf")
    os.mkfifo(root / "fifo")
    for rel in ("../outside/f", "/etc/passwd", "d/../lf", "d//f", "ld/f", "lf"):
        with pytest.raises(UnsafePathError):
            safefs.read_file(root, rel)
        with pytest.raises(UnsafePathError):
            safefs.replace_file(root, rel, b"x")
    with pytest.raises(OSError):
        safefs.read_file(root, "fifo")  # refused at once, not a hang
    assert safefs.read_file(root, "d/f") == b"inside\n"
    assert safefs.readlink(root, "lf") == str(outside / "f") and safefs.readlink(root, "d/f") is None
    stats = safefs.lstat_all(root, ["d/f", "lf", "ld/f", "gone/f", "/d/f"])
    assert [type(s).__name__ for s in stats] == [
        "stat_result",
        "stat_result",
        "UnsafePathError",
        "NoneType",
        "UnsafePathError",
    ]
    assert stat.S_ISLNK(stats[1].st_mode)  # the link's own stat, never its target's
    assert files_in(outside) == {"f": b"outside\n"} and sorted(os.listdir(root)) == ["d", "fifo", "ld", "lf"]


async def test_a_link_replaced_by_a_file_again_is_merged_and_written_back(live: Live, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    readme = live.repo / "README.md"
    async with live.client("README.md") as editor:
        await editor.wait_synced()
        text = editor.doc.get("source", type=Text)
        readme.unlink()
        os.symlink(secret, readme)
        await async_wait_until(lambda: reported(live) or "TOP SECRET" in str(text), what="the link to be noticed")
        assert "TOP SECRET" not in str(text)
        text.insert(len(text), "Typed while frozen.\n")
        readme.unlink()
        readme.write_text("# Owner's title\n\nHello world.\n")  # the owner puts a file back
        expected = "# Owner's title\n\nHello world.\nTyped while frozen.\n"
        await async_wait_until(lambda: str(text) == expected, what="the file merged into the session")
        await async_wait_until(lambda: readme.read_text() == expected, what="write-back resumed")
        assert any("README.md: it is a regular file again: no longer frozen" in e for e in live.session.events)
        assert live.session.disk.files["README.md"].label == "saved"
    assert secret.read_text() == "TOP SECRET\n"
