"""Edits that Yjs alone would drop when a cell is deleted or moved (issue 17), checked on the
server so that every Yjs client is covered: an offline client's edit of a cell someone
deleted meanwhile comes back with the cell, flagged; a moved cell carries every field's
concurrent edits (outputs, metadata, execution count), not only its source.
Real session, real pycrdt clients over WebSockets, one of them offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map, Text

from gitrtc import protocol
from gitrtc.conflicts import open_conflicts
from gitrtc.documents.notebook_ops import ycell_from_dict
from gitrtc.limits import Limits
from gitrtc.origins import KernelOutput
from gitrtc.requests import encode

from .conftest import Live, live_session
from .support import YClient, async_wait_until, get_json, git, make_repo
from .test_cell_deletes import cell_sources, notebook, offline_copy


def cell(doc: Doc[Any], cid: str) -> dict[str, Any]:
    return next(c.to_py() for c in doc.get("cells", type=Array) if c.get("id") == cid)


def move_cell(doc: Doc[Any], index: int, to: int | None = None) -> None:
    """JupyterLab's move: the cell deleted and a copy with its id inserted at `to` (the end)."""
    cells = doc.get("cells", type=Array)
    with doc.transaction():
        value = cells[index].to_py()
        del cells[index]
        cells.insert(len(cells) if to is None else to, ycell_from_dict(value, value["id"]))


def bob(live: Live, doc: Doc[Any]) -> YClient:
    return YClient(live.ws("nb.ipynb", name="Bob", email="bob@example.org"), doc)


async def test_an_offline_clients_edit_of_a_cell_deleted_meanwhile_comes_back(tmp_path: Path) -> None:
    """A plain Yjs client (no `rtc join` check of its own) edits a cell while offline;
    Alice deletes that cell; when the client reconnects, the cell is back at its place
    with the edit, flagged as a `deleted` conflict (listed in /api/session) that Alice,
    the deleter, confirms with "keep theirs"."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n", "c = 3\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        bcells = bob_doc.get("cells", type=Array)
        bcells[1]["source"].insert(0, "# Bob, offline\n")
        bcells[1]["metadata"]["tags"] = ["checked"]
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            del alice.doc.get("cells", type=Array)[1]  # Alice deletes c1 meanwhile
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0", "c2"], what="the delete")
            async with bob(live, bob_doc) as b:
                await b.wait_synced()
                expected = {"c0": "a = 1\n", "c1": "# Bob, offline\nb = 2\n", "c2": "c = 3\n"}
                await async_wait_until(lambda: cell_sources(room.doc) == expected, what="the cell back")
                assert list(cell_sources(room.doc)) == ["c0", "c1", "c2"]  # at its place
                assert cell(room.doc, "c1")["metadata"] == {"tags": ["checked"]}
                (conflict,) = open_conflicts(room.doc)
                assert conflict["kind"] == "deleted" and conflict["cell"] == "c1"
                assert conflict["mine"] == "# Bob, offline\nb = 2\n" and conflict["theirs"] is None
                assert conflict["from"] == "a delete by Alice"
                status, info = await get_json(f"{live.http}/api/session", live.tokens["editor"])
                assert status == 200
                assert [(c["path"], c["cell"], c["kind"]) for c in info["conflicts"]] == [("nb.ipynb", "c1", "deleted")]
                for doc in (alice.doc, b.doc):  # everyone converges on it
                    await async_wait_until(lambda d=doc: cell_sources(d) == expected, what="converged")
                args = {"id": conflict["id"], "keep": "theirs"}  # Alice confirms her delete
                await alice.send_raw(encode({"id": 1, "service": "conflict", "op": "resolve", "args": args}))
                await async_wait_until(lambda: not open_conflicts(room.doc), what="resolved")
                assert list(cell_sources(room.doc)) == ["c0", "c2"]
        done = await live.session.end("resolved")
        assert done.commit
    committed = json.loads(git(repo, "show", "HEAD:nb.ipynb"))
    assert [c["id"] for c in committed["cells"]] == ["c0", "c2"]


async def test_two_offline_edits_of_a_deleted_cell_bring_it_back_once(tmp_path: Path) -> None:
    """Bob and Carol both edit c1 offline; Alice deletes it. Bob's reconnect brings the
    cell back; Carol's edit, arriving later, is merged into that cell (not a second copy):
    one cell with both edits, one conflict."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        carol_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        bob_doc.get("cells", type=Array)[1]["source"].insert(0, "# Bob\n")
        carol_doc.get("cells", type=Array)[1]["source"].insert(5, "  # Carol")
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            del alice.doc.get("cells", type=Array)[1]
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0"], what="the delete")
            async with bob(live, bob_doc) as b:
                await b.wait_synced()
                await async_wait_until(lambda: cell_sources(room.doc).get("c1") == "# Bob\nb = 2\n", what="back")
            carol = YClient(live.ws("nb.ipynb", name="Carol", email="carol@example.org"), carol_doc)
            async with carol:
                await carol.wait_synced()
                both = "# Bob\nb = 2  # Carol\n"
                await async_wait_until(lambda: cell_sources(room.doc).get("c1") == both, what="Carol's too")
                await async_wait_until(lambda: cell_sources(carol.doc) == {"c0": "a = 1\n", "c1": both}, what="c")
            assert list(cell_sources(room.doc)) == ["c0", "c1"]
            assert [c["kind"] for c in open_conflicts(room.doc)] == ["deleted"]


