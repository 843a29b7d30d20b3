"""File change → minimal CRDT operations: text diffs, notebook diffs, and nbdime semantics."""

from __future__ import annotations

import itertools
import json
from typing import Any

import nbformat
import pycrdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nbdime import merge_notebooks
from nbdime.nbmergeapp import _build_arg_parser
from nbformat.v4.rwbase import rejoin_lines

from gitrtc.documents import open_codec
from gitrtc.documents.notebook_ops import cell_script, normalized, output_script
from gitrtc.documents.text_ops import apply_text, rebase_text, text_edits
from gitrtc.errors import DocumentError

from .corpus import corpus_names, nbdime_file, nbdime_triples


def fork(doc: pycrdt.Doc) -> pycrdt.Doc:
    """A second replica, as a client that joined and synced would have it."""
    other = pycrdt.Doc()
    other.apply_update(doc.get_update())
    return other


def exchange(a: pycrdt.Doc, b: pycrdt.Doc) -> None:
    update_a, update_b = a.get_update(b.get_state()), b.get_update(a.get_state())
    b.apply_update(update_a)
    a.apply_update(update_b)


def loaded(path: str, data: bytes) -> tuple[Any, pycrdt.Doc]:
    codec = open_codec(path, data)
    doc = pycrdt.Doc()
    codec.load_into(doc, origin="load")
    return codec, doc


# --- text ------------------------------------------------------------------------------


def test_text_concurrent_disk_change_and_client_edit_converge() -> None:
    base = "alpha\nbeta\ngamma\ndelta\n"
    codec, a = loaded("notes.txt", base.encode())
    b = fork(a)
    cursor = b.get("source", type=pycrdt.Text).sticky_index(len(b"alpha\nbeta\ngamma\nde"))
    assert codec.apply_file(a, b"alpha\nBETA 2\ngamma\ndelta\n", origin="disk") is True
    source_b = b.get("source", type=pycrdt.Text)
    source_b.insert(len(str(source_b)), "epsilon\n")  # another participant types at the end
    exchange(a, b)
    expected = "alpha\nBETA 2\ngamma\ndelta\nepsilon\n"
    assert str(a.get("source", type=pycrdt.Text)) == str(source_b) == expected
    assert cursor.get_index() == len(b"alpha\nBETA 2\ngamma\nde")  # the cursor moved with its text


def test_text_apply_file_is_minimal_and_one_transaction() -> None:
    codec, doc = loaded("notes.txt", "é📊 one two three\n".encode())
    updates: list[bytes] = []
    origins: list[object] = []
    doc.observe(lambda event: updates.append(event.update))
    source = doc.get("source", type=pycrdt.Text)
    deltas: list[Any] = []
    source.observe(lambda event, txn: (origins.append(txn.origin), deltas.append(event.delta)))
    assert codec.apply_file(doc, "é📊 one 2 three 🎉\n".encode(), origin="disk")
    assert str(source) == "é📊 one 2 three 🎉\n"
    assert len(updates) == 1 and origins == ["disk"]
    # "two" → "2" and " 🎉" appended: offsets in UTF-8 bytes ("é📊" is 6 bytes)
    assert deltas[0] == [{"retain": 11}, {"delete": 3}, {"insert": "2"}, {"retain": 6}, {"insert": " 🎉"}]
    assert codec.apply_file(doc, "é📊 one 2 three 🎉\n".encode(), origin="disk") is False
    assert len(updates) == 1


def test_text_apply_file_refuses_bad_bytes_and_changes_nothing() -> None:
    codec, doc = loaded("notes.txt", b"hello\n")
    for bad in (b"\xff\xfe", b"a\x00b"):
        with pytest.raises(DocumentError):
            codec.apply_file(doc, bad, origin="disk")
    assert codec.dump(doc) == b"hello\n"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("", "😀"),
        ("a😀b", "a😁b"),
        ("é" * 3000 + "x" + "漢" * 3000, "é" * 3000 + "y" + "漢" * 3000),
        ("line\n" * 2000, "line\n" * 1000 + "changed 📊\n" + "line\n" * 999),
        ("\r\n".join(str(i) for i in range(5000)), "\r\n".join(str(i * (i % 7 != 0)) for i in range(5000))),
        ("x" * 10_000, "y" * 10_000),
    ],
    ids=["empty", "emoji", "long-line", "many-lines", "scattered", "all-different"],
)
def test_apply_text_multibyte_and_large(old: str, new: str) -> None:
    doc = pycrdt.Doc()
    text = doc.get("source", type=pycrdt.Text)
    text += old
    assert apply_text(text, new) is (old != new)
    assert str(text) == new


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab\né📊\r漢", max_size=40), st.text(alphabet="ab\né📊\r漢", max_size=40))
def test_apply_text_reaches_the_new_text(old: str, new: str) -> None:
    doc = pycrdt.Doc()
    text = doc.get("source", type=pycrdt.Text)
    text += old
    apply_text(text, new)
    assert str(text) == new
    edits = text_edits(old, new)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(edits))  # ascending, disjoint


