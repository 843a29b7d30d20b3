"""Document codecs: file bytes ⇄ shared pycrdt Doc, lossless, over the real corpus."""

from __future__ import annotations

import difflib
import json
import uuid
import warnings

import nbformat
import pycrdt
import pytest
from jupyter_ydoc import YNotebook, YUnicode

from gitrtc.documents import MAX_FILE_BYTES, NotebookCodec, TextCodec, open_codec
from gitrtc.documents.jsonformat import dumps_like, parse, restore, sem_equal
from gitrtc.errors import NotShareableError

from .corpus import corpus_file, corpus_names

NOTEBOOKS = sorted(
    n for d in ("notebooks/nbformat", "notebooks/pdsh", "merge/nbdime") for n in corpus_names(d, "*.ipynb")
)
corpus_params = [pytest.param(n, id=n) for n in NOTEBOOKS]

#: Files of the corpus that are not nbformat-4 notebooks, so they are shared as text.
EXPECTED_TEXT = {
    "notebooks/nbformat/test2.ipynb",
    "notebooks/nbformat/test3.ipynb",
    "notebooks/nbformat/test3_no_metadata.ipynb",
    "notebooks/nbformat/test3_no_min_version.ipynb",
    "notebooks/nbformat/test3_no_worksheets.ipynb",
    "notebooks/nbformat/test3_worksheet_with_no_cells.ipynb",
}


def load(name: str) -> tuple[bytes, object, pycrdt.Doc]:
    """A corpus file's bytes, its codec and a doc loaded from it."""
    data = corpus_file(name).read_bytes()
    codec = open_codec(name, data)
    doc = pycrdt.Doc()
    codec.load_into(doc, origin="load")
    return data, codec, doc


def validates(nb: object) -> bool:
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            nbformat.validate(json.loads(json.dumps(nb)))
        except nbformat.ValidationError:
            return False
    return True


