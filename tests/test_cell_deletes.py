"""Delete against edit through live Yjs clients (issue 17): a cell deleted by a client
that had not seen another's edit of it stays, with the edit, flagged as a `deleted`
conflict the deleter confirms; a delete of a cell nobody else touched is just a delete.
Real session, real pycrdt clients over WebSockets, one of them offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map, Text

from gitrtc.celldeletes import covered, watch_remote_deletes
from gitrtc.conflicts import open_conflicts
from gitrtc.documents import NotebookCodec, open_codec
from gitrtc.documents.notebook_ops import ycell_from_dict
from gitrtc.origins import KernelOutput
from gitrtc.requests import encode

from .conftest import Live, live_session
from .support import YClient, async_wait_until, git, make_repo


def notebook(*sources: str) -> str:
    cells = [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for i, s in enumerate(sources)
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"


def cell_sources(doc: Doc[Any]) -> dict[str, str]:
    return {str(c["id"]): str(c["source"]) for c in doc.get("cells", type=Array)}


async def offline_copy(live: Live, path: str) -> Doc[Any]:
    """A client's document as it was when it went offline (synced, then disconnected)."""
    doc: Doc[Any] = Doc()
    async with YClient(live.ws(path, name="Bob", email="bob@example.org"), doc) as client:
        await client.wait_synced()
    return doc


async def test_an_offline_delete_of_a_cell_edited_meanwhile_keeps_the_edit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n", "c = 3\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        del bob_doc.get("cells", type=Array)[1]  # Bob, offline, deletes cell c1
        async with live.client("nb.ipynb") as alice:  # Alice, live, edits it meanwhile
            await alice.wait_synced()
            alice.doc.get("cells", type=Array)[1]["source"].insert(0, "# checked\n")
            await async_wait_until(lambda: "# checked" in cell_sources(room.doc)["c1"], what="Alice's edit")
            async with YClient(live.ws("nb.ipynb", name="Bob", email="bob@example.org"), bob_doc) as bob:
                await bob.wait_synced()  # Bob reconnects: his delete reaches the session
                await async_wait_until(lambda: open_conflicts(room.doc), what="the conflict")
                (conflict,) = open_conflicts(room.doc)
                assert conflict["kind"] == "deleted" and conflict["cell"] == "c1"
                assert conflict["mine"] == "# checked\nb = 2\n" and conflict["theirs"] is None
                assert conflict["from"] == "a delete by Bob"
                expected = {"c0": "a = 1\n", "c1": "# checked\nb = 2\n", "c2": "c = 3\n"}
                assert cell_sources(room.doc) == expected
                assert list(cell_sources(room.doc)) == ["c0", "c1", "c2"]  # back at its place
                for doc in (alice.doc, bob.doc):  # everyone converges on it
                    await async_wait_until(lambda d=doc: cell_sources(d) == expected, what="converged")
                # Bob confirms his delete ("keep theirs": the deleting side)
                args = {"id": conflict["id"], "keep": "theirs"}
                await bob.send_raw(encode({"id": 1, "service": "conflict", "op": "resolve", "args": args}))
                await async_wait_until(lambda: not open_conflicts(room.doc), what="resolved")
                assert list(cell_sources(room.doc)) == ["c0", "c2"]
        done = await live.session.end("resolved")
        assert done.commit
    committed = json.loads(git(repo, "show", "HEAD:nb.ipynb"))
    assert [c["id"] for c in committed["cells"]] == ["c0", "c2"]