def test_text_out_of_band_change_with_base_keeps_unsaved_edits() -> None:
    codec, doc = loaded("notes.txt", b"a\nb\nc\n")
    written = codec.dump(doc)
    source = doc.get("source", type=pycrdt.Text)
    source.insert(4, "X")  # a participant's edit, not on disk yet: "a\nb\nXc\n"
    assert codec.apply_file(doc, b"a\nB 2\nc\n", origin="disk", base=written)
    assert str(source) == "a\nB 2\nXc\n"
    assert codec.apply_file(doc, b"a\nB 2\nc\n", origin="disk")  # without base the file wins
    assert str(source) == "a\nB 2\nc\n"


def _crdt_merge(base: str, mine: str, theirs: str) -> str:
    doc = pycrdt.Doc()
    doc.get("s", type=pycrdt.Text).insert(0, base)
    a, b = fork(doc), fork(doc)
    apply_text(a.get("s", type=pycrdt.Text), mine)
    apply_text(b.get("s", type=pycrdt.Text), theirs)
    exchange(a, b)
    return str(a.get("s", type=pycrdt.Text))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_rebase_keeps_what_a_crdt_merge_keeps(data: st.DataObject) -> None:
    alphabet = "ab\né📊"
    base = data.draw(st.text(alphabet=alphabet, max_size=12))
    mine = data.draw(st.text(alphabet=alphabet, max_size=14))
    theirs = data.draw(st.text(alphabet=alphabet, max_size=14))
    doc = pycrdt.Doc()
    text = doc.get("s", type=pycrdt.Text)
    text += mine
    rebase_text(text, base, theirs)
    merged = str(text)
    if mine == theirs:
        # the file already says what the doc says (our own write read back): no change,
        # where a CRDT merge of two independent identical edits would keep both
        assert merged == mine
        return
    assert sorted(merged) == sorted(_crdt_merge(base, mine, theirs))  # same characters kept
    if mine == base:
        assert merged == theirs
    if theirs == base:
        assert merged == mine


# --- notebooks -------------------------------------------------------------------------


def notebook(*cells: dict[str, Any], minor: int = 5) -> dict[str, Any]:
    return {
        "cells": list(cells),
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": minor,
    }


def code(cid: str, source: str, *outputs: dict[str, Any], count: int | None = None) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": count,
        "id": cid,
        "metadata": {},
        "outputs": list(outputs),
        "source": source.splitlines(True),
    }


def md(cid: str, source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cid, "metadata": {}, "source": source.splitlines(True)}


def stream(text: str) -> dict[str, Any]:
    return {"name": "stdout", "output_type": "stream", "text": text.splitlines(True)}


