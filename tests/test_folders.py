"""Shared folders are live (#19): files created, renamed and deleted on the owner's disk or
by participants join, move within and leave the session; clients follow; the end commit
has the additions, deletions and renames, and nothing else."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nbformat
import pygit2
import pytest
from pycrdt import Map, Text

from gitrtc.errors import RequestError

from .conftest import FILES, Live, live_session
from .support import YClient, async_wait_until, get_json, git, make_repo


@pytest.fixture
async def folders(tmp_path: Path) -> AsyncIterator[Live]:
    """A session sharing folders `docs` and `src` (plus two single files), with a
    `.gitignore` and the watcher's watches in place."""
    repo = make_repo(tmp_path / "repo", {**FILES, ".gitignore": "*.log\nbuild/\n"})
    async with live_session(repo, ["README.md", "docs", "analysis.ipynb", "src"]) as live:
        await live.session.folders.ready.wait()
        yield live


def paths(live: Live) -> set[str]:
    return {f.path for f in live.session.manifest.files}


async def post(live: Live, body: dict[str, Any], role: str = "editor") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{live.http}/api/files", json=body, headers={"Authorization": f"Bearer {live.tokens[role]}"}
        ) as response:
            return response.status, await response.json(content_type=None)


async def end(live: Live) -> str:
    result = await live.session.end("Session with files coming and going")
    assert result.commit, result.message
    return result.commit


def show_stat(repo: Path) -> str:
    return git(repo, "show", "--stat", "-M", "--format=%B", "HEAD")


