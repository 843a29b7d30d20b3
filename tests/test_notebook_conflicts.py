"""Diverged notebook versions merged into a live session with nbdime's semantics, through
real channels: the owner's disk (in-process session) and an `rtc join` folder (real
process). Clean merges equal nbdime's; conflicts keep both sides and are listed, block
`rtc stop`/`rtc commit` until resolved or taken as they are; every commit validates."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
from pathlib import Path
from typing import Any

import nbformat
import pytest
from pycrdt import Array, Doc, Map

from gitrtc.conflicts import open_conflicts
from gitrtc.documents import open_codec
from gitrtc.limits import Limits
from gitrtc.merge.notebooks import merge_notebook
from gitrtc.requests import encode

from .conftest import Live, live_session
from .corpus import nbdime_file
from .support import YClient, async_wait_until, get_json, git, make_repo
from .test_diff_ops import _triples
from .test_merge_notebooks import nbdime_merge, plain

#: Write-back held back: live edits stay ahead of the owner's file, so a save on disk is
#: a diverged version (the owner's editor had the file before the live edits).
HELD = Limits(write_quiet_seconds=3600, write_max_delay_seconds=3600)


async def edit_live(live: Live, client: YClient, path: str, original: str, side: dict[str, Any]) -> dict[str, Any]:
    """`client` edits `path` (the file `original`) into notebook `side`; once the session's
    document holds it, its file value (what the session will write)."""
    open_codec(path, original.encode()).apply_file(client.doc, json.dumps(side).encode(), "client")
    codec = live.session.codecs[live.room(path)]
    room = live.session.rooms[live.room(path)]
    await async_wait_until(lambda: plain(codec.file_value(room.doc)) == plain(side), what="live edit")
    value: dict[str, Any] = codec.file_value(room.doc)
    return value


def cases() -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    out = []
    for param in _triples():
        base, local, remote = (json.loads(nbdime_file(n)) for n in param.values)
        out.append((str(param.id), base, local, remote))
    return out


def canon(nb: Any) -> Any:
    """A notebook as compared here: nbdime's form, without cell ids (a doc keeps its cells'
    ids unique where a merge would repeat one) and with a code cell's empty
    execution_count spelled out."""
    out = plain(nb)
    for cell in out["cells"]:
        cell.pop("id", None)
        if cell.get("cell_type") == "code":
            cell.setdefault("execution_count", None)
    return out


def lines_written(base: Any, side: Any) -> set[str]:
    base_lines = {line for cell in plain(base)["cells"] for line in cell["source"].splitlines()}
    return {line for cell in plain(side)["cells"] for line in cell["source"].splitlines()} - base_lines


def save(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)  # as editors save


def valid(data: bytes | str) -> None:
    nbformat.validate(nbformat.reads(data, as_version=4))


@pytest.mark.parametrize("order", ["local-live", "remote-live"])
async def test_every_triple_through_the_owners_disk(tmp_path: Path, order: str) -> None:
    await owner_disk_round(tmp_path, cases(), order)


@pytest.mark.parametrize("order", ["local-live", "remote-live"])
async def test_scenarios_on_a_corpus_notebook_through_the_owners_disk(tmp_path: Path, order: str) -> None:
    await owner_disk_round(tmp_path, scenarios(), order)


def scenarios() -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Concurrent changes of a real notebook (with cell ids, as nbformat 4.5 has them)."""
    from .corpus import corpus_file

    base = json.loads(corpus_file("notebooks/pdsh/02.02-The-Basics-Of-NumPy-Arrays.ipynb").read_text())
    base["nbformat_minor"] = 5
    for i, cell in enumerate(base["cells"]):
        cell["id"] = f"cell-{i}"
    code = [i for i, c in enumerate(base["cells"]) if c["cell_type"] == "code" and c["source"]]
    md = [i for i, c in enumerate(base["cells"]) if c["cell_type"] == "markdown"]
    a, b, m = code[1], code[2], md[1]

    def changed(fn: Any) -> dict[str, Any]:
        nb = copy.deepcopy(base)
        fn(nb)
        return nb

    def src(i: int, text: str) -> Any:
        return lambda nb: nb["cells"][i].__setitem__("source", text)

    def first_line(i: int, text: str) -> Any:
        def fn(nb: dict[str, Any]) -> None:
            lines = "".join(nb["cells"][i]["source"]).split("\n")
            nb["cells"][i]["source"] = "\n".join([text, *lines[1:]])

        return fn

    def insert_after(i: int, text: str, cid: str) -> Any:
        cell = {"cell_type": "code", "id": cid, "metadata": {}, "source": text, "outputs": [], "execution_count": None}
        return lambda nb: nb["cells"].insert(i + 1, cell)

    def delete(i: int) -> Any:
        return lambda nb: nb["cells"].pop(i)

    def move_to_end(i: int) -> Any:
        return lambda nb: nb["cells"].append(nb["cells"].pop(i))

    def rerun(nb: dict[str, Any]) -> None:
        for n, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
            cell["execution_count"] = 100 + n
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"run {n}\n"}]

    def strip(nb: dict[str, Any]) -> None:
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None

    def move_and_tag(i: int) -> Any:
        def fn(nb: dict[str, Any]) -> None:
            nb["cells"].append(nb["cells"].pop(i))
            nb["cells"][-1]["metadata"] = {**nb["cells"][-1]["metadata"], "tags": ["moved"]}

        return fn

    def run_and_edit(i: int) -> Any:
        def fn(nb: dict[str, Any]) -> None:
            first_line(i, "x = 'edited by one'")(nb)
            output = {"output_type": "stream", "name": "stdout", "text": "7\n"}
            nb["cells"][i].update(execution_count=7, outputs=[output])
            nb["cells"][i]["metadata"] = {**nb["cells"][i]["metadata"], "collapsed": True}

        return fn

    edit_a = first_line(a, "x = 'edited by one'")
    pairs = {
        "different-cells": (changed(edit_a), changed(first_line(b, "y = 'edited by two'"))),
        "same-cell-same-line": (changed(edit_a), changed(first_line(a, "x = 'edited by two'"))),
        "identical-change": (changed(edit_a), changed(edit_a)),
        "insert-same-place": (
            changed(insert_after(a, "one = 1", "new-1")),
            changed(insert_after(a, "two = 2", "new-2")),
        ),
        "delete-vs-edit": (changed(delete(a)), changed(edit_a)),
        "move-vs-edit": (changed(move_to_end(a)), changed(edit_a)),
        "move-and-tag-vs-run-and-edit": (changed(move_and_tag(a)), changed(run_and_edit(a))),
        "rerun-vs-markdown": (changed(rerun), changed(src(m, "A markdown cell, rewritten.\n"))),
        "strip-outputs-vs-edit": (changed(strip), changed(edit_a)),
    }
    return [(name, base, one, two) for name, (one, two) in pairs.items()]