def changed_lines(before: bytes, after: bytes) -> list[str]:
    diff = difflib.unified_diff(before.decode().splitlines(True), after.decode().splitlines(True), n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def edit_one_char(doc: pycrdt.Doc) -> bool:
    """Replace one (non-newline) character of the first non-blank cell source; False if none."""
    for ycell in doc.get("cells", type=pycrdt.Array):
        text = ycell["source"]
        source = str(text)
        positions = [i for i, ch in enumerate(source) if ch not in "\r\n"]
        if not positions:
            continue
        pos = positions[len(positions) // 2]
        start = len(source[:pos].encode())
        old = source[pos]
        with doc.transaction(origin="edit"):
            del text[start : start + len(old.encode())]
            text.insert(start, "Z" if old != "Z" else "Y")
        return True
    return False


# --- the corpus --------------------------------------------------------------------


@pytest.mark.parametrize("name", corpus_params)
def test_untouched_doc_dumps_original_bytes(name: str) -> None:
    data, codec, doc = load(name)
    assert codec.kind == ("text" if name in EXPECTED_TEXT else "notebook"), codec.warnings
    assert codec.dump(doc) == data
    # As the server does on resume: the doc rebuilt from its update, the codec from the same bytes.
    resumed = pycrdt.Doc()
    resumed.apply_update(doc.get_update())
    assert open_codec(name, data).dump(resumed) == data


@pytest.mark.parametrize("name", corpus_params)
def test_one_char_edit_changes_one_line(name: str) -> None:
    data, codec, doc = load(name)
    if codec.kind != "notebook":
        pytest.skip("shared as text")
    if not edit_one_char(doc):
        pytest.skip("no cell with source")
    out = codec.dump(doc)
    removed_added = changed_lines(data, out)
    assert len(removed_added) == 2 and removed_added[0][0] == "-" and removed_added[1][0] == "+", removed_added
    before, after = json.loads(data), json.loads(out)
    if validates(before):
        assert validates(after)
    # resumed codec + restored doc dump the same bytes (synthetic ids are deterministic)
    resumed = pycrdt.Doc()
    resumed.apply_update(doc.get_update())
    assert open_codec(name, data).dump(resumed) == out


def js_cell(cell_type: str, source: str) -> pycrdt.Map:
    """A cell as @jupyter/ydoc's `createCell` builds it (numbers arrive as floats from JS)."""
    fields: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "cell_type": cell_type,
        "source": pycrdt.Text(source),
        "metadata": pycrdt.Map({"tags": ["new"]}),
    }
    if cell_type == "code":
        fields["outputs"] = pycrdt.Array(
            [pycrdt.Map({"output_type": "stream", "name": "stdout", "text": pycrdt.Text("1\n2\n")})]
        )
        fields["execution_count"] = 3.0
        fields["execution_state"] = "idle"
    return pycrdt.Map(fields)


@pytest.mark.parametrize("name", corpus_params)
def test_cells_added_by_a_client_are_written(name: str) -> None:
    data, codec, doc = load(name)
    if codec.kind != "notebook":
        pytest.skip("shared as text")
    cells = doc.get("cells", type=pycrdt.Array)
    with doc.transaction(origin="client"):
        cells.insert(0, js_cell("markdown", "# Added\nby a client"))
        cells.append(js_cell("code", "print(1)\nprint(2)"))
    out = json.loads(codec.dump(doc))
    first, last = out["cells"][0], out["cells"][-1]
    assert "".join(first["source"]) == "# Added\nby a client" and first["metadata"] == {"tags": ["new"]}
    assert "".join(last["source"]) == "print(1)\nprint(2)"
    assert last["execution_count"] == 3 and type(last["execution_count"]) is int
    assert "".join(last["outputs"][0]["text"]) == "1\n2\n"
    assert "execution_state" not in last
    minor = json.loads(data).get("nbformat_minor", 0)
    assert ("id" in last) == (minor >= 5)
    if validates(json.loads(data)):
        assert validates(out)


@pytest.mark.parametrize("name", corpus_params)
def test_jupyter_ydoc_reads_the_layout(name: str) -> None:
    data, codec, doc = load(name)
    if codec.kind == "text":
        assert YUnicode(doc).get() == data.decode()
        return
    original = json.loads(data)
    with warnings.catch_warnings(record=True):  # jupyter_ydoc warns about duplicate ids it repairs
        warnings.simplefilter("always")
        seen = YNotebook(doc).get(deduplicate=False)
    assert len(seen["cells"]) == len(original["cells"])
    for mine, theirs in zip(original["cells"], seen["cells"], strict=True):
        assert "".join(mine.get("source", "")) == theirs["source"]
        assert mine.get("metadata", {}) == theirs["metadata"]
    assert seen["metadata"] == original.get("metadata", {})


# --- notebook specifics --------------------------------------------------------------


NB45 = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": 5,
            "id": "a1",
            "metadata": {"x": 1.0, "n": 2},
            "outputs": [],
            "source": ["a = 1\n", "b = 2"],
        },
        {"cell_type": "markdown", "id": "a1", "metadata": {}, "source": "dup id, one string"},
        {"attachments": {}, "cell_type": "raw", "metadata": {}, "source": []},
    ],
    "metadata": {"kernelspec": {"name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def nb_bytes(nb: dict[str, object], **dump_args: object) -> bytes:
    return json.dumps(nb, **dump_args).encode()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "dump_args",
    [
        {"indent": 1, "sort_keys": True, "ensure_ascii": False},
        {"indent": 2},
        {"indent": "\t", "ensure_ascii": True},
        {},
        {"separators": (",", ":")},
    ],
    ids=["nbformat", "indent2", "tabs-ascii", "compact", "minified"],
)
def test_formats_are_kept(dump_args: dict[str, object]) -> None:
    nb = json.loads(json.dumps(NB45))
    nb["cells"][1]["source"] = "déjà vu 📊"
    data = nb_bytes(nb, **dump_args)
    codec = NotebookCodec("x.ipynb", data, MAX_FILE_BYTES)
    doc = pycrdt.Doc()
    codec.load_into(doc, "load")
    assert codec.dump(doc) == data
    cells = doc.get("cells", type=pycrdt.Array)
    with doc.transaction():
        text = cells[1]["source"]
        text += "!"
        cells[0]["metadata"]["new"] = 1.0
    out = codec.dump(doc)
    nb["cells"][1]["source"] += "!"
    nb["cells"][0]["metadata"]["new"] = 1
    if dump_args.get("sort_keys"):
        nb["cells"][0]["metadata"] = dict(sorted(nb["cells"][0]["metadata"].items()))
    assert out == nb_bytes(nb, **dump_args)


def test_crlf_and_trailing_text_are_kept() -> None:
    data = nb_bytes(NB45, indent=1).replace(b"\n", b"\r\n") + b"\r\n"
    codec = open_codec("x.ipynb", data)
    doc = pycrdt.Doc()
    codec.load_into(doc, "load")
    cells = doc.get("cells", type=pycrdt.Array)
    with doc.transaction():
        text = cells[0]["source"]
        text += "\nc = 3"
    out = codec.dump(doc)
    assert out.endswith(b"}\r\n") and b"\n" not in out.replace(b"\r\n", b"")
    assert json.loads(out)["cells"][0]["source"] == ["a = 1\n", "b = 2\n", "c = 3"]


def test_ids_duplicates_and_synthetic_ids() -> None:
    data = nb_bytes(NB45, indent=1)
    codec = open_codec("x.ipynb", data)
    doc = pycrdt.Doc()
    codec.load_into(doc, "load")
    ids = [c["id"] for c in doc.get("cells", type=pycrdt.Array)]
    assert ids[0] == "a1" and len(set(ids)) == 3 and all(isinstance(i, str) for i in ids)
    again = pycrdt.Doc()
    open_codec("x.ipynb", data).load_into(again, "load")
    assert [c["id"] for c in again.get("cells", type=pycrdt.Array)] == ids  # deterministic
    with doc.transaction():
        text = doc.get("cells", type=pycrdt.Array)[2]["source"]
        text += "raw text"
    out = json.loads(codec.dump(doc))
    assert [c.get("id") for c in out["cells"]] == ["a1", "a1", None]  # file's own ids, none invented


def test_old_minor_strips_client_ids_and_keeps_numbers() -> None:
    nb = json.loads(json.dumps(NB45))
    nb["nbformat_minor"] = 4
    for cell in nb["cells"]:
        cell.pop("id", None)
    data = nb_bytes(nb, indent=1, sort_keys=True)
    codec = open_codec("x.ipynb", data)
    doc = pycrdt.Doc()
    codec.load_into(doc, "load")
    with doc.transaction():
        doc.get("cells", type=pycrdt.Array).append(js_cell("code", "x"))
    out = json.loads(codec.dump(doc))
    assert all("id" not in c for c in out["cells"])
    assert out["cells"][0]["execution_count"] == 5 and type(out["cells"][0]["execution_count"]) is int
    assert type(out["cells"][0]["metadata"]["x"]) is float and type(out["cells"][0]["metadata"]["n"]) is int


def test_unrepresentable_notebooks_fall_back_to_text() -> None:
    for data, reason in [
        (b'{"cells": [], "nbformat": 4, "nbformat": 4}', "repeats a key"),
        (b'{"cells": [}', "not valid JSON"),
        (b'{"nbformat": 3, "worksheets": []}', "nbformat 3"),
        (b'{"nbformat": 4, "cells": [{"cell_type": "code", "metadata": []}]}', "metadata is not an object"),
        (b'{"nbformat": 4, "cells": [{"cell_type": "markdown", "source": "\\ud800"}]}', "surrogate"),
    ]:
        codec = open_codec("broken.ipynb", data)
        assert codec.kind == "text" and reason in codec.warnings[0] and "\n" not in codec.warnings[0]
        doc = pycrdt.Doc()
        codec.load_into(doc, "load")
        assert codec.dump(doc) == data


def test_unknown_cell_types_travel_as_raw_cells() -> None:
    nb = json.loads(json.dumps(NB45))
    nb["cells"][2]["cell_type"] = "heading"
    nb["cells"][2]["level"] = 2
    data = nb_bytes(nb, indent=1)
    codec = open_codec("x.ipynb", data)
    assert codec.kind == "notebook" and any("'heading'" in w for w in codec.warnings)
    doc = pycrdt.Doc()
    codec.load_into(doc, "load")
    ycell = doc.get("cells", type=pycrdt.Array)[2]
    assert ycell["cell_type"] == "raw"  # what @jupyter/ydoc can show
    text = ycell["source"]
    text += "# Heading"
    out = json.loads(codec.dump(doc))["cells"][2]
    assert out["cell_type"] == "heading" and out["level"] == 2 and out["source"] == ["# Heading"]


def test_huge_integers_survive() -> None:
    data = (
        b'{"cells": [], "metadata": {"big": 123456789012345678901234567890, "n": 9007199254740993}, '
        b'"nbformat": 4, "nbformat_minor": 5}'
    )
    codec = open_codec("x.ipynb", data)
    doc = pycrdt.Doc()
    codec.load_into(doc, "load")
    assert codec.dump(doc) == data


# --- text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"line 1\r\nline 2\r\n",
        "\ufeffwith a BOM\n".encode(),
        b"no trailing newline",
        "emoji 📊 and é and 漢字\n".encode(),
        b"",
        b"mixed\r\nendings\n\rhere",
    ],
    ids=["crlf", "bom", "no-newline", "multibyte", "empty", "mixed"],
)
def test_text_round_trip(data: bytes) -> None:
    codec = open_codec("notes.md", data)
    assert codec.kind == "text" and codec.warnings == []
    doc = pycrdt.Doc()
    codec.load_into(doc, origin="load")
    assert codec.dump(doc) == data
    assert YUnicode(doc).get() == data.decode()
    resumed = pycrdt.Doc()
    resumed.apply_update(doc.get_update())
    assert codec.dump(resumed) == data