async def test_a_live_delete_of_a_cell_nobody_else_touched_is_a_plain_delete(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            room = live.session.rooms[live.room("nb.ipynb")]
            cells = alice.doc.get("cells", type=Array)
            cells[0]["source"].insert(0, "# typed first\n")  # seen by the deleter: no conflict
            cells[0]["metadata"]["tags"] = ["x"]
            await async_wait_until(lambda: "# typed" in cell_sources(room.doc)["c0"], what="typing")
            del cells[0]
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c1"], what="the delete")
            bob_doc = await offline_copy(live, "nb.ipynb")  # a delete read back by a new client
            assert list(cell_sources(bob_doc)) == ["c1"]
            assert open_conflicts(room.doc) == []


async def test_an_offline_delete_of_several_cells_keeps_only_the_edited_one(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n", "c = 3\n", "d = 4\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        bcells = bob_doc.get("cells", type=Array)
        bcells[2]["source"].insert(0, "# Bob was here\n")  # his own edit, then his deletes
        with bob_doc.transaction():
            del bcells[1:3]
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            alice.doc.get("cells", type=Array)[2]["metadata"]["tags"] = ["keep"]  # c2's metadata
            await async_wait_until(lambda: room.doc.get("cells", type=Array)[2]["metadata"].get("tags"), what="edit")
            async with YClient(live.ws("nb.ipynb", name="Bob", email="bob@example.org"), bob_doc) as bob:
                await bob.wait_synced()
                await async_wait_until(lambda: open_conflicts(room.doc), what="the conflict")
                assert list(cell_sources(room.doc)) == ["c0", "c2", "c3"]  # c1 went, c2 stayed
                (conflict,) = open_conflicts(room.doc)
                assert conflict["cell"] == "c2" and conflict["kind"] == "deleted"
                restored = room.doc.get("cells", type=Array)[1]
                assert isinstance(restored["source"], Text) and isinstance(restored["metadata"], Map)
                assert restored["metadata"].to_py() == {"tags": ["keep"]}
                await async_wait_until(lambda: list(cell_sources(bob.doc)) == ["c0", "c2", "c3"], what="Bob sees it")


def test_covered() -> None:
    assert covered({1: [(0, 10)]}, {1: [(0, 4), (4, 6)]})
    assert covered({1: [(3, 2)]}, {1: [(0, 10)], 2: [(0, 1)]})
    assert not covered({1: [(0, 10)]}, {1: [(0, 4), (5, 6)]})
    assert not covered({1: [(0, 1)], 2: [(0, 1)]}, {1: [(0, 1)]})
    assert covered({}, {})


async def test_an_offline_edit_of_a_cell_deleted_meanwhile_comes_back_with_the_edit(tmp_path: Path) -> None:
    """The other way round, on the client's side (as `rtc join` runs it): the session
    deleted a cell that this client edited while offline; when it reconnects, the cell
    comes back with its edit, flagged, for everyone."""
    original = notebook("a = 1\n", "b = 2\n", "c = 3\n")
    repo = make_repo(tmp_path / "r", {"nb.ipynb": original})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            bcells = bob_doc.get("cells", type=Array)
            bcells[1]["source"].insert(0, "# Bob, offline\n")
            del alice.doc.get("cells", type=Array)[1]  # Alice deletes it meanwhile
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0", "c2"], what="the delete")
            # as `rtc join` connects (`client=join`): the server leaves this check to the join
            bob = YClient(live.ws("nb.ipynb", name="Bob", email="bob@example.org") + "&client=join", bob_doc)
            codec = open_codec("nb.ipynb", original.encode())
            assert isinstance(codec, NotebookCodec)
            watch_remote_deletes(bob, codec, "someone in the session")
            async with bob:
                await bob.wait_synced()
                expected = {"c0": "a = 1\n", "c1": "# Bob, offline\nb = 2\n", "c2": "c = 3\n"}
                await async_wait_until(lambda: cell_sources(room.doc) == expected, what="the cell back")
                assert list(cell_sources(room.doc)) == ["c0", "c1", "c2"]
                (conflict,) = open_conflicts(room.doc)
                assert conflict["kind"] == "deleted" and conflict["cell"] == "c1"
                assert conflict["from"] == "a delete by someone in the session"
                for doc in (alice.doc, bob.doc):
                    await async_wait_until(lambda d=doc: cell_sources(d) == expected, what="converged")


async def test_an_offline_move_carries_the_edits_made_meanwhile(tmp_path: Path) -> None:
    """A move as JupyterLab makes it (the cell deleted, a copy with its id inserted
    elsewhere) by an offline client, while another edits the cell: one cell, at its new
    place, with the edit; no conflict, no duplicate."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n", "c = 3\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        bcells = bob_doc.get("cells", type=Array)
        with bob_doc.transaction():  # Bob, offline, moves c0 to the end
            value = bcells[0].to_py()
            del bcells[0]
            bcells.append(ycell_from_dict(value, "c0"))
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            alice.doc.get("cells", type=Array)[0]["source"].insert(6, "  # Alice")
            await async_wait_until(lambda: "Alice" in cell_sources(room.doc)["c0"], what="Alice's edit")
            async with YClient(live.ws("nb.ipynb", name="Bob", email="bob@example.org"), bob_doc) as bob:
                await bob.wait_synced()
                expected = {"c1": "b = 2\n", "c2": "c = 3\n", "c0": "a = 1\n  # Alice"}
                await async_wait_until(lambda: cell_sources(room.doc) == expected, what="the move with the edit")
                assert list(cell_sources(room.doc)) == ["c1", "c2", "c0"]
                assert open_conflicts(room.doc) == []
                for doc in (alice.doc, bob.doc):
                    await async_wait_until(lambda d=doc: cell_sources(d) == expected, what="converged")


async def test_outputs_arriving_meanwhile_do_not_keep_a_deleted_cell(tmp_path: Path) -> None:
    """Outputs written into a cell (a kernel running it) while an offline client deletes
    it are not someone's edit: the delete stands, no conflict."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "print(2)\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        del bob_doc.get("cells", type=Array)[1]
        ycell = room.doc.get("cells", type=Array)[1]

        def run() -> None:
            ycell["outputs"].append(Map({"output_type": "stream", "name": "stdout", "text": Text("2\n")}))
            ycell["execution_count"] = 1
            ycell["execution_state"] = "busy"

        room.edit(run, KernelOutput("nb.ipynb"))
        async with YClient(live.ws("nb.ipynb", name="Bob", email="bob@example.org"), bob_doc) as bob:
            await bob.wait_synced()
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0"], what="the delete")
            await async_wait_until(lambda: list(cell_sources(bob.doc)) == ["c0"], what="Bob's view")
            assert open_conflicts(room.doc) == []