async def test_files_made_renamed_deleted_on_disk_are_live_and_committed(folders: Live) -> None:
    live, repo = folders, folders.repo
    async with live.client("session") as watcher, live.client("docs/guide.md") as editor:
        await watcher.wait_synced()
        await editor.wait_synced()
        info = watcher.doc.get("session", type=Map)
        # created on disk: joins, every client is told, its room opens
        (repo / "docs/new.md").write_text("A new page\n")
        await async_wait_until(lambda: "docs/new.md" in paths(live), what="the new file to join")
        await async_wait_until(lambda: info.get("files_version", 0) >= 1, what="the clients to be told")
        _status, body = await get_json(f"{live.http}/api/session", live.tokens["viewer"])
        new = next(f for f in body["files"] if f["path"] == "docs/new.md")
        assert new["kind"] == "text" and body["files_version"] >= 1
        assert any(c["path"] == "docs/new.md" for c in info["files_changes"]["changes"])
        async with YClient(f"ws://127.0.0.1:{live.port}/rooms/{new['room']}?token={live.tokens['editor']}") as c:
            await c.wait_synced()
            assert str(c.doc.get("source", type=Text)) == "A new page\n"
        # renamed on disk while someone has it open: it moves, their editor with it
        os.rename(repo / "docs/guide.md", repo / "docs/renamed.md")
        await async_wait_until(lambda: "docs/renamed.md" in paths(live), what="the rename")
        assert "docs/guide.md" not in paths(live)
        text = editor.doc.get("source", type=Text)
        text.insert(0, "Still typing. ")
        renamed = repo / "docs/renamed.md"
        await async_wait_until(
            lambda: renamed.read_text().startswith("Still typing. "), what="write-back at the new name"
        )
        assert not (repo / "docs/guide.md").exists()
        # deleted on disk, nobody on it: leaves
        (repo / "src/tool.py").unlink()
        await async_wait_until(lambda: "src/tool.py" not in paths(live), what="the deletion")
        # git's ignore rules, links, binaries: not shared
        (repo / "docs/debug.log").write_text("noise\n")
        (repo / "docs/build").mkdir()
        (repo / "docs/build/out.md").write_text("built\n")
        os.symlink("/etc/passwd", repo / "docs/link.md")
        (repo / "docs/blob.dat").write_bytes(b"\x00\x01binary")
        (repo / "src/moved_in").mkdir()
        (repo / "src/moved_in/a.py").write_text("x = 1\n")
        await async_wait_until(lambda: "src/moved_in/a.py" in paths(live), what="a file in a new folder")
        skipped = dict(live.session.manifest.skipped)
        await async_wait_until(lambda: "docs/link.md" in dict(live.session.manifest.skipped), what="link listed")
        skipped = dict(live.session.manifest.skipped)
        assert "symbolic link" in skipped["docs/link.md"]
        assert "docs/blob.dat" in skipped
        assert not {"docs/debug.log", "docs/build/out.md", "docs/link.md", "docs/blob.dat"} & paths(live)
        # outside the shared folders: never
        (repo / "outside.md").write_text("not shared\n")
    await end(live)
    stat = show_stat(repo)
    assert "docs/{guide.md => renamed.md}" in stat, stat
    assert "docs/new.md" in stat and "src/tool.py" in stat and "src/moved_in/a.py" in stat
    assert "outside.md" not in stat and "debug.log" not in stat and "link.md" not in stat
    tree = git(repo, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert "src/tool.py" not in tree and "docs/guide.md" not in tree and "docs/renamed.md" in tree
    # nothing else in the work tree or the index changed
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(status) == ["?? docs/link.md", "?? outside.md"], status
    assert "docs/blob.dat" in stat  # a binary: shared and committed as a whole file


async def test_participants_create_rename_delete_and_bad_input_is_refused(folders: Live) -> None:
    live, repo = folders, folders.repo
    status, body = await post(
        live, {"op": "create", "path": "docs/notes.md", "name": "Bob", "email": "bob@example.org"}
    )
    assert status == 200 and body == {"path": "docs/notes.md"}
    assert (repo / "docs/notes.md").read_bytes() == b"" and "docs/notes.md" in paths(live)
    # the same path again: both kept, the second under a clear name
    status, body = await post(live, {"op": "create", "path": "docs/notes.md", "name": "Carol"})
    assert status == 200 and body == {"path": "docs/notes (2).md"}
    # a notebook: valid nbformat 4.5 with the session's kernelspec
    status, body = await post(live, {"op": "create", "path": "src/nb/new.ipynb", "kind": "notebook", "name": "Bob"})
    assert status == 200, body
    notebook = nbformat.reads((repo / "src/nb/new.ipynb").read_text(), as_version=nbformat.NO_CONVERT)
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) == (4, 5)
    assert notebook.metadata.kernelspec.name == "python3"
    # bad input: one clear error each, nothing created
    bad = [
        ({"op": "create", "path": "../escape.md"}, 400),
        ({"op": "create", "path": "docs/../../escape.md"}, 400),
        ({"op": "create", "path": "/etc/x.md"}, 400),
        ({"op": "create", "path": "docs/line\nbreak.md"}, 400),
        ({"op": "create", "path": "docs/.git/config"}, 400),
        ({"op": "create", "path": "docs\\win.md"}, 400),
        ({"op": "create", "path": "elsewhere.md"}, 400),  # outside the shared folders
        ({"op": "create", "path": "docs/guide.md/inner.md"}, 400),  # a file as a folder
        ({"op": "create", "path": "src/nb"}, 400),  # a folder as a file
        ({"op": "create", "path": "docs/trace.log"}, 400),  # ignored: would not be shared
        ({"op": "rename", "path": "docs/guide.md", "to": "docs/GUIDE.md"}, 400),  # case only
        ({"op": "rename", "path": "docs/guide.md", "to": "README.md"}, 400),  # outside
        ({"op": "rename", "path": "docs/guide.md", "to": "docs/notes.md"}, 409),  # taken
        ({"op": "delete", "path": "docs/nothing.md"}, 409),
        ({"op": "explode", "path": "docs/guide.md"}, 400),
    ]
    before = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if ".git" not in p.parts)
    for request, want in bad:
        status, body = await post(live, request)
        assert status == want and "error" in body and "\n" not in body["error"], (request, status, body)
    after = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if ".git" not in p.parts)
    assert before == after
    assert not (repo.parent / "escape.md").exists()
    # viewers may not
    status, body = await post(live, {"op": "delete", "path": "docs/guide.md"}, role="viewer")
    assert status == 403 and (repo / "docs/guide.md").exists()
    # a rename while someone types: their editor (same room) moves with the file
    room = live.room("docs/guide.md")
    async with live.client("docs/guide.md", name="Dana", email="dana@example.org") as typist:
        await typist.wait_synced()
        text = typist.doc.get("source", type=Text)
        text.insert(0, "Before. ")
        status, body = await post(live, {"op": "rename", "path": "docs/guide.md", "to": "docs/manual/guide.md"})
        assert status == 200, body
        assert body["moved"][0]["room"] == room and live.room("docs/manual/guide.md") == room
        text.insert(0, "After. ")
        target = repo / "docs/manual/guide.md"
        await async_wait_until(lambda: target.read_text().startswith("After. Before. Guide"), what="moved write-back")
        assert not (repo / "docs/guide.md").exists()
        # a delete while another edits: refused, their work kept
        status, body = await post(live, {"op": "delete", "path": "docs/manual/guide.md", "name": "Eve"})
        assert status == 409 and "Dana" in body["error"] and target.exists()
    # the request channel does the same, attributed to the connection
    async with live.client("session", name="Fay", email="fay@example.org") as fay:
        await fay.wait_synced()
        assert await fay.request("files", "delete", {"path": "docs/notes (2).md"}) == {}
    async with live.client("session", role="viewer") as viewer:
        await viewer.wait_synced()
        with pytest.raises(RequestError, match="viewer"):
            await viewer.request("files", "create", {"path": "docs/v.md"})
    assert not (repo / "docs/notes (2).md").exists() and not (repo / "docs/v.md").exists()
    await end(live)
    stat = show_stat(repo)
    assert "docs/{ => manual}/guide.md" in stat, stat
    assert "docs/notes.md" in stat and "src/nb/new.ipynb" in stat and "notes (2)" not in stat
    assert "Co-authored-by: Bob <bob@example.org>" in stat and "Co-authored-by: Fay <fay@example.org>" in stat
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