async def test_a_live_move_carries_outputs_metadata_and_execution_count(tmp_path: Path) -> None:
    """Bob, offline, moves c0 to the end (JupyterLab's move: delete + copy with its id);
    meanwhile Alice tags it and a kernel run writes its outputs and execution count. The
    moved cell carries all of them: one cell, no conflict, no duplicate."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("print(1)\n", "b = 2\n", "c = 3\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        move_cell(bob_doc, 0)
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            alice.doc.get("cells", type=Array)[0]["metadata"]["tags"] = ["slow"]
            await async_wait_until(lambda: cell(room.doc, "c0")["metadata"] == {"tags": ["slow"]}, what="tag")
            ycell = room.doc.get("cells", type=Array)[0]

            def run() -> None:
                ycell["outputs"].append(Map({"output_type": "stream", "name": "stdout", "text": Text("1\n")}))
                ycell["execution_count"] = 1

            room.edit(run, KernelOutput("nb.ipynb"))
            async with bob(live, bob_doc) as b:
                await b.wait_synced()
                await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c1", "c2", "c0"], what="the move")
                await async_wait_until(lambda: cell(room.doc, "c0")["execution_count"] == 1, what="carried")
                moved = cell(room.doc, "c0")
                assert moved["metadata"] == {"tags": ["slow"]}
                assert [o["text"] for o in moved["outputs"]] == ["1\n"]
                assert open_conflicts(room.doc) == []
                for doc in (alice.doc, b.doc):  # Alice had the run already: wait for the move too
                    await async_wait_until(lambda d=doc: list(cell_sources(d)) == ["c1", "c2", "c0"], what="moved")
                    await async_wait_until(lambda d=doc: cell(d, "c0")["execution_count"] == 1, what="converged")
        done = await live.session.end("moved")
        assert done.commit
    committed = json.loads(git(repo, "show", "HEAD:nb.ipynb"))
    assert [c["id"] for c in committed["cells"]] == ["c1", "c2", "c0"]
    assert committed["cells"][2]["metadata"] == {"tags": ["slow"]}
    assert committed["cells"][2]["outputs"][0]["text"] in ("1\n", ["1\n"])


async def test_an_edit_arriving_after_a_live_move_follows_the_cell(tmp_path: Path) -> None:
    """The other order: Alice moves c0 (live); Bob, offline since before, had tagged it and
    changed its source. His edits reach the moved cell, not the deleted original."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        bcell = bob_doc.get("cells", type=Array)[0]
        bcell["source"].insert(5, "0")
        bcell["metadata"]["tags"] = ["bob"]
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            move_cell(alice.doc, 0)
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c1", "c0"], what="the move")
            async with bob(live, bob_doc) as b:
                await b.wait_synced()
                await async_wait_until(lambda: cell_sources(room.doc)["c0"] == "a = 10\n", what="carried")
                assert cell(room.doc, "c0")["metadata"] == {"tags": ["bob"]}
                assert list(cell_sources(room.doc)) == ["c1", "c0"]
                assert open_conflicts(room.doc) == []
                await async_wait_until(lambda: cell_sources(b.doc) == {"c1": "b = 2\n", "c0": "a = 10\n"}, what="b")