def test_text_edit_with_multibyte_offsets() -> None:
    codec = open_codec("a.txt", "é📊\r\nb\n".encode())
    doc = pycrdt.Doc()
    codec.load_into(doc, origin="load")
    source = doc.get("source", type=pycrdt.Text)
    source.insert(6, "!")  # pycrdt offsets are UTF-8 bytes: after "é📊"
    assert codec.dump(doc) == "é📊!\r\nb\n".encode()


@pytest.mark.parametrize(
    ("path", "data", "why"),
    [
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        ("latin1.txt", "café".encode("latin-1"), "not UTF-8"),
        ("big.txt", b"x" * 101, "over the 100-byte limit"),
        ("big.ipynb", b"x" * 101, "over the 100-byte limit"),
        ("nul.ipynb", b'{"a": "\x00"}', "binary"),
    ],
)
def test_refused_files(path: str, data: bytes, why: str) -> None:
    with pytest.raises(NotShareableError) as info:
        open_codec(path, data, max_bytes=100)
    message = str(info.value)
    assert why in message and path in message and "\n" not in message


def test_load_into_needs_an_empty_doc() -> None:
    codec = TextCodec("a.txt", b"abc", MAX_FILE_BYTES)
    doc = pycrdt.Doc()
    codec.load_into(doc, "load")
    with pytest.raises(ValueError):
        codec.load_into(doc, "load")