async def test_the_tree_is_listed_one_folder_at_a_time_and_found_by_name(folders: Live) -> None:
    live = folders
    _s, root = await get_json(f"{live.http}/api/tree", live.tokens["viewer"])
    assert root["folders"] == ["docs", "src"] and [f["path"] for f in root["files"]] == ["README.md", "analysis.ipynb"]
    _s, docs = await get_json(f"{live.http}/api/tree?dir=docs", live.tokens["viewer"])
    assert [f["path"] for f in docs["files"]] == ["docs/guide.md"] and docs["folders"] == []
    _s, found = await get_json(f"{live.http}/api/tree?find=TOOL", live.tokens["viewer"])
    assert [f["path"] for f in found["files"]] == ["src/tool.py"]
    status, _body = await get_json(f"{live.http}/api/tree", None)
    assert status == 401


async def test_a_folder_is_listed_in_pages_from_an_index_that_follows_changes(folders: Live) -> None:
    live = folders
    token = live.tokens["viewer"]
    _s, first = await get_json(f"{live.http}/api/tree?limit=3", token)
    assert first["folders"] == ["docs", "src"] and [f["path"] for f in first["files"]] == ["README.md"]
    assert first["more"] is True and first["next"] == 3
    _s, second = await get_json(f"{live.http}/api/tree?limit=3&offset=3", token)
    assert second["folders"] == [] and [f["path"] for f in second["files"]] == ["analysis.ipynb"]
    assert "more" not in second
    # a file created in a new folder: the cached index is rebuilt for the new version
    status, _body = await post(live, {"op": "create", "path": "docs/deep/er/new.md"})
    assert status == 200
    _s, docs = await get_json(f"{live.http}/api/tree?dir=docs", token)
    assert docs["folders"] == ["deep"] and [f["path"] for f in docs["files"]] == ["docs/guide.md"]
    _s, deep = await get_json(f"{live.http}/api/tree?dir=docs/deep", token)
    assert deep["folders"] == ["er"] and deep["files"] == []
    _s, page = await get_json(f"{live.http}/api/tree?dir=docs/deep/er&limit=1", token)
    assert [f["path"] for f in page["files"]] == ["docs/deep/er/new.md"] and "more" not in page
    status, bad = await get_json(f"{live.http}/api/tree?limit=many", token)
    assert status == 400, bad