async def test_keystrokes_in_flight_during_a_live_delete_bring_the_cell_back(tmp_path: Path) -> None:
    """Bob types two keystrokes into c1 that reach the server just after Alice's delete of
    it (sent as the update messages a live editor sends, not a reconnect's sync): the
    cell comes back once, with both characters, and one conflict."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        typed: list[bytes] = []
        bob_doc.observe(lambda event: typed.append(event.update))
        source = bob_doc.get("cells", type=Array)[1]["source"]
        source.insert(5, "0")
        source.insert(6, "0")
        assert len(typed) == 2
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            del alice.doc.get("cells", type=Array)[1]
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0"], what="the delete")
            async with live.client("nb.ipynb", name="Bob", email="bob@example.org") as b:
                await b.wait_synced()
                for update in typed:
                    await b.send_raw(protocol.sync_update(update))
                await async_wait_until(lambda: cell_sources(room.doc).get("c1") == "b = 200\n", what="both keys")
                assert list(cell_sources(room.doc)) == ["c0", "c1"]
                assert [c["kind"] for c in open_conflicts(room.doc)] == ["deleted"]
                await async_wait_until(lambda: cell_sources(alice.doc) == cell_sources(room.doc), what="converged")


async def test_a_cell_inserted_next_to_a_deleted_cell_is_no_late_edit(tmp_path: Path) -> None:
    """Bob, offline, inserts a cell right after c1, which Alice deletes: his new cell
    arrives, c1 stays deleted (an insert next to a cell is not an edit of it), and typing
    in the new cell is not taken for a late edit."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        new = {"cell_type": "code", "metadata": {}, "source": "n = 0\n", "outputs": [], "execution_count": None}
        bob_doc.get("cells", type=Array).insert(2, ycell_from_dict(new, "new"))
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            del alice.doc.get("cells", type=Array)[1]
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0"], what="the delete")
            async with bob(live, bob_doc) as b:
                await b.wait_synced()
                await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0", "new"], what="the new cell")
                copy: Doc[Any] = Doc()  # a keystroke in the new cell, looked at before it is sent
                copy.apply_update(b.doc.get_update())
                typed: list[bytes] = []
                copy.observe(lambda event: typed.append(event.update))
                next(c for c in copy.get("cells", type=Array) if c["id"] == "new")["source"].insert(5, "0")
                watch = room.cell_deletes
                assert watch is not None and typed and watch.late(typed[-1]) == []
            assert list(cell_sources(room.doc)) == ["c0", "new"] and open_conflicts(room.doc) == []


async def test_an_offline_edit_of_a_cell_deleted_by_a_save_on_the_owners_disk_comes_back(tmp_path: Path) -> None:
    """The owner deletes a cell in their own editor and saves; Bob had edited that cell
    offline: when he reconnects the cell is back with his edit, flagged as deleted by
    the owner's disk (a server edit leaves graves too, not only a client's update)."""
    import os

    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n", "c = 3\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        bob_doc.get("cells", type=Array)[1]["source"].insert(0, "# Bob, offline\n")
        saved = json.loads(notebook("a = 1\n", "b = 2\n", "c = 3\n"))
        del saved["cells"][1]
        tmp = repo / "nb.ipynb.tmp"
        tmp.write_text(json.dumps(saved, indent=1) + "\n")
        os.replace(tmp, repo / "nb.ipynb")  # the owner's editor saves without c1
        await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0", "c2"], what="the save merged")
        async with bob(live, bob_doc) as b:
            await b.wait_synced()
            expected = {"c0": "a = 1\n", "c1": "# Bob, offline\nb = 2\n", "c2": "c = 3\n"}
            await async_wait_until(lambda: cell_sources(room.doc) == expected, what="the cell back")
            (conflict,) = open_conflicts(room.doc)
            assert (conflict["kind"], conflict["cell"], conflict["from"]) == (
                "deleted",
                "c1",
                "a delete by the owner's disk",
            )
            await async_wait_until(lambda: cell_sources(b.doc) == expected, what="Bob converged")
        await async_wait_until(lambda: "# Bob, offline" in (repo / "nb.ipynb").read_text(), what="written back")


