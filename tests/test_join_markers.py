"""nbdime's inline conflict markers reach an `rtc join` folder only when asked for
(`--conflict-markers`, issue 17). Without it the folder holds the session's document as
is: the same bytes as the owner's file, no markers. With it the conflicted cell shows
`<<<<<<< local` … `>>>>>>> remote`; replacing them with one's choice and saving resolves
the conflict, and the markers never reach the session. Real `rtc start` and `rtc join`
processes."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from pathlib import Path
from typing import Any

from pycrdt import Array, Map

from gitrtc.conflicts import attach
from gitrtc.documents import open_codec

from .support import RtcProcess, YClient, get_json, git, make_repo, wait_until
from .test_cli import ws_url
from .test_join import start_join
from .test_notebook_conflicts import small_nb, valid


def source_of(path: Path) -> str:
    return "".join(json.loads(path.read_text())["cells"][0]["source"])


def test_markers_only_in_the_folder_that_asks_for_them(tmp_path: Path) -> None:
    base = small_nb("ind = [1, 7, 8]\n", "other = 1\n")
    original = (json.dumps(base, indent=1, sort_keys=True) + "\n").encode()
    repo = make_repo(tmp_path / "r", {"nb.ipynb": original})
    theirs = copy.deepcopy(base)
    theirs["cells"][0]["source"] = "ind = [1, 2, 4]\n"
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    owner = RtcProcess(repo, ["nb.ipynb"])
    joiners = []
    try:
        info = owner.wait_ready()
        joiners = [start_join(info["url"], plain), start_join(info["url"], marked, "--conflict-markers")]
        for joiner in joiners:
            joiner.wait_for("mirroring")
        url = ws_url(owner, "nb.ipynb", "Ann", "ann@example.org")

        async def diverge() -> None:
            async with YClient(url) as client:  # typed live, then a diverged save merged (as a join does)
                await client.wait_synced()
                client.doc.get("cells", type=Array)[0]["source"].insert(len("ind = [1, 7"), "0")
                codec = open_codec("nb.ipynb", original)
                attach(codec, "the join folder of Ann")
                codec.apply_file(client.doc, json.dumps(theirs).encode(), "ann", base=original)
                state = client.doc.get("state", type=Map)
                assert any(k.startswith("conflict:") for k in state.keys())
                await client.flush()

        asyncio.run(diverge())
        wait_until(lambda: "<<<<<<< local" in (marked / "nb.ipynb").read_text(), what="markers in the marked folder")
        folder_text = source_of(marked / "nb.ipynb")
        assert "ind = [1, 70, 8]\n=======\nind = [1, 2, 4]\n>>>>>>> remote" in folder_text
        wait_until(lambda: source_of(repo / "nb.ipynb") == "ind = [1, 70, 8]\n", what="the owner's file")
        wait_until(
            lambda: (plain / "nb.ipynb").read_bytes() == (repo / "nb.ipynb").read_bytes(), what="the plain folder"
        )
        assert "<<<<<<<" not in (repo / "nb.ipynb").read_text()
        valid((marked / "nb.ipynb").read_text())

        def conflicts() -> list[dict[str, Any]]:
            status, body = asyncio.run(get_json(f"{owner.base}/api/session", info["token"]))
            assert status == 200, body
            found: list[dict[str, Any]] = body["conflicts"]
            return found

        assert len(conflicts()) == 1
        # Joan resolves in her editor: the markers replaced by the version she keeps
        chosen = json.loads((marked / "nb.ipynb").read_text())
        chosen["cells"][0]["source"] = ["ind = [1, 2, 4]\n"]
        tmp = marked / "nb.ipynb.tmp"
        tmp.write_text(json.dumps(chosen, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, marked / "nb.ipynb")
        joiners[1].wait_for("resolved by your edit")
        wait_until(lambda: source_of(repo / "nb.ipynb") == "ind = [1, 2, 4]\n", what="the resolution")
        wait_until(lambda: conflicts() == [], what="the conflict closed")
        for folder in (plain, marked):
            wait_until(
                lambda f=folder: (f / "nb.ipynb").read_bytes() == (repo / "nb.ipynb").read_bytes(),
                what=f"{folder.name} as the owner's file",
            )
        done = owner.stop("-m", "resolved")
        assert done.returncode == 0, done.stderr
        for joiner in joiners:
            joiner.communicate(timeout=30)
    finally:
        owner.kill()
        for joiner in joiners:
            if joiner.poll() is None:
                joiner.kill()
                joiner.communicate()
    committed = git(repo, "show", "HEAD:nb.ipynb")
    valid(committed)
    for folder in (plain, marked):
        assert (folder / "nb.ipynb").read_text() == committed


def test_a_join_folder_follows_the_formatting_of_the_owners_saves(tmp_path: Path) -> None:
    """The owner's editor saves the notebook in another layout (sources as lists of
    lines, another indentation): the session writes like that save from then on, and so
    does every join folder (`/api/format/{room}`): the same bytes as the owner's file."""
    base = small_nb("a = 1\n", "b = 2\n")
    repo = make_repo(tmp_path / "r", {"nb.ipynb": json.dumps(base, indent=1, sort_keys=True) + "\n"})
    folder = tmp_path / "joined"
    owner = RtcProcess(repo, ["nb.ipynb"])
    joiner = None
    try:
        info = owner.wait_ready()
        joiner = start_join(info["url"], folder)
        joiner.wait_for("mirroring")
        saved = copy.deepcopy(base)
        for cell in saved["cells"]:
            cell["source"] = cell["source"].splitlines(keepends=True)
        saved["cells"][1]["source"] = ["b = 3\n"]
        tmp = repo / "nb.ipynb.tmp"
        tmp.write_text(json.dumps(saved, indent=2) + "\n")  # the owner's editor, its own layout
        os.replace(tmp, repo / "nb.ipynb")
        wait_until(lambda: "b = 3" in (folder / "nb.ipynb").read_text(), what="the save in the folder")
        wait_until(
            lambda: (folder / "nb.ipynb").read_bytes() == (repo / "nb.ipynb").read_bytes(),
            what="the folder written like the owner's file",
        )
        assert (repo / "nb.ipynb").read_text() == json.dumps(saved, indent=2) + "\n"  # the save, as saved
        done = owner.stop("-m", "saved")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
    finally:
        owner.kill()
        if joiner is not None and joiner.poll() is None:
            joiner.kill()
            joiner.communicate()
    assert (folder / "nb.ipynb").read_text() == git(repo, "show", "HEAD:nb.ipynb")