def test_load_into_is_one_transaction_with_the_origin() -> None:
    data = nb_bytes(NB45, indent=1)
    for codec, root in ((open_codec("x.ipynb", data), "cells"), (open_codec("x.txt", b"text"), "source")):
        doc = pycrdt.Doc()
        updates: list[bytes] = []
        origins: list[object] = []
        # pycrdt counts a callback's parameters, so the loop's lists are not bound as defaults
        doc.observe(lambda event: updates.append(event.update))  # noqa: B023  (used in this iteration)
        shared = doc.get(root, type=pycrdt.Array if root == "cells" else pycrdt.Text)
        shared.observe(lambda event, txn: origins.append(txn.origin))  # noqa: B023
        codec.load_into(doc, origin="disk-load")
        assert len(updates) == 1 and origins == ["disk-load"]


# --- jsonformat ------------------------------------------------------------------------


def test_restore_keeps_representation() -> None:
    original = {"b": 1, "a": [1.0, "x"], "c": True}
    new = {"a": [1.0, "y", 2.0], "c": 1.0, "b": 1.0, "d": 3.0}
    restored = restore(original, new)
    assert list(restored) == ["b", "a", "c", "d"]
    assert restored["b"] == 1 and type(restored["b"]) is int
    assert restored["a"] == [1.0, "y", 2] and type(restored["a"][0]) is float
    assert restored["c"] == 1 and type(restored["c"]) is int  # True → 1.0 is a change, not equal
    assert sem_equal(5, 5.0) and not sem_equal(True, 1) and not sem_equal([1], (1,))


def test_dumps_like_keeps_odd_whitespace_of_untouched_parts() -> None:
    text = '{ "a" : [1,2 ,3],\n  "b":{"c" :"d"}  }\n'
    parsed = parse(text)
    assert dumps_like(parsed, json.loads(text)) == text
    assert dumps_like(parsed, {"a": [1, 2, 3], "b": {"c": "e"}}) == '{ "a" : [1,2 ,3],\n  "b":{"c" :"e"}  }\n'