async def owner_disk_round(
    tmp_path: Path, triples: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]], order: str
) -> None:
    """Each case in its own notebook of one session: the live document takes one side,
    the owner's disk the other (a save based on the version before the live edits)."""
    files = {f"t{i}.ipynb": json.dumps(t[1]) + "\n" for i, t in enumerate(triples)}
    repo = make_repo(tmp_path / "r", files)
    async with live_session(repo, list(files), HELD) as live:
        clients = []
        expected: dict[str, Any] = {}
        for i, (_name, base, local, remote) in enumerate(triples):
            live_side, disk_side = (local, remote) if order == "local-live" else (remote, local)
            path = f"t{i}.ipynb"
            client = YClient(live.ws(path))
            await client.__aenter__()
            clients.append(client)
            await client.wait_synced()
            expected[path] = (base, live_side, disk_side, await edit_live(live, client, path, files[path], live_side))
        for i in range(len(triples)):
            save(repo / f"t{i}.ipynb", expected[f"t{i}.ipynb"][2])
        for i, (name, *_sides) in enumerate(triples):
            path = f"t{i}.ipynb"
            base, live_side, disk_side, current = expected[path]
            codec = live.session.codecs[live.room(path)]
            room = live.session.rooms[live.room(path)]
            want = merge_notebook(base, current, disk_side)
            await async_wait_until(
                lambda c=codec, r=room, w=want: (
                    canon(c.file_value(r.doc)) == canon(w.notebook) and bool(open_conflicts(r.doc)) == bool(w.conflicts)
                ),
                what=f"{name} merged",
            )
            clean_result, conflict = nbdime_merge(base, live_side, disk_side)
            found = open_conflicts(room.doc)
            if not conflict:
                assert canon(codec.file_value(room.doc)) == canon(clean_result), name
                assert found == [], name
            else:  # (nbdime sees a move against an edit as delete against edit: here it is no conflict)
                assert found or name.startswith("move-"), f"{name}: nbdime reports a conflict, the session must list it"
                kept = json.dumps(plain(codec.file_value(room.doc))) + json.dumps(found)
                for line in lines_written(base, live_side) | lines_written(base, disk_side):
                    assert json.dumps(line)[1:-1] in kept, f"{name}: lost {line!r}"
            ids = [c["id"] for c in room.doc.get("cells", type=Array).to_py()]
            assert len(ids) == len(set(ids)), f"{name}: a cell was duplicated"
            if name.startswith("move-"):  # one cell, at its new place, with the edit
                last = codec.file_value(room.doc)["cells"][-1]
                assert "".join(last["source"]).startswith("x = 'edited by one'") and found == []
            if name == "move-and-tag-vs-run-and-edit":  # and every other field's edits, both sides'
                assert last["metadata"]["tags"] == ["moved"] and last["metadata"]["collapsed"] is True
                assert last["execution_count"] == 7 and "".join(last["outputs"][0]["text"]) == "7\n"
        status, info = await get_json(f"{live.http}/api/session", live.tokens["editor"])
        assert status == 200
        listed = {c["path"] for c in info["conflicts"]}
        assert listed == {p for p in expected if open_conflicts(live.session.rooms[live.room(p)].doc)}
        assert listed, "some nbdime triples conflict"
        refused = await live.session.commit_now("try")
        assert not refused.ended and "rtc stop --take-current" in refused.message and refused.commit is None
        for client in clients:
            await client.__aexit__(None, None, None)
        done = await live.session.end("as it is", take_current=True)
        assert done.commit
    message = git(repo, "log", "-1", "--format=%B")
    assert "Committed with open merge conflicts" in message
    for path in files:
        valid(git(repo, "show", f"HEAD:{path}"))


