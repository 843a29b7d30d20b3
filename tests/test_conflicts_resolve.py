"""Resolving a recorded notebook conflict (`gitrtc.conflicts.resolve`) on a real doc:
keep mine, theirs or both, for each kind of conflict; the record is gone afterwards."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pycrdt import Doc

from gitrtc.conflicts import attach, open_conflicts, resolve
from gitrtc.documents import open_codec
from gitrtc.errors import RequestError


def nb(*sources: str) -> dict[str, Any]:
    cells = [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for i, s in enumerate(sources)
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def diverged(base: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]) -> tuple[Any, Doc, dict[str, Any]]:
    """A doc that holds `mine` and merged `theirs` (diverged from `base`): codec, doc, its one conflict."""
    data = json.dumps(base).encode()
    codec = open_codec("nb.ipynb", data)
    doc: Doc = Doc()
    codec.load_into(doc, "load")
    codec.apply_file(doc, json.dumps(mine).encode(), "mine")
    attach(codec, "elsewhere")
    codec.apply_file(doc, json.dumps(theirs).encode(), "theirs", base=data)
    (conflict,) = open_conflicts(doc)
    return codec, doc, conflict


def sources(codec: Any, doc: Doc) -> list[str]:
    return ["".join(c["source"]) for c in codec.file_value(doc)["cells"]]


@pytest.mark.parametrize(
    ("keep", "expected"),
    [("mine", "x = 1  # mine\n"), ("theirs", "x = 2\n"), ("both", "x = 1  # mine\nx = 2\n")],
)
def test_source(keep: str, expected: str) -> None:
    codec, doc, c = diverged(nb("x = 1\n", "y = 1\n"), nb("x = 1  # mine\n", "y = 1\n"), nb("x = 2\n", "y = 1\n"))
    assert c["kind"] == "source" and sources(codec, doc)[0] == "x = 1  # mine\n"  # no markers in the document
    assert c["marked"] == "<<<<<<< local\nx = 1  # mine\n=======\nx = 2\n>>>>>>> remote"
    with doc.transaction():
        resolve(doc, c["id"], keep)
    assert sources(codec, doc) == [expected, "y = 1\n"] and open_conflicts(doc) == []


@pytest.mark.parametrize(("keep", "texts"), [("mine", ["1\n"]), ("theirs", ["one\n"]), ("both", ["1\n", "one\n"])])
def test_outputs(keep: str, texts: list[str]) -> None:
    base = nb("print(1)\n")
    mine, theirs = copy.deepcopy(base), copy.deepcopy(base)
    mine["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    theirs["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "one\n"}]
    codec, doc, c = diverged(base, mine, theirs)
    assert c["kind"] == "outputs"
    with doc.transaction():
        resolve(doc, c["id"], keep)
    outputs = codec.file_value(doc)["cells"][0]["outputs"]
    assert ["".join(o["text"]) for o in outputs] == texts and open_conflicts(doc) == []


@pytest.mark.parametrize(
    ("deleter", "keep", "kept"),
    [("mine", "mine", False), ("mine", "theirs", True), ("theirs", "theirs", False), ("theirs", "both", True)],
)
def test_deleted(deleter: str, keep: str, kept: bool) -> None:
    base = nb("a = 1\n", "b = 2\n")
    deleted, edited = nb("a = 1\n"), nb("a = 1\n", "b = 20\n")
    mine, theirs = (deleted, edited) if deleter == "mine" else (edited, deleted)
    codec, doc, c = diverged(base, mine, theirs)
    assert c["kind"] == "deleted" and c["cell"] == "c1"
    assert sources(codec, doc) == ["a = 1\n", "b = 20\n"]  # the edit is kept until someone decides
    with doc.transaction():
        resolve(doc, c["id"], keep)
    assert sources(codec, doc) == (["a = 1\n", "b = 20\n"] if kept else ["a = 1\n"])


@pytest.mark.parametrize(
    ("keep", "left"),
    [("mine", ["a\n", "m\n", "b\n"]), ("theirs", ["a\n", "t\n", "b\n"]), ("both", ["a\n", "m\n", "t\n", "b\n"])],
)
def test_inserted(keep: str, left: list[str]) -> None:
    base = nb("a\n", "b\n")
    mine, theirs = nb("a\n", "m\n", "b\n"), nb("a\n", "t\n", "b\n")
    mine["cells"][1]["id"], theirs["cells"][1]["id"] = "m", "t"
    mine["cells"][2]["id"] = theirs["cells"][2]["id"] = "c1"
    codec, doc, c = diverged(base, mine, theirs)
    assert c["kind"] == "inserted"
    with doc.transaction():
        resolve(doc, c["id"], keep)
    assert sources(codec, doc) == left


def test_notebook_metadata_and_refusals() -> None:
    base = nb("x\n")
    mine, theirs = copy.deepcopy(base), copy.deepcopy(base)
    mine["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    theirs["metadata"]["kernelspec"] = {"name": "julia", "display_name": "Julia", "language": "julia"}
    codec, doc, c = diverged(base, mine, theirs)
    assert c["kind"] == "metadata" and c["cell"] is None
    with pytest.raises(RequestError):
        resolve(doc, c["id"], "neither")
    with pytest.raises(RequestError):
        resolve(doc, "nope", "mine")
    with doc.transaction():
        resolve(doc, c["id"], "theirs")
    assert codec.file_value(doc)["metadata"]["kernelspec"]["name"] == "julia" and open_conflicts(doc) == []