def nb_file(nb: dict[str, Any]) -> bytes:
    return (json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


BASE = notebook(
    md("m1", "# Title\n\nIntro text"), code("c1", "x = 1\ny = 2", stream("1\n"), count=1), code("c2", "print(x)")
)


def cell_maps(doc: pycrdt.Doc) -> list[pycrdt.Map]:
    return list(doc.get("cells", type=pycrdt.Array))


def test_notebook_concurrent_disk_change_and_client_edit_converge() -> None:
    codec, a = loaded("nb.ipynb", nb_file(BASE))
    b = fork(a)
    changed = json.loads(json.dumps(BASE))
    changed["cells"][0]["source"] = ["# New title\n", "\n", "Intro text"]
    changed["cells"][1]["outputs"][0]["text"] = ["1\n", "2\n"]
    changed["cells"].insert(2, md("m2", "Inserted on disk"))
    changed["metadata"]["language_info"] = {"name": "python"}
    assert codec.apply_file(a, nb_file(changed), origin="disk")
    assert codec.dump(a) == nb_file(changed)
    # meanwhile, in another replica: an edit of another cell's source, and of a metadata key
    cells_b = cell_maps(b)
    source = cells_b[2]["source"]
    source.insert(len(str(source)), "\nprint(y)")
    cells_b[1]["metadata"]["tags"] = ["keep"]
    exchange(a, b)
    assert a.get_state() == b.get_state()
    result = json.loads(codec.dump(a))
    assert json.loads(open_codec("nb.ipynb", nb_file(BASE)).dump(b)) == result
    assert [c["id"] for c in result["cells"]] == ["m1", "c1", "m2", "c2"]  # nothing duplicated
    assert result["cells"][0]["source"] == ["# New title\n", "\n", "Intro text"]
    assert result["cells"][1]["outputs"][0]["text"] == ["1\n", "2\n"]
    assert result["cells"][1]["metadata"] == {"tags": ["keep"]}
    assert result["cells"][3]["source"] == ["print(x)\n", "print(y)"]
    assert result["metadata"]["language_info"] == {"name": "python"}


def test_notebook_out_of_band_change_with_base_keeps_unsaved_edits() -> None:
    codec, doc = loaded("nb.ipynb", nb_file(BASE))
    written = codec.dump(doc)
    cells = cell_maps(doc)
    text = cells[2]["source"]
    text += "\nprint(y)"  # participants' edits, not written yet
    cells[1]["metadata"]["tags"] = ["keep"]
    disk = json.loads(json.dumps(BASE))
    disk["cells"][0]["source"] = ["# Changed on disk\n", "\n", "Intro text"]
    disk["cells"].append(md("m9", "Appended on disk"))
    assert codec.apply_file(doc, nb_file(disk), origin="disk", base=written)
    result = json.loads(codec.dump(doc))
    assert [c["id"] for c in result["cells"]] == ["m1", "c1", "c2", "m9"]
    assert result["cells"][0]["source"] == ["# Changed on disk\n", "\n", "Intro text"]
    assert result["cells"][1]["metadata"] == {"tags": ["keep"]}
    assert result["cells"][2]["source"] == ["print(x)\n", "print(y)"]
    with pytest.raises(DocumentError):
        codec.apply_file(doc, nb_file(disk), origin="disk", base=b"not json")


def test_notebook_source_change_is_a_text_diff() -> None:
    codec, doc = loaded("nb.ipynb", nb_file(BASE))
    text = cell_maps(doc)[1]["source"]
    cursor = text.sticky_index(len("x = 1\ny"))
    deltas: list[Any] = []
    text.observe(lambda event: deltas.append(event.delta))
    changed = json.loads(json.dumps(BASE))
    changed["cells"][1]["source"] = ["x = 10\n", "y = 2"]
    assert codec.apply_file(doc, nb_file(changed), origin="disk")
    assert deltas == [[{"retain": 5}, {"insert": "0"}]]
    assert cursor.get_index() == len("x = 10\ny")


def test_moved_cell_is_deleted_and_inserted_once() -> None:
    codec, a = loaded("nb.ipynb", nb_file(BASE))
    b = fork(a)
    moved = json.loads(json.dumps(BASE))
    moved["cells"] = [moved["cells"][2], moved["cells"][0], moved["cells"][1]]
    assert codec.apply_file(a, nb_file(moved), origin="disk")
    text = cell_maps(b)[0]["source"]
    text += " (edited elsewhere)"
    exchange(a, b)
    ids = [c["id"] for c in cell_maps(a)]
    assert ids == ["c2", "m1", "c1"] and [c["id"] for c in cell_maps(b)] == ids
    assert codec.dump(a).count(b'"id": "c2"') == 1


def test_invalid_new_notebook_changes_nothing() -> None:
    codec, doc = loaded("nb.ipynb", nb_file(BASE))
    before = doc.get_state()
    for bad in (b"{not json", b'{"nbformat": 3, "worksheets": []}', b"\xff", nb_file({"nbformat": 4, "cells": [1]})):
        with pytest.raises(DocumentError) as info:
            codec.apply_file(doc, bad, origin="disk")
        assert "\n" not in str(info.value)
    assert doc.get_state() == before and codec.dump(doc) == nb_file(BASE)


def test_file_without_ids_keeps_doc_ids_and_writes_none() -> None:
    old = notebook(md("", "a"), code("", "b"), minor=4)
    for cell in old["cells"]:
        del cell["id"]
    codec, doc = loaded("nb.ipynb", nb_file(old))
    ids = [c["id"] for c in cell_maps(doc)]
    new = json.loads(json.dumps(old))
    new["cells"][1]["source"] = ["b2"]
    new["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["c"]})
    assert codec.apply_file(doc, nb_file(new), origin="disk")
    now = [c["id"] for c in cell_maps(doc)]
    assert now[:2] == ids and len(set(now)) == 3
    assert codec.dump(doc) == nb_file(new)
    resumed = open_codec("nb.ipynb", nb_file(old))  # after a crash: codec from the original bytes
    assert json.loads(resumed.dump(fork(doc))) == new


def test_apply_file_between_corpus_versions_dumps_the_new_bytes() -> None:
    """Every version of an nbdime test notebook applied onto every other: the doc then
    dumps the new file exactly (formatting follows the newest file), and applying the
    same file again changes nothing."""
    groups: dict[str, list[str]] = {}
    for name in sorted(n.rsplit("/", 1)[1] for n in corpus_names("merge/nbdime", "*.ipynb")):
        groups.setdefault(name.split("--")[0].split("-test")[0], []).append(name)
    pairs = [pair for names in groups.values() for pair in itertools.permutations(names, 2)]
    assert len(pairs) > 100
    for old, new in pairs:
        codec, doc = loaded(old, nbdime_file(old))
        data = nbdime_file(new)
        codec.apply_file(doc, data, origin="disk")
        assert codec.dump(doc) == data, (old, new)
        assert codec.apply_file(doc, data, origin="disk") is False


# --- nbdime semantics over the corpus --------------------------------------------------

ARGS = _build_arg_parser().parse_args(["", "", ""])


def _triples() -> list[Any]:
    found = [(n, f"{n}--1.ipynb", f"{n}--2.ipynb", f"{n}--3.ipynb") for n in nbdime_triples()]
    found.append(("cellids", "cellids--base.ipynb", "cellids--local.ipynb", "cellids--remote.ipynb"))
    found.append(
        ("multilevel", "multilevel-test-base.ipynb", "multilevel-test-local.ipynb", "multilevel-test-remote.ipynb")
    )
    variants = {
        "single_cell_nb": [
            "changed_ec",
            "changed_metadata",
            "changed_output",
            "changed_source",
            "changed_source_output",
            "changed_source_output_ec",
            "json_output",
        ],
        "multi_cell_nb": ["local", "remote", "cellchange"],
        "attachment": ["change_attachment", "remove_attachment", "empty_attachments_list"],
    }
    for base, names in variants.items():
        for x, y in itertools.combinations(names, 2):
            found.append((f"{base}:{x}+{y}", f"{base}.ipynb", f"{base}--{x}.ipynb", f"{base}--{y}.ipynb"))
    return [pytest.param(base, local, remote, id=name) for name, base, local, remote in found]


#: Non-conflicting merges where the CRDT differs from nbdime, and why: both sides made
#: the *same* change, which a CRDT applies twice (two inserts) while nbdime sees agreement.
SAME_CHANGE_TWICE = {
    f"single_cell_nb--{x}.ipynb+single_cell_nb--{y}.ipynb"
    for x, y in [
        ("changed_output", "changed_source_output"),
        ("changed_output", "changed_source_output_ec"),
        ("changed_source", "changed_source_output"),
        ("changed_source", "changed_source_output_ec"),
        ("changed_source_output", "changed_source_output_ec"),
    ]
} | {"multi_cell_nb--remote.ipynb+multi_cell_nb--cellchange.ipynb"}

#: Conflicts where one side's change is lost: a cell deleted on one side and edited on the
#: other (Yjs: the delete wins), or one value set differently on both sides (last writer wins).
EXPECTED_LOSSES = {
    "multi_cell_nb--local.ipynb+multi_cell_nb--cellchange.ipynb": {"edit of a deleted cell"},
}


def _plain(nb: Any) -> Any:
    return json.loads(json.dumps(normalized(nb)))


def _side_changes(base: Any, side: Any) -> tuple[set[int], dict[int, Any], list[Any], list[tuple[int, str]]]:
    """Base cells a side removed and changed (→ new cell), the cells and outputs it inserted."""
    steps = cell_script(base, side)
    removed = {s.old for s in steps if s.op == "remove"}
    patched = {
        s.old: side.cells[s.new] for s in steps if s.op in ("keep", "patch") and base.cells[s.old] != side.cells[s.new]
    }
    inserted = [side.cells[s.new] for s in steps if s.op == "insert"]
    outputs: list[tuple[int, str]] = []
    for s in steps:
        if s.old in patched and side.cells[s.new].get("cell_type") == "code":
            old, new = base.cells[s.old].get("outputs", []), side.cells[s.new].outputs
            for o in output_script(old, new, s.diff):
                if o.op == "insert":
                    outputs.append((s.old, json.dumps(new[o.new], sort_keys=True)))
    return removed, patched, inserted, outputs  # type: ignore[return-value]


@pytest.mark.parametrize(("base_name", "local_name", "remote_name"), _triples())
def test_crdt_merge_matches_nbdime(base_name: str, local_name: str, remote_name: str) -> None:
    base, local, remote = (nbdime_file(n) for n in (base_name, local_name, remote_name))
    key = f"{local_name}+{remote_name}"
    merged, decisions = merge_notebooks(
        *(rejoin_lines(nbformat.from_dict(json.loads(x))) for x in (base, local, remote)), ARGS
    )
    conflict = any(d.conflict for d in decisions)

    codec_a, a = loaded(base_name, base)
    b = fork(a)
    codec_b = open_codec(base_name, base)
    codec_a.apply_file(a, local, origin="disk")
    codec_b.apply_file(b, remote, origin="disk")
    exchange(a, b)
    result = _plain(codec_a.file_value(a))
    assert result == _plain(codec_b.file_value(b)), "replicas did not converge"

    if not conflict and key not in SAME_CHANGE_TWICE:
        assert result == _plain(merged)
    elif not conflict:
        assert result != _plain(merged)  # still the known divergence; update SAME_CHANGE_TWICE if fixed

    # Nothing is lost silently: every cell and output a side inserted is in the result,
    # values both sides changed end up as one side's value (last writer wins), and the
    # only edits lost are those to cells the other side deleted.
    nb_base, nb_local, nb_remote = (normalized(json.loads(x)) for x in (base, local, remote))
    rem_l, pat_l, ins_l, out_l = _side_changes(nb_base, nb_local)
    rem_r, pat_r, ins_r, out_r = _side_changes(nb_base, nb_remote)
    sources = [c["source"] for c in result["cells"]]
    outputs = [json.dumps(o, sort_keys=True) for c in result["cells"] for o in c.get("outputs", [])]
    for cell in ins_l + ins_r:
        assert cell["source"] in sources
    for (cell, output), deleted_by_other in [(o, o[0] in rem_r) for o in out_l] + [(o, o[0] in rem_l) for o in out_r]:
        assert output in outputs or deleted_by_other, f"output lost from base cell {cell}"
    assert len(result["cells"]) == len(nb_base.cells) - len(rem_l | rem_r) + len(ins_l) + len(ins_r)
    by_source = {c["source"]: c for c in result["cells"]}
    for i in set(pat_l) & set(pat_r):
        mine, theirs = pat_l[i], pat_r[i]
        merged_cell = by_source.get(mine["source"]) or by_source.get(theirs["source"])
        for field in ("execution_count", "attachments"):
            if merged_cell is not None and field in merged_cell:
                assert merged_cell[field] in (mine.get(field), theirs.get(field), nb_base.cells[i].get(field))
    losses = {"edit of a deleted cell"} if (rem_l & set(pat_r)) or (rem_r & set(pat_l)) else set()
    assert losses == EXPECTED_LOSSES.get(key, set())


def test_notebook_same_cell_edited_on_disk_and_in_session_keeps_both() -> None:
    codec, doc = loaded("nb.ipynb", nb_file(BASE))
    written = codec.dump(doc)
    text = cell_maps(doc)[2]["source"]
    text.insert(0, "# session\n")  # unsaved participant edit of cell c2
    disk = json.loads(json.dumps(BASE))
    disk["cells"][2]["source"] = ["print(x)  # disk"]  # the same cell, edited in another editor
    assert codec.apply_file(doc, nb_file(disk), origin="disk", base=written)
    source = "".join(json.loads(codec.dump(doc))["cells"][2]["source"])
    assert source == "# session\nprint(x)  # disk"