def small_nb(*sources: str) -> dict[str, Any]:
    cells = [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for i, s in enumerate(sources)
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


async def test_resolve_through_the_request_channel_then_commit(tmp_path: Path) -> None:
    base = small_nb("ind = [1, 7, 8]\n", "other = 1\n")
    repo = make_repo(tmp_path / "r", {"nb.ipynb": json.dumps(base) + "\n"})
    async with live_session(repo, ["nb.ipynb"], HELD) as live:
        async with live.client("nb.ipynb") as client:
            await client.wait_synced()
            cells = client.doc.get("cells", type=Array)
            src = cells[0]["source"]
            src.clear()
            src.insert(0, "ind = [3, 7, 8]\n")  # typed live
            room = live.session.rooms[live.room("nb.ipynb")]
            await async_wait_until(
                lambda: "[3, 7, 8]" in str(room.doc.get("cells", type=Array)[0]["source"]), what="typing"
            )
            theirs = copy.deepcopy(base)
            theirs["cells"][0]["source"] = "ind = [1, 2, 4]\n"
            save(repo / "nb.ipynb", theirs)  # the owner's editor saves its own change
            await async_wait_until(lambda: open_conflicts(room.doc), what="the conflict")
            (conflict,) = open_conflicts(room.doc)
            assert conflict["kind"] == "source" and conflict["from"] == "the owner's disk"
            assert str(room.doc.get("cells", type=Array)[0]["source"]) == "ind = [3, 7, 8]\n"  # no markers
            assert (conflict["mine"], conflict["theirs"]) == ("ind = [3, 7, 8]\n", "ind = [1, 2, 4]\n")
            assert "<<<<<<< local\nind = [3, 7, 8]\n=======\nind = [1, 2, 4]\n" in conflict["marked"]
            assert not (await live.session.end("no")).ended  # refused: the session stays live
            await async_wait_until(
                lambda: any(k.startswith("conflict:") for k in client.doc.get("state", type=Map).keys()),
                what="the conflict reaches the client",
            )
            args = {"id": conflict["id"], "keep": "theirs"}
            frame = encode({"id": 1, "service": "conflict", "op": "resolve", "args": args})
            await client.send_raw(frame)
            await async_wait_until(lambda: not open_conflicts(room.doc), what="resolved")
            assert str(room.doc.get("cells", type=Array)[0]["source"]) == "ind = [1, 2, 4]\n"
        done = await live.session.end("resolved")
        assert done.ended and done.commit
    committed = git(repo, "show", "HEAD:nb.ipynb")
    valid(committed)
    assert "".join(json.loads(committed)["cells"][0]["source"]) == "ind = [1, 2, 4]\n"
    assert "Co-authored-by: Alice <alice@example.org>" in git(repo, "log", "-1", "--format=%B")


def join_round(tmp_path: Path, order: str) -> None:
    """Every triple through a real `rtc join` folder: the joiner is stopped, the live
    document takes one side, the folder's file the other, the joiner comes back."""
    from .support import RtcProcess, wait_until
    from .test_cli import ws_url
    from .test_join import start_join

    triples = cases()
    repeated_ids = {"bfe12f52", "afe12f52", "226e3ff8", "226e4ff8", "local-A", "remote-A"}
    files = {f"t{i}.ipynb": json.dumps(t[1], indent=1, ensure_ascii=False) + "\n" for i, t in enumerate(triples)}
    repo = make_repo(tmp_path / "owner", files)
    folder = tmp_path / "joined"
    owner = RtcProcess(repo, list(files))
    joiner = None
    expected: dict[str, Any] = {}
    try:
        info = owner.wait_ready()
        joiner = start_join(info["url"], folder)
        joiner.wait_for("mirroring")
        joiner.send_signal(signal.SIGINT)  # leaves as a person does: its state is written first
        joiner.communicate(timeout=30)

        async def live_edits() -> None:
            for i, (_name, base, local, remote) in enumerate(triples):
                path = f"t{i}.ipynb"
                live_side, folder_side = (local, remote) if order == "local-live" else (remote, local)
                async with YClient(ws_url(owner, path, "Alice", "alice@example.org")) as client:
                    await client.wait_synced()
                    codec = open_codec(path, files[path].encode())
                    codec.apply_file(client.doc, json.dumps(live_side).encode(), "client")
                    await client.flush()
                    synced = folder / path
                    base_bytes = synced.read_bytes()
                    local_codec = open_codec(path, base_bytes)
                    doc = Doc()
                    local_codec.load_into(doc, "load")
                    local_codec.apply_file(doc, json.dumps(live_side).encode(), "client")
                    want = merge_notebook(json.loads(base_bytes), local_codec.file_value(doc), folder_side)
                    expected[path] = (base, live_side, folder_side, want)

        asyncio.run(live_edits())
        for path, (_b, _l, folder_side, _w) in expected.items():
            save(folder / path, folder_side)  # saved in the joiner's editor while it was away
        joiner = start_join(info["url"], folder)
        joiner.wait_for("mirroring")
        for i, (name, *_sides) in enumerate(triples):
            path = f"t{i}.ipynb"
            base, live_side, folder_side, want = expected[path]
            wait_until(
                lambda p=path, w=want: canon(json.loads((repo / p).read_text())) == canon(w.notebook),
                timeout=30,
                what=f"{name} merged onto the owner's disk",
            )
            wait_until(
                lambda p=path: canon(json.loads((folder / p).read_text())) == canon(json.loads((repo / p).read_text())),
                what=f"{name} in the folder",
            )
            clean_result, conflict = nbdime_merge(base, live_side, folder_side)
            if not conflict:
                assert canon(json.loads((repo / path).read_text())) == canon(clean_result), name
            else:
                assert want.conflicts, name
        conflicting = {p for p, e in expected.items() if e[3].conflicts}

        def listed_now() -> list[dict[str, Any]] | None:
            status, body = asyncio.run(get_json(f"{owner.base}/api/session", info["token"]))
            assert status == 200, body
            found = body["conflicts"]
            return found if {c["path"] for c in found} == conflicting else None

        listed = wait_until(listed_now, what="the conflicts listed")
        assert all(c["from"] == "the join folder of Joan" for c in listed)
        refused = owner.stop("-m", "not yet")
        assert refused.returncode != 0 and "--take-current" in refused.stderr
        done = owner.stop("-m", "as it is", "--take-current")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
    finally:
        owner.kill()
        if joiner is not None and joiner.poll() is None:
            joiner.kill()
            joiner.communicate()
    for path in files:
        committed = git(repo, "show", f"HEAD:{path}")
        valid(committed)
        valid((folder / path).read_text())
        mirrored = json.loads((folder / path).read_text())
        if any(cell.get("id") in repeated_ids for cell in json.loads(committed)["cells"]):
            # a file that repeats a cell id: each side writes its own file's value for the
            # cell whose doc id had to change (the documents are the same)
            assert canon(mirrored) == canon(json.loads(committed))
        else:  # the same bytes: the folder is written like the session's file, not like its saves
            assert (folder / path).read_text() == committed, path


@pytest.mark.parametrize("order", ["local-live", "remote-live"])
def test_every_triple_through_a_join_folder(tmp_path: Path, order: str) -> None:
    join_round(tmp_path, order)


def move_branch(repo: Path, files: dict[str, bytes]) -> None:
    """A commit on the session's branch made elsewhere (the work tree is not touched)."""
    import pygit2

    r = pygit2.Repository(str(repo))
    tip = r.head.peel(pygit2.Commit)
    builder = r.TreeBuilder(tip.tree)
    for name, data in files.items():
        builder.insert(name, r.create_blob(data), pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature("Bob", "bob@example.org")
    r.create_commit(r.head.name, sig, sig, "moved on", builder.write(), [tip.id])


@pytest.mark.parametrize("order", ["local-live", "remote-live"])
async def test_every_triple_against_a_branch_that_moved(tmp_path: Path, order: str) -> None:
    triples = cases()
    files = {f"t{i}.ipynb": json.dumps(t[1], indent=1) + "\n" for i, t in enumerate(triples)}
    repo = make_repo(tmp_path / "r", files)
    sides: dict[str, Any] = {}
    async with live_session(repo, list(files)) as live:
        async with YClient(live.ws("t0.ipynb")) as _keepalive:
            for i, (_name, base, local, remote) in enumerate(triples):
                path = f"t{i}.ipynb"
                live_side, branch_side = (local, remote) if order == "local-live" else (remote, local)
                async with YClient(live.ws(path)) as client:
                    await client.wait_synced()
                    live_value = await edit_live(live, client, path, files[path], live_side)
                    sides[path] = (base, live_side, branch_side, live_value)
            move_branch(repo, {p: (json.dumps(s[2], indent=1) + "\n").encode() for p, s in sides.items()})
            refused = await live.session.commit_now("after the branch moved")
            assert not refused.ended and "--take-current" in refused.message
            for i, (name, *_rest) in enumerate(triples):
                path = f"t{i}.ipynb"
                base, live_side, branch_side, current = sides[path]
                room = live.session.rooms[live.room(path)]
                codec = live.session.codecs[live.room(path)]
                want = merge_notebook(base, current, branch_side)
                assert canon(codec.file_value(room.doc)) == canon(want.notebook), name
                found = open_conflicts(room.doc)
                assert bool(found) == bool(want.conflicts), name
                assert all(c["from"] == "branch main" for c in found)
                clean_result, conflict = nbdime_merge(base, live_side, branch_side)
                if not conflict:
                    assert canon(codec.file_value(room.doc)) == canon(clean_result), name
            again = await live.session.commit_now("once more")  # merged once, not twice
            assert again.message == refused.message
        done = await live.session.end("take it", take_current=True)
        assert done.ended and done.commit, done.message
    for i, (name, *_rest) in enumerate(triples):
        path = f"t{i}.ipynb"
        committed = git(repo, "show", f"HEAD:{path}")
        valid(committed)
        base, live_side, branch_side, current = sides[path]
        assert canon(json.loads(committed)) == canon(merge_notebook(base, current, branch_side).notebook), name
    assert git(repo, "log", "-1", "--format=%s", "HEAD~1").strip() == "moved on"  # on top of the moved branch


def test_conflicts_survive_a_crash_and_rtc_status_lists_them(tmp_path: Path) -> None:
    """Conflicts live in the document: after a `kill -9` and a resume they are still
    open, `rtc status` and `rtc status --json` list them, `rtc stop` still refuses."""
    import subprocess

    from gitrtc.conflicts import attach

    from .support import RTC, RtcProcess
    from .test_cli import ws_url

    base = small_nb("ind = [1, 7, 8]\n", "other = 1\n")
    original = (json.dumps(base, indent=1) + "\n").encode()
    repo = make_repo(tmp_path / "r", {"nb.ipynb": original})
    theirs = copy.deepcopy(base)
    theirs["cells"][0]["source"] = "ind = [1, 2, 4]\n"
    first = RtcProcess(repo, ["nb.ipynb"])
    try:
        first.wait_ready()
        url = ws_url(first, "nb.ipynb", "Joan", "joan@example.org")

        async def diverge() -> None:
            async with YClient(url) as witness:
                await witness.wait_synced()
                async with YClient(url) as client:
                    await client.wait_synced()
                    cells = client.doc.get("cells", type=Array)
                    cells[0]["source"].insert(len("ind = [1, 7"), "0")  # typed live: [1, 70, 8]
                    codec = open_codec("nb.ipynb", original)
                    attach(codec, "the join folder of Joan")  # as rtc join merges a local save
                    codec.apply_file(client.doc, json.dumps(theirs).encode(), "joan", base=original)
                state = witness.doc.get("state", type=Map)
                await async_wait_until(
                    lambda: any(k.startswith("conflict:") for k in state.keys()), what="stored and forwarded"
                )

        asyncio.run(diverge())
    finally:
        first.kill()  # a crash: the store has the conflict
    second = RtcProcess(repo, [])
    try:
        second.wait_ready()
        shown = subprocess.run([*RTC, "status", "--json"], cwd=repo, capture_output=True, text=True, check=True)
        (listed,) = json.loads(shown.stdout)["conflicts"]
        assert listed["path"] == "nb.ipynb" and listed["kind"] == "source" and listed["cell"] == "c0"
        assert listed["from"] == "the join folder of Joan"
        text = subprocess.run([*RTC, "status"], cwd=repo, capture_output=True, text=True, check=True).stdout
        assert "1 open merge conflict" in text and "nb.ipynb: source in cell c0" in text
        refused = second.stop("-m", "not yet")
        assert refused.returncode != 0 and "1 notebook merge conflict is open in nb.ipynb" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        done = second.stop("-m", "as it is", "--take-current")
        assert done.returncode == 0, done.stderr
    finally:
        second.kill()
    committed = git(repo, "show", "HEAD:nb.ipynb")
    valid(committed)
    source = "".join(json.loads(committed)["cells"][0]["source"])
    assert source == "ind = [1, 70, 8]\n"  # the session's side, committed without markers
    assert "ind = [1, 2, 4]" not in source
    message = git(repo, "log", "-1", "--format=%B")
    assert "- nb.ipynb: source conflict in cell c0, from the join folder of Joan" in message
