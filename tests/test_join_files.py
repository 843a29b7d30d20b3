"""`rtc join` follows the live file set (#19): files created, renamed and deleted in the
session appear, move and leave in the join folder, and the join folder's own creates,
renames and deletes reach the session — checked as bytes on both disks and in the commit."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .conftest import FILES
from .support import RtcProcess, YClient, git, make_repo, wait_until
from .test_cli import ws_url
from .test_join import JoinProcess, start_join


def files_api(owner: RtcProcess, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """`POST /api/files` as the browser does it (the owner's token, Alice's name)."""
    request = urllib.request.Request(
        f"{owner.base}/api/files",
        data=json.dumps({**body, "name": "Alice", "email": "alice@example.org"}).encode(),
        headers={"Authorization": f"Bearer {owner.info['token']}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def listed(owner: RtcProcess) -> set[str]:
    request = urllib.request.Request(
        f"{owner.base}/api/session", headers={"Authorization": f"Bearer {owner.info['token']}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return {f["path"] for f in json.loads(response.read())["files"]}


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def session(tmp_path: Path) -> tuple[Path, Path, RtcProcess, JoinProcess]:
    """An owner sharing `docs` (a live folder) and README.md, and Joan's clone joined to it."""
    repo = make_repo(tmp_path / "owner", FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    owner = RtcProcess(repo, ["README.md", "docs"])
    try:
        info = owner.wait_ready()
    except BaseException:
        owner.kill()
        raise
    joiner = start_join(info["url"], clone)
    try:
        joiner.wait_for("mirroring")
    except BaseException:
        close(owner, joiner)  # a failed start leaves no process behind
        raise
    return repo, clone, owner, joiner


def close(owner: RtcProcess, joiner: JoinProcess) -> None:
    owner.kill()
    if joiner.poll() is None:
        joiner.kill()
        joiner.communicate()


def test_files_created_renamed_deleted_in_the_session_follow_in_the_join_folder(tmp_path: Path) -> None:
    repo, clone, owner, joiner = session(tmp_path)
    try:
        # created on the owner's disk (any editor): joins the session, then Joan's folder
        (repo / "docs" / "notes.md").write_bytes(b"Notes from the owner.\n")
        wait_until(lambda: read(clone / "docs" / "notes.md") == b"Notes from the owner.\n", what="created here")
        # created by a participant (the browser's API): an empty file, then a notebook
        status, answer = files_api(owner, {"op": "create", "path": "docs/new.md", "kind": "text"})
        assert status == 200, answer
        wait_until(lambda: read(clone / "docs" / "new.md") == b"", what="a created empty file")
        # renamed by a participant: moves here with its bytes
        status, answer = files_api(owner, {"op": "rename", "path": "docs/guide.md", "to": "docs/manual.md"})
        assert status == 200, answer
        wait_until(lambda: not (clone / "docs" / "guide.md").exists(), what="the old name gone here")
        assert read(clone / "docs" / "manual.md") == str(FILES["docs/guide.md"]).encode()
        assert read(repo / "docs" / "manual.md") == str(FILES["docs/guide.md"]).encode()
        # renamed on the owner's disk (mv): the same here
        os.rename(repo / "docs" / "notes.md", repo / "docs" / "notes-2.md")
        wait_until(lambda: read(clone / "docs" / "notes-2.md") == b"Notes from the owner.\n", what="moved here")
        assert not (clone / "docs" / "notes.md").exists()
        # deleted by a participant, with a save of Joan's the session has not seen yet:
        # removed here, her version kept aside (and she is told where)
        status, answer = files_api(owner, {"op": "delete", "path": "docs/new.md"})
        assert status == 200, answer
        wait_until(lambda: not (clone / "docs" / "new.md").exists(), what="removed here")
        # a file Joan changed here is kept aside when the session deletes it
        joiner_text = b"Notes from the owner.\nJoan's own line.\n"
        (clone / "docs" / "notes-2.md").write_bytes(joiner_text)
        wait_until(lambda: read(repo / "docs" / "notes-2.md") == joiner_text, what="Joan's save on the owner's disk")
        os.remove(repo / "docs" / "notes-2.md")
        line = joiner.wait_for("docs/notes-2.md: it was deleted in the session; your version here is kept at")
        kept = Path(line.split(" is kept at ")[1].strip())
        assert kept.read_bytes() == joiner_text
        assert kept.is_relative_to(clone / ".git" / "rtc" / "join" / "kept")
        wait_until(lambda: not (clone / "docs" / "notes-2.md").exists(), what="removed here after being kept")
        assert joiner.poll() is None
        done = owner.stop("-m", "files moved")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
        assert joiner.returncode == 0
    finally:
        close(owner, joiner)
    stat = git(repo, "show", "--stat", "-M", "--format=", "HEAD")
    assert "docs/{guide.md => manual.md}" in stat
    assert git(repo, "ls-files", "docs").split() == ["docs/manual.md"]


def test_files_created_renamed_deleted_in_the_join_folder_reach_the_session(tmp_path: Path) -> None:
    repo, clone, owner, joiner = session(tmp_path)
    try:
        # Joan creates a file in the shared folder: it joins the session with its bytes
        text = b"# Plan\n\nJoan's plan, written in her editor.\n"
        (clone / "docs" / "plan.md").write_bytes(text)
        wait_until(lambda: read(repo / "docs" / "plan.md") == text, what="Joan's new file on the owner's disk")
        assert "docs/plan.md" in listed(owner)
        assert read(clone / "docs" / "plan.md") == text
        # and a notebook: the session's copy has her cells
        notebook = json.loads(str(FILES["analysis.ipynb"]))
        (clone / "docs" / "study.ipynb").write_text(json.dumps(notebook, indent=1) + "\n")

        def cells() -> list[str]:
            got = read(repo / "docs" / "study.ipynb")
            return [] if not got else ["".join(c["source"]) for c in json.loads(got)["cells"]]

        wait_until(lambda: cells() == ["".join(c["source"]) for c in notebook["cells"]], what="the notebook's cells")
        # Joan renames a file (mv): renamed in the session, the same room and bytes
        os.rename(clone / "docs" / "guide.md", clone / "docs" / "handbook.md")
        wait_until(lambda: read(repo / "docs" / "handbook.md") == str(FILES["docs/guide.md"]).encode(), what="moved")
        wait_until(lambda: not (repo / "docs" / "guide.md").exists(), what="the old name gone on the owner's disk")
        assert {"docs/handbook.md", "docs/plan.md", "docs/study.ipynb"} <= listed(owner)
        assert "docs/guide.md" not in listed(owner)
        # an edit after the rename still flows (the link followed the room)
        handbook = str(FILES["docs/guide.md"]).encode() + b"A line about the handbook.\n"
        (clone / "docs" / "handbook.md").write_bytes(handbook)
        wait_until(lambda: read(repo / "docs" / "handbook.md") == handbook, what="an edit after the rename")
        # Joan deletes a file: it leaves the session and the owner's disk
        os.remove(clone / "docs" / "plan.md")
        wait_until(lambda: "docs/plan.md" not in listed(owner), what="deleted in the session")
        wait_until(lambda: not (repo / "docs" / "plan.md").exists(), what="deleted on the owner's disk")
        # outside the shared folders nothing is sent (looked at before a later file here)
        (clone / "elsewhere.md").write_text("not shared\n")
        (clone / "docs" / "last.md").write_text("last\n")
        wait_until(lambda: read(repo / "docs" / "last.md") == b"last\n", what="a later file")
        assert not (repo / "elsewhere.md").exists()
        assert "elsewhere.md" not in listed(owner)
        done = owner.stop("-m", "Joan's files")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
    finally:
        close(owner, joiner)
    stat = git(repo, "show", "--stat", "-M", "--format=", "HEAD")
    assert "docs/{guide.md => handbook.md}" in stat
    assert "docs/study.ipynb" in stat
    assert "plan.md" not in stat
    assert git(repo, "show", "HEAD:docs/handbook.md").encode() == handbook
    assert read(clone / "docs" / "handbook.md") == handbook


def test_a_delete_the_session_refuses_is_undone_in_the_join_folder(tmp_path: Path) -> None:
    repo, clone, owner, joiner = session(tmp_path)
    opened = threading.Event()
    release = threading.Event()

    async def hold() -> None:  # Alice has docs/guide.md open in her editor
        async with YClient(ws_url(owner, "docs/guide.md", "Alice", "alice@example.org")) as client:
            await client.wait_synced()
            opened.set()
            await asyncio.to_thread(release.wait, 60)

    alice = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    alice.start()
    try:
        assert opened.wait(30)
        os.remove(clone / "docs" / "guide.md")
        joiner.wait_for("docs/guide.md: the session refused the delete")
        wait_until(lambda: read(clone / "docs" / "guide.md") == str(FILES["docs/guide.md"]).encode(), what="put back")
        assert "docs/guide.md" in listed(owner)
        assert read(repo / "docs" / "guide.md") == str(FILES["docs/guide.md"]).encode()
    finally:
        release.set()
        alice.join(30)
        close(owner, joiner)


def test_whole_files_made_changed_deleted_on_either_side_follow(tmp_path: Path) -> None:
    repo, clone, owner, joiner = session(tmp_path)
    figure = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256))
    try:
        # Joan adds an image to the shared folder: sent whole, on the owner's disk
        (clone / "docs" / "figure.png").write_bytes(figure)
        wait_until(lambda: read(repo / "docs" / "figure.png") == figure, what="Joan's image on the owner's disk")
        # the owner replaces it: Joan's copy follows
        redrawn = figure + b"\0redrawn"
        (repo / "docs" / "figure.png").write_bytes(redrawn)
        wait_until(lambda: read(clone / "docs" / "figure.png") == redrawn, what="the owner's image here")
        # Joan deletes it: gone from the owner's disk
        os.remove(clone / "docs" / "figure.png")
        wait_until(lambda: not (repo / "docs" / "figure.png").exists(), what="deleted on the owner's disk")
        done = owner.stop("-m", "a figure came and went")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
    finally:
        close(owner, joiner)
    assert "figure.png" not in git(repo, "ls-files")
