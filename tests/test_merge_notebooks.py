"""The notebook merge core (`gitrtc.merge.notebooks.merge_notebook`) on nbdime's own merge
cases and on scenarios: clean merges equal nbdime's, conflicts keep both sides."""

from __future__ import annotations

import copy
import json
from typing import Any

import nbformat
import pytest
from nbdime import merge_notebooks
from nbformat.v4.rwbase import rejoin_lines

from gitrtc.documents.notebook_ops import normalized
from gitrtc.merge.notebooks import merge_notebook, unmarked

from .corpus import nbdime_file
from .test_diff_ops import ARGS, _triples


def plain(nb: Any) -> Any:
    return json.loads(json.dumps(normalized(nb)))


def load(name: str) -> dict[str, Any]:
    return json.loads(nbdime_file(name))


def nbdime_merge(base: Any, local: Any, remote: Any) -> tuple[Any, bool]:
    sides = (rejoin_lines(nbformat.from_dict(copy.deepcopy(x))) for x in (base, local, remote))
    merged, decisions = merge_notebooks(*sides, ARGS)
    return plain(merged), any(d.conflict for d in decisions)


def texts(nb: Any) -> str:
    """Every source and output text of a notebook, one string (to look for lost text)."""
    return json.dumps(plain(nb), sort_keys=True)


def valid(nb: Any) -> None:
    nbformat.validate(nbformat.from_dict(copy.deepcopy(nb)))


@pytest.mark.parametrize(("base_name", "local_name", "remote_name"), _triples())
@pytest.mark.parametrize("order", ["local-first", "remote-first"])
def test_triples(base_name: str, local_name: str, remote_name: str, order: str) -> None:
    base, local, remote = load(base_name), load(local_name), load(remote_name)
    if order == "remote-first":
        local, remote = remote, local
    expected, conflict = nbdime_merge(base, local, remote)
    result = merge_notebook(base, local, remote, ARGS)
    if not conflict:
        assert plain(result.notebook) == expected
        assert result.conflicts == ()
        return
    assert result.conflicts, "nbdime reports a conflict: it must be listed"
    merged = plain(result.notebook)
    cells = merged["cells"]
    for c in result.conflicts:
        assert c.cell is None or 0 <= c.cell < len(cells)
        assert c.mine is not None or c.theirs is not None
    ids = [c.get("id") for c in cells if c.get("id")]
    assert len(ids) == len(set(ids)), "a cell was duplicated"
    kept = json.dumps(merged) + json.dumps([c.to_json() for c in result.conflicts])
    base_lines = {line for cell in plain(base)["cells"] for line in cell["source"].splitlines()}
    for side in (local, remote):  # nothing lost: every line a side wrote is kept somewhere
        for cell in plain(side)["cells"]:
            for line in set(cell["source"].splitlines()) - base_lines:
                assert json.dumps(line)[1:-1] in kept, line


def nb(*sources: str, ids: bool = True) -> dict[str, Any]:
    cells = []
    for i, s in enumerate(sources):
        kind = "markdown" if s.startswith("#") else "code"
        cell: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": s}
        if ids:
            cell["id"] = f"c{i}"
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        cells.append(cell)
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_same_change_on_both_sides_is_applied_once() -> None:
    base = nb("a = 1\n", "b = 2\n")
    both = nb("a = 1\nprintit(44)\n", "b = 2\n")
    result = merge_notebook(base, both, both)
    assert plain(result.notebook) == plain(both) and result.conflicts == ()


def test_same_line_different_edits_are_a_marked_conflict_not_a_fusion() -> None:
    base = nb("ind = [1, 7, 8]\n")
    mine, theirs = nb("ind = [3, 7, 8]\n"), nb("ind = [1, 2, 4]\n")
    result = merge_notebook(base, mine, theirs)
    source = result.notebook["cells"][0]["source"]
    assert source == "ind = [3, 7, 8]\n"  # the document keeps its side, without markers
    (c,) = result.conflicts
    assert (c.cell, c.kind, c.mine, c.theirs) == (0, "source", "ind = [3, 7, 8]\n", "ind = [1, 2, 4]\n")
    assert c.marked == "<<<<<<< local\nind = [3, 7, 8]\n=======\nind = [1, 2, 4]\n>>>>>>> remote"
    assert "ind = [1, 2, 8]" not in json.dumps(result.notebook) + json.dumps(c.to_json())  # no fusion