async def test_a_deleted_cells_room_waits_for_the_offline_editor_while_idle(tmp_path: Path) -> None:
    """Alice deletes a cell and leaves; the room is idle far longer than an idle room is
    kept, yet Bob, offline all along, still gets his edit of that cell back when he
    returns: the room's graves kept it loaded (`Limits.graves_hold`)."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n"), "notes.md": "Notes\n"})
    async with live_session(repo, ["nb.ipynb", "notes.md"], Limits(unload_idle_after=0.1)) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        name = live.room("nb.ipynb")
        room = live.session.rooms[name]
        bob_doc.get("cells", type=Array)[1]["source"].insert(0, "# Bob\n")
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            del alice.doc.get("cells", type=Array)[1]
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0"], what="the delete")
        async with live.client("notes.md") as reader:  # a room opened after, and left
            await reader.wait_synced()
        notes = live.room("notes.md")
        await async_wait_until(lambda: notes not in live.session.registry.rooms, what="the other idle room unloaded")
        assert name in live.session.registry.rooms
        async with bob(live, bob_doc) as b:
            await b.wait_synced()
            back = {"c0": "a = 1\n", "c1": "# Bob\nb = 2\n"}
            await async_wait_until(lambda: cell_sources(live.session.rooms[name].doc) == back, what="the cell back")


async def test_graves_older_than_the_hold_let_the_room_go(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n")})
    async with live_session(repo, ["nb.ipynb"], Limits(unload_idle_after=0.1, graves_hold=0.3)) as live:
        name = live.room("nb.ipynb")
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            room = live.session.rooms[name]
            del alice.doc.get("cells", type=Array)[1]
            await async_wait_until(lambda: list(cell_sources(room.doc)) == ["c0"], what="the delete")
        assert room.cell_deletes is not None and room.cell_deletes.graves
        await async_wait_until(lambda: name not in live.session.registry.rooms, what="the room unloaded")


def ids(doc: Doc[Any]) -> list[str]:
    return [str(c.get("id")) for c in doc.get("cells", type=Array)]


async def test_two_moves_of_one_cell_at_once_leave_one_cell_with_both_edits(tmp_path: Path) -> None:
    """Bob, offline, moves c0 to the end and adds a line to it; Alice moves c0 below c1.
    Each move deletes the cell and inserts a copy with its id, so Yjs alone keeps two
    copies: one cell shown twice, and a notebook nbformat calls invalid. The server makes
    one cell of them, where the first copy stands, with Bob's line."""
    repo = make_repo(tmp_path / "r", {"nb.ipynb": notebook("a = 1\n", "b = 2\n", "c = 3\n")})
    async with live_session(repo, ["nb.ipynb"]) as live:
        bob_doc = await offline_copy(live, "nb.ipynb")
        room = live.session.rooms[live.room("nb.ipynb")]
        move_cell(bob_doc, 0)
        bob_doc.get("cells", type=Array)[2]["source"].insert(0, "# Bob\n")
        async with live.client("nb.ipynb") as alice:
            await alice.wait_synced()
            move_cell(alice.doc, 0, 1)
            await async_wait_until(lambda: ids(room.doc) == ["c1", "c0", "c2"], what="Alice's move")
            async with bob(live, bob_doc) as b:
                await b.wait_synced()
                want = {"c1": "b = 2\n", "c0": "# Bob\na = 1\n", "c2": "c = 3\n"}
                for doc in (room.doc, alice.doc, b.doc):
                    await async_wait_until(
                        lambda d=doc: ids(d) == ["c1", "c0", "c2"] and cell_sources(d) == want, what="one c0"
                    )
                assert open_conflicts(room.doc) == []
        done = await live.session.end("moved twice")
        assert done.commit
    committed = json.loads(git(repo, "show", "HEAD:nb.ipynb"))
    assert [c["id"] for c in committed["cells"]] == ["c1", "c0", "c2"]
    assert "".join(committed["cells"][1]["source"]) == "# Bob\na = 1\n"