def test_a_manifest_of_an_older_store_reads(tmp_path: Path) -> None:
    from gitrtc.manifest import Manifest

    old = Manifest.new("refs/heads/main", "0" * 40, False, 0.0).to_json()
    for key in ("folders", "rooms", "added", "removed", "files_version"):
        del old[key]
    manifest = Manifest.from_json(json.loads(json.dumps(old)))
    assert manifest.folders == [] and manifest.room_for("a.md").startswith(manifest.epoch + ".")


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


async def raw(live: Live, path: str, role: str = "viewer") -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{live.http}/api/raw", params={"path": path}, headers={"Authorization": f"Bearer {live.tokens[role]}"}
        ) as response:
            return response.status, response.content_type, await response.read()


async def put_raw(live: Live, path: str, data: bytes, role: str = "editor") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.put(
            f"{live.http}/api/raw",
            params={"path": path, "name": "Gil", "email": "gil@example.org"},
            data=io.BytesIO(data),
            headers={"Authorization": f"Bearer {live.tokens[role]}"},
        ) as response:
            return response.status, await response.json(content_type=None)


async def test_binary_files_are_listed_served_replaced_whole_and_committed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {**FILES, "docs/fig.png": PNG, "docs/data.bin": b"\x00\x01\x02"})
    async with live_session(repo, ["docs", "src"]) as live:
        await live.session.folders.ready.wait()
        _s, body = await get_json(f"{live.http}/api/session", live.tokens["viewer"])
        listed = {b["path"]: b for b in body["binaries"]}
        assert listed["docs/fig.png"]["type"] == "image/png" and "docs/data.bin" in listed
        assert all(f["path"] != "docs/fig.png" for f in body["files"])  # no room: a whole file
        status, kind, data = await raw(live, "docs/fig.png")
        assert (status, kind, data) == (200, "image/png", PNG)
        assert (await raw(live, "unrelated.txt"))[0] == 404  # never anything outside the session
        assert (await raw(live, "../etc/passwd"))[0] == 404
        async with live.client("session") as watcher:
            await watcher.wait_synced()
            info = watcher.doc.get("session", type=Map)
            # replaced on the owner's disk: every client is told its new digest
            (repo / "docs/fig.png").write_bytes(PNG + b"\x00v2")
            await async_wait_until(
                lambda: any(
                    c["op"] == "binary" and c["path"] == "docs/fig.png"
                    for c in (info.get("files_changes") or {}).get("changes", [])
                ),
                what="the replaced image announced",
            )
            # a participant puts a new image; a viewer may not; text is not replaced whole
            assert (await put_raw(live, "docs/img/new.png", PNG))[0] == 200
            assert (repo / "docs/img/new.png").read_bytes() == PNG
            big = PNG + bytes(3 * 1024 * 1024)  # past the app's 1 MiB JSON limit: a real photo's size
            assert (await put_raw(live, "docs/img/photo.png", big))[0] == 200
            assert (repo / "docs/img/photo.png").read_bytes() == big
            assert (await put_raw(live, "docs/v.png", PNG, role="viewer"))[0] == 403
            assert (await put_raw(live, "docs/guide.md", b"\x00x"))[0] == 409
            assert (await put_raw(live, "docs/t.png", b"plain text"))[0] == 409
            assert (await put_raw(live, "../x.png", PNG))[0] == 400
            # deleted by a participant
            assert (await post(live, {"op": "delete", "path": "docs/data.bin", "name": "Gil"}))[0] == 200
            assert not (repo / "docs/data.bin").exists()
        await end(live)
    stat = show_stat(repo)
    assert "docs/fig.png" in stat and "docs/img/new.png" in stat and "docs/data.bin" in stat, stat
    assert "docs/img/photo.png" in stat
    committed = pygit2.Repository(str(repo)).revparse_single("HEAD:docs/fig.png")
    assert committed.data == PNG + b"\x00v2"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