def test_a_conflicting_cell_keeps_the_other_sides_clean_hunks() -> None:
    """nbdime's line merge: the hunk both changed is a conflict (ours in the document),
    a line only the other side changed is merged as nbdime merges it."""
    base = nb("first\nind = [1, 7, 8]\nmiddle\n\nlast\n")
    mine = nb("first, mine\nind = [3, 7, 8]\nmiddle\n\nlast\n")
    theirs = nb("first\nind = [1, 2, 4]\nmiddle\n\nlast, theirs\n")
    result = merge_notebook(base, mine, theirs)
    assert result.notebook["cells"][0]["source"] == "first, mine\nind = [3, 7, 8]\nmiddle\n\nlast, theirs\n"
    (c,) = result.conflicts
    assert c.mine == result.notebook["cells"][0]["source"] and c.theirs == theirs["cells"][0]["source"]
    assert c.marked is not None and unmarked(c.marked) == c.mine
    assert "=======\nfirst\nind = [1, 2, 4]\n>>>>>>> remote\n" in c.marked


def test_unmarked_keeps_lines_that_only_look_like_markers() -> None:
    text = "Title\n=======\n<<<<<<< local\na\n=======\nb\n>>>>>>> remote\nend\n"
    assert unmarked(text) == "Title\n=======\na\nend\n"


@pytest.mark.parametrize("deleter", ["mine", "theirs"])
def test_delete_against_edit_keeps_the_edit_flagged(deleter: str) -> None:
    base = nb("a = 1\n", "b = 2\n", "c = 3\n")
    deleted = nb("a = 1\n", "c = 3\n")
    deleted["cells"][1]["id"] = "c2"
    edited = nb("a = 1\n", "b = 20\n", "c = 3\n")
    mine, theirs = (deleted, edited) if deleter == "mine" else (edited, deleted)
    result = merge_notebook(base, mine, theirs)
    assert [c["source"] for c in result.notebook["cells"]] == ["a = 1\n", "b = 20\n", "c = 3\n"]
    (c,) = result.conflicts
    assert c.kind == "deleted" and c.cell == 1
    assert (c.mine, c.theirs) == ((None, "b = 20\n") if deleter == "mine" else ("b = 20\n", None))


@pytest.mark.parametrize("mover", ["mine", "theirs"])
def test_a_moved_cell_carries_its_edit_and_is_not_duplicated(mover: str) -> None:
    base = nb("# title", "a = 1\n", "b = 2\n", "c = 3\n")
    moved = copy.deepcopy(base)
    moved["cells"].append(moved["cells"].pop(1))  # a = 1 goes to the end
    edited = copy.deepcopy(base)
    edited["cells"][1]["source"] = "a = 100\n"
    mine, theirs = (moved, edited) if mover == "mine" else (edited, moved)
    result = merge_notebook(base, mine, theirs)
    assert [c["source"] for c in result.notebook["cells"]] == ["# title", "b = 2\n", "c = 3\n", "a = 100\n"]
    assert [c["id"] for c in result.notebook["cells"]] == ["c0", "c2", "c3", "c1"]
    assert result.conflicts == ()


@pytest.mark.parametrize("mover", ["mine", "theirs"])
def test_a_moved_cell_carries_every_fields_edit(mover: str) -> None:
    """Both sides' changes of a moved cell end in the one moved cell, every field merged:
    the mover tagged its copy; the other side re-ran the cell in place (outputs,
    execution count), collapsed it and edited another line of its source."""
    base = nb("print(1)\nx = 1\ny = 2\n", "b = 2\n", "c = 3\n")
    moved = copy.deepcopy(base)
    moved["cells"].append(moved["cells"].pop(0))
    moved["cells"][2]["metadata"] = {"tags": ["mover"]}
    moved["cells"][2]["source"] = "print(1)\nx = 1\ny = 20\n"
    edited = copy.deepcopy(base)
    run = edited["cells"][0]
    run.update(outputs=[{"output_type": "stream", "name": "stdout", "text": "2\n"}], execution_count=3)
    run["metadata"] = {"collapsed": True}
    run["source"] = "print(2)\nx = 1\ny = 2\n"
    mine, theirs = (moved, edited) if mover == "mine" else (edited, moved)
    result = merge_notebook(base, mine, theirs)
    assert [c["id"] for c in result.notebook["cells"]] == ["c1", "c2", "c0"]
    cell = result.notebook["cells"][2]
    assert cell["metadata"] == {"tags": ["mover"], "collapsed": True}
    assert cell["source"] == "print(2)\nx = 1\ny = 20\n"
    assert cell["outputs"][0]["text"] in ("2\n", ["2\n"]) and cell["execution_count"] == 3
    assert result.conflicts == ()


