"""The end-of-session merge when the branch moved: nbdime's corpus triples and text."""

from __future__ import annotations

import json

import pytest

from gitrtc.merge.files import merge_file

from .corpus import nbdime_file, nbdime_triples

TRIPLES = nbdime_triples()


@pytest.mark.parametrize("name", TRIPLES)
def test_notebook_triples_conflict_as_nbdime_says_and_keep_both_sides(name: str) -> None:
    base, local, remote = (nbdime_file(f"{name}--{i}.ipynb") for i in (1, 2, 3))
    result = merge_file(f"{name}.ipynb", base, local, remote)
    assert result.conflicts  # every NAME--1/2/3 triple in nbdime's corpus is a conflict case
    json.loads(result.data)  # still a notebook: the owner can open and resolve it


def test_notebook_clean_merge_takes_both_sides() -> None:
    names = ("multi_cell_nb.ipynb", "multi_cell_nb--local.ipynb", "multi_cell_nb--remote.ipynb")
    base, local, remote = (nbdime_file(n) for n in names)
    result = merge_file("nb.ipynb", base, local, remote)
    assert not result.conflicts

    def sources(data: bytes) -> set[str]:
        return {"".join(c["source"]) for c in json.loads(data)["cells"]}

    merged, before = sources(result.data), sources(base)
    changed = (sources(local) - before) | (sources(remote) - before)
    assert changed and changed <= merged  # every source either side wrote is in the result


def test_text_merge_and_conflict() -> None:
    base = b"a\nb\nc\n"
    assert merge_file("t.md", base, b"A\nb\nc\n", b"a\nb\nC\n").data == b"A\nb\nC\n"
    clash = merge_file("t.md", base, b"X\nb\nc\n", b"Y\nb\nc\n")
    assert clash.conflicts and b"X" in clash.data and b"Y" in clash.data
    assert merge_file("new.md", None, None, b"new\n") == merge_file("new.md", None, None, b"new\n")
    assert not merge_file("new.md", None, None, b"new\n").conflicts
    assert merge_file("new.md", None, b"theirs\n", b"mine\n").conflicts