async def test_files_that_joined_or_moved_survive_a_restart(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    async with live_session(repo, ["docs", "src"]) as live:
        await live.session.folders.ready.wait()
        live.session.manifest.port = live.port  # served: a restart resumes it
        (repo / "docs/late.md").write_text("Late\n")
        await async_wait_until(lambda: "docs/late.md" in paths(live), what="the new file")
        status, _ = await post(live, {"op": "rename", "path": "src/tool.py", "to": "src/lib/tool.py"})
        assert status == 200
        room = live.room("docs/late.md")
        async with live.client("docs/late.md") as client:
            await client.wait_synced()
            client.doc.get("source", type=Text).insert(0, "Edited. ")
            await async_wait_until(lambda: (repo / "docs/late.md").read_text() == "Edited. Late\n", what="written")
        await live.session.save_manifest()
    async with live_session(repo, []) as again:
        assert again.session.resumed
        assert again.room("docs/late.md") == room and "src/lib/tool.py" in paths(again)
        assert "src/tool.py" not in paths(again)
        await again.session.folders.ready.wait()
        (repo / "src/new.py").write_text("y = 2\n")  # still watched after the restart
        await async_wait_until(lambda: "src/new.py" in paths(again), what="watched after a restart")
        await end(again)
    stat = show_stat(repo)
    assert "docs/late.md" in stat and "src/{ => lib}/tool.py" in stat and "src/new.py" in stat, stat


@pytest.mark.limits(unload_idle_after=0.2)
async def test_a_room_nobody_uses_is_unloaded_and_reopens_with_its_edits(live: Live) -> None:
    room = live.room("docs/guide.md")
    async with live.client("docs/guide.md") as client:
        await client.wait_synced()
        client.doc.get("source", type=Text).insert(0, "Kept. ")
        await async_wait_until(lambda: (live.repo / "docs/guide.md").read_text().startswith("Kept. "), what="saved")
        assert room in live.session.registry.rooms
    await async_wait_until(lambda: room not in live.session.registry.rooms, what="the idle room unloaded")
    async with live.client("docs/guide.md") as again:
        await again.wait_synced()
        assert str(again.doc.get("source", type=Text)).startswith("Kept. Guide")
    result = await live.session.end("After an unload")
    assert result.commit and "docs/guide.md" in result.files


async def test_another_branch_checked_out_does_not_change_the_file_set(folders: Live) -> None:
    live, repo = folders, folders.repo
    git(repo, "checkout", "-q", "-b", "other")
    git(repo, "rm", "-q", "src/tool.py")
    (repo / "docs/other.md").write_text("Only on the other branch\n")
    git(repo, "add", "docs/other.md")
    git(repo, "commit", "-q", "-m", "other")
    await async_wait_until(lambda: live.session.fileset.off_branch, what="the watcher to see the other branch")
    assert "src/tool.py" in paths(live) and "docs/other.md" not in paths(live)
    git(repo, "checkout", "-q", "main")
    (repo / "docs/after.md").write_text("Back on main\n")  # a change seen once back on the branch
    await async_wait_until(lambda: "docs/after.md" in paths(live), what="the file made back on the branch")
    assert "src/tool.py" in paths(live) and "docs/other.md" not in paths(live)