@pytest.mark.parametrize("mover", ["mine", "theirs"])
def test_a_moved_cell_whose_copy_and_original_both_changed_keeps_both(mover: str) -> None:
    """The mover changed the moved copy's line, the other side the same line of the
    original: one cell (the document's text), the other version a `source` conflict."""
    base = nb("a = 1\n", "b = 2\n", "c = 3\n")
    moved = copy.deepcopy(base)
    moved["cells"].append(moved["cells"].pop(0))
    moved["cells"][2]["source"] = "a = 1  # mover\n"
    edited = copy.deepcopy(base)
    edited["cells"][0]["source"] = "a = 1  # editor\n"
    mine, theirs = (moved, edited) if mover == "mine" else (edited, moved)
    result = merge_notebook(base, mine, theirs)
    assert [c["id"] for c in result.notebook["cells"]] == ["c1", "c2", "c0"]
    (c,) = result.conflicts
    ours, other = ("a = 1  # mover\n", "a = 1  # editor\n")[:: 1 if mover == "mine" else -1]
    assert (c.cell, c.kind, c.mine, c.theirs) == (2, "source", ours, other)
    assert result.notebook["cells"][2]["source"] == ours


def test_insert_at_the_same_place_keeps_both_flagged() -> None:
    base = nb("a = 1\n", "b = 2\n")
    mine = nb("a = 1\n", "mine = 1\n", "b = 2\n")
    theirs = nb("a = 1\n", "theirs = 1\n", "b = 2\n")
    mine["cells"][1]["id"], theirs["cells"][1]["id"] = "m", "t"
    mine["cells"][2]["id"] = theirs["cells"][2]["id"] = "c1"
    result = merge_notebook(base, mine, theirs)
    sources = [c["source"] for c in result.notebook["cells"]]
    assert "mine = 1\n" in sources and "theirs = 1\n" in sources and len(sources) == 4
    valid(result.notebook)


def test_outputs_conflict_keeps_mine_and_records_theirs() -> None:
    base = nb("print(1)\n")
    mine, theirs = copy.deepcopy(base), copy.deepcopy(base)
    mine["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    theirs["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "one\n"}]
    result = merge_notebook(base, mine, theirs)
    assert result.notebook["cells"][0]["outputs"][0]["text"] == "1\n"
    (c,) = result.conflicts
    assert c.kind == "outputs" and c.theirs[0]["text"] == "one\n"
    valid(result.notebook)


def test_rerun_against_markdown_edit_merges_cleanly() -> None:
    base = nb("# Title", "x = 1\n")
    rerun = copy.deepcopy(base)
    rerun["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ok\n"}]
    rerun["cells"][1]["execution_count"] = 3
    edited = copy.deepcopy(base)
    edited["cells"][0]["source"] = "# A better title"
    result = merge_notebook(base, rerun, edited)
    expected, conflict = nbdime_merge(base, rerun, edited)
    assert not conflict and plain(result.notebook) == expected and result.conflicts == ()
    valid(result.notebook)


def test_metadata_conflict_keeps_mine_records_theirs() -> None:
    base = nb("x = 1\n")
    mine, theirs = copy.deepcopy(base), copy.deepcopy(base)
    mine["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    theirs["metadata"]["kernelspec"] = {"name": "julia", "display_name": "Julia", "language": "julia"}
    result = merge_notebook(base, mine, theirs)
    assert result.notebook["metadata"]["kernelspec"]["name"] == "python3"
    (c,) = result.conflicts
    assert c.cell is None and c.kind == "metadata" and c.theirs["kernelspec"]["name"] == "julia"
