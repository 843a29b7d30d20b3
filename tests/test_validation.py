"""One editor cannot jam a session: what a client's update makes of a document is checked
before it is accepted, and a document that still cannot be written never blocks the end."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pycrdt import Array, Doc, Map, Text

from gitrtc import protocol
from gitrtc.launch import Plan, prepare
from gitrtc.origins import DiskLoad
from gitrtc.server import views
from gitrtc.validation import MAX_DEPTH

from .conftest import Live, live_session
from .support import YClient, async_wait_until, get_json, git

NB = "analysis.ipynb"


def denied_reasons(client: YClient) -> list[str]:
    """The reasons of the y-protocols permission-denied messages a client got."""
    out = []
    for frame in client.auth_messages:
        length, pos = protocol.read_var_uint(frame, 2)
        out.append(frame[pos : pos + length].decode("ascii"))
    return out


def first_source(client: YClient) -> Text:
    return client.doc.get("cells", type=Array)[0]["source"]


async def test_edits_that_would_make_a_notebook_unwritable_are_refused_for_their_sender_only(live: Live) -> None:
    bad_edits = {
        "bytes": lambda meta, cells: meta["metadata"].__setitem__("blob", b"\x00\x01"),
        "NaN": lambda meta, cells: meta["metadata"].__setitem__("score", math.nan),
        "deep plain value": lambda meta, cells: meta["metadata"].__setitem__("deep", _nested(MAX_DEPTH + 5)),
        "deep shared maps": lambda meta, cells: _nest_maps(meta["metadata"], MAX_DEPTH + 5),
        "cell without a type": lambda meta, cells: cells.append(Map({"source": Text("x"), "metadata": Map()})),
        "cell without its metadata": lambda meta, cells: cells[1].pop("metadata"),
        "output without its text": lambda meta, cells: cells[1]["outputs"][0].pop("text"),
        "unknown root": lambda meta, cells: meta.doc.get("hidden", type=Map).__setitem__("x", 1),
        "a root used as another type": lambda meta, cells: meta.doc.get("cells", type=Map).__setitem__("x", 1),
        "a cell that is not a map": lambda meta, cells: cells.append(5),
        "a source that is not a text": lambda meta, cells: cells[1].__setitem__("source", "plain"),
    }
    async with live.client(NB, name="Witness", email="w@example.org") as witness, live.client(NB) as editor:
        await witness.wait_synced()
        await editor.wait_synced()
        meta, cells = editor.doc.get("meta", type=Map), editor.doc.get("cells", type=Array)
        for what, bad in bad_edits.items():
            before = len(editor.auth_messages)
            bad(meta, cells)
            await async_wait_until(lambda: len(editor.auth_messages) > before, what=f"the refusal of {what}")  # noqa: B023 — awaited here
            assert denied_reasons(editor)[-1].startswith("invalid-edit: "), what
        before = len(editor.auth_messages)
        typeless = next(c for c in cells if isinstance(c, Map) and "cell_type" not in c)
        typeless["source"].insert(0, "y")  # builds on the refused cell: refused too
        await async_wait_until(lambda: len(editor.auth_messages) > before, what="the refusal of a follow-up")
        assert "reload" in denied_reasons(editor)[-1]
        # the connection is still open, and the sender's next ordinary edit goes through
        first_source(editor).insert(0, "Still here. ")
        seen = first_source(witness)
        await async_wait_until(lambda: str(seen).startswith("Still here. "), what="the next edit to reach the witness")
        witness_meta = witness.doc.get("meta", type=Map)["metadata"]
        assert not {"blob", "score", "deep", "n"} & set(witness_meta.keys())
        assert len(witness.doc.get("cells", type=Array)) == 2
        assert editor.close_code is None and not editor.closed.is_set()
        on_disk = live.repo / NB
        await async_wait_until(lambda: "Still here. " in on_disk.read_text(), what="the write-back")
        written = json.loads(on_disk.read_text())
        assert "blob" not in written["metadata"] and len(written["cells"]) == 2
        state = live.session.disk.files[NB]
        assert state.error is None


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def _nest_maps(parent: Map, depth: int) -> None:
    with parent.doc.transaction():
        for _ in range(depth):
            child = Map()
            parent["n"] = child
            parent = child


async def test_a_document_that_cannot_be_written_never_blocks_the_end(live: Live) -> None:
    """(as a store from before these checks could hold) The write-back error shows in rtc
    status, /api/session and the events; the end commits the other files, reports the bad
    one, and keeps its document beside the store."""
    session = live.session
    room = await session.room(live.room(NB))

    def poison() -> None:
        room.doc.get("meta", type=Map)["metadata"]["blob"] = b"\x00"

    room.edit(poison, DiskLoad(NB))
    async with live.client("README.md", name="Bob", email="bob@example.org") as bob:
        await bob.wait_synced()
        bob.doc.get("source", type=Text).insert(0, "Bob was here. ")
        await async_wait_until(
            lambda: (live.repo / "README.md").read_text().startswith("Bob was here. "), what="README.md written"
        )
        state = session.disk.files[NB]
        await async_wait_until(lambda: state.error, what="the write-back failure of the notebook")
        async with live.client("session", role="viewer") as browser:  # what the status bar shows
            await browser.wait_synced()
            errors = browser.doc.get("session", type=Map)
            await async_wait_until(lambda: NB in (errors.get("save_errors") or {}), what="save_errors")
        status, described = await get_json(live.http + "/api/session", live.tokens["editor"])
        assert status == 200
        assert any(f["path"] == NB and "bytearray" in f["save_error"] for f in described["files"])
        owner = await views.status(session)
        row = next(f for f in owner["files"] if f["path"] == NB)
        assert row["save"].startswith("not saved") and row["error"]
        assert any(NB in e and "not written" in e for e in owner["events"])

        result = await session.end("End with a bad notebook")
        # the end is not blocked: the others' work is committed, the session ends ...
        assert result.commit is not None and result.ended
        assert NB in result.message and "not committed" in result.message
        assert git(live.repo, "show", "--stat", "--format=", "HEAD").split()[0] == "README.md"
        assert session.state == "ended"
    # ... and the bad document is kept, whole, as a Yjs update beside the session's store
    kept = live.repo / ".git" / "rtc" / f"unwritable-{session.manifest.session}" / f"{NB}.yjs"
    copy = Doc()
    copy.apply_update(kept.read_bytes())
    assert copy.get("meta", type=Map)["metadata"]["blob"] == b"\x00"
    assert oct(kept.stat().st_mode & 0o777) == "0o600"


async def test_a_bad_document_in_an_unfinished_session_neither_breaks_resume_nor_fresh(repo: Path) -> None:
    async with live_session(repo, ["README.md", NB]) as live:
        room = await live.session.room(live.room(NB))
        room.edit(lambda: room.doc.get("meta", type=Map)["metadata"].__setitem__("blob", b"\x00"), DiskLoad(NB))
        async with live.client("README.md") as alice:
            await alice.wait_synced()
            alice.doc.get("source", type=Text).insert(0, "Unfinished ")
            await async_wait_until(lambda: (repo / "README.md").read_text().startswith("Unfinished "), what="disk")
        await live.session.store.flush()
        session_id = live.session.manifest.session
    # the process died without ending: resume
    resumed = await prepare(Plan(cwd=repo, paths=[]))
    try:
        assert resumed.session.resumed
        await resumed.session.room(resumed.session.manifest.room_for(NB))
        resumed.session.disk.changed(NB)
        await resumed.session.disk.flush()
        assert resumed.session.disk.files[NB].error
    finally:
        await resumed.session.close()
        resumed.lock.close()
    fresh = await prepare(Plan(cwd=repo, paths=["README.md"], fresh=True))
    try:
        assert any(NB in note and "not written" in note for note in fresh.notes)
        kept = repo / ".git" / "rtc" / f"unfinished-{session_id}" / "store.sqlite"
        assert kept.is_file()
        patch = repo / ".git" / "rtc" / f"unfinished-{session_id}.patch"
        assert "+Unfinished # Project" in patch.read_text()
    finally:
        await fresh.session.close()
        fresh.lock.close()


async def test_a_file_cannot_grow_past_the_size_limit_while_shared(live: Live) -> None:
    room = await live.session.room(live.room("README.md"))
    assert room.guard is not None
    room.guard.max_bytes = len((live.repo / "README.md").read_bytes()) + 50
    async with live.client("README.md") as alice:
        await alice.wait_synced()
        source = alice.doc.get("source", type=Text)
        source.insert(len(source), "x" * 100)
        await async_wait_until(lambda: alice.auth_messages, what="the refusal")
        assert "limit" in denied_reasons(alice)[-1]
    async with live.client("README.md", name="Bob") as bob:  # a fresh client: the server's copy
        await bob.wait_synced()
        source = bob.doc.get("source", type=Text)
        assert "xxx" not in str(source)
        source.insert(0, "small ")
        await async_wait_until(lambda: (live.repo / "README.md").read_text().startswith("small "), what="disk")
        assert not bob.auth_messages


async def test_edits_outside_the_file_earn_no_co_author_credit(live: Live) -> None:
    async with (
        live.client("README.md", name="Mallory", email="mallory@example.org") as mallory,
        live.client("README.md", name="Alice", email="alice@example.org") as alice,
    ):
        await mallory.wait_synced()
        await alice.wait_synced()
        mallory.doc.get("state", type=Map)["dirty"] = True  # a root the file does not render
        alice.doc.get("source", type=Text).insert(0, "Real work. ")
        await async_wait_until(
            lambda: mallory.doc.get("source", type=Text).to_py().startswith("Real work. "),
            what="Alice's edit to reach Mallory",
        )
        assert alice.doc.get("state", type=Map).get("dirty") is True  # accepted and shared, only not credited
    result = await live.session.end("Credits")
    assert result.ended
    message = git(live.repo, "log", "-1", "--format=%B")
    assert "Co-authored-by: Alice <alice@example.org>" in message
    assert "Mallory" not in message


def test_the_guard_decodes_what_pycrdt_writes() -> None:
    """The decoder's view of ids and lengths matches the document's state vector (UTF-16
    lengths for text, so emoji and CJK count as Yjs counts them)."""
    from gitrtc import yupdate

    doc = Doc()
    text = doc.get("source", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for piece in ("a", "é", "📊", "中文", "\n", "xyz"):
        text.insert(len(text), piece)
        text.insert(0, piece)
    del text[0:3]
    doc.get("state", type=Map)["k"] = 1.5
    for update in updates:
        typed = yupdate.typed_characters(update)
        decoded = yupdate.decode(update, MAX_DEPTH)
        if typed is not None:
            (s,) = decoded.structs
            assert typed == (s.client, s.clock, s.length, s.origin, s.right, s.size)
    ends: dict[int, int] = {}
    for s in yupdate.decode(doc.get_update(), MAX_DEPTH).structs:
        ends[s.client] = max(ends.get(s.client, 0), s.clock + s.length)
    count, pos = protocol.read_var_uint(doc.get_state(), 0)
    for _ in range(count):
        client, pos = protocol.read_var_uint(doc.get_state(), pos)
        clock, pos = protocol.read_var_uint(doc.get_state(), pos)
        assert ends[client] == clock
