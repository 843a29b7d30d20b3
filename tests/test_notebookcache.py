"""Incremental notebook rendering (`documents.notebookcache`) writes exactly the full render.

Write-back of a notebook that a kernel floods reads, checks and formats only the cells
(and outputs) that changed. That is only allowed because the bytes and the verdict are
always those of the full render (`NotebookCodec.dump`, the guard's whole-value check):
random edit sequences on real corpus notebooks compare the two after every step, and a
test counts what one appended output costs (it fails if the seam is not used).
"""

from __future__ import annotations

import random
from typing import Any

import pycrdt
import pytest
from pycrdt import Array, Doc, Map, Text

from gitrtc.documents import open_codec
from gitrtc.documents.notebook import NotebookCodec
from gitrtc.documents.notebook_ops import ycell_from_dict
from gitrtc.validation import DocumentGuard

from .corpus import CORPUS

#: Corpus notebooks of every shape the corpus has: nbformat 4.0-4.5, with and without
#: ids, list and string sources, plots (big base64 outputs), tracebacks, odd metadata.
NOTEBOOKS = [
    "nbformat/test4.ipynb",
    "nbformat/test4.5.ipynb",
    "nbformat/test4plus.ipynb",
    "nbformat/many_tracebacks.ipynb",
    "nbformat/v4_5_no_cell_id.ipynb",
    "nbformat/test4jupyter_metadata_timings.ipynb",
    "pdsh/01.03-Magic-Commands.ipynb",
    "pdsh/02.02-The-Basics-Of-NumPy-Arrays.ipynb",
    "pdsh/04.02-Simple-Scatter-Plots.ipynb",
]


def _guard_of(name: str) -> tuple[DocumentGuard, Doc[Any], NotebookCodec]:
    path = CORPUS / "notebooks" / name
    data = path.read_bytes()
    codec = open_codec(path.name, data)
    assert isinstance(codec, NotebookCodec)
    doc: Doc[Any] = Doc()
    codec.load_into(doc, None)
    return DocumentGuard(doc, codec, path.name), doc, codec


def _incremental(guard: DocumentGuard) -> tuple[bytes | None, str | None]:
    """What write-back renders now through the seam: (bytes, None) or (None, problem)."""
    renderer = guard.renderer
    assert renderer is not None
    snap = renderer.snapshot()
    problem = renderer.problem(snap, guard._file_problem)
    return (None, problem) if problem else (renderer.dump(snap), None)


def _full(guard: DocumentGuard, codec: NotebookCodec, doc: Doc[Any]) -> tuple[bytes | None, str | None]:
    """The same, the whole notebook from scratch (what gitrtc did before the seam)."""
    value = codec.file_value(doc)
    problem = guard._file_problem(value)
    return (None, problem) if problem else (codec.dump_value(value), None)


class Editor:
    """Random edits of the kinds a session makes: typing, kernel outputs, cells inserted,
    deleted and moved (jupyter_ydoc's way: deleted and made again), metadata."""

    def __init__(self, doc: Doc[Any], rng: random.Random) -> None:
        self.doc = doc
        self.rng = rng
        self.cells: Array[Any] = doc.get("cells", type=Array)
        self.meta: Map[Any] = doc.get("meta", type=Map)
        self.made = 0

    def _cell(self) -> Map[Any] | None:
        return self.cells[self.rng.randrange(len(self.cells))] if len(self.cells) else None

    def _outputs(self) -> Array[Any] | None:
        code = [c for c in self.cells if isinstance(c.get("outputs"), Array)]
        return self.rng.choice(code)["outputs"] if code else None

    def _new_id(self) -> str:
        self.made += 1
        return f"made-{self.made}"

    def step(self) -> str:
        rng = self.rng
        kind = rng.choice(
            [
                "type",
                "type",
                "erase",
                "stream",
                "stream",
                "more_stream",
                "more_stream",
                "image",
                "result",
                "update",
                "clear",
                "drop_output",
                "count",
                "state",
                "insert",
                "delete",
                "move",
                "replace",
                "rename",
                "takeover",
                "cell_meta",
                "nb_meta",
                "several",
            ]
        )
        if kind == "several":
            with self.doc.transaction():
                return "+".join(
                    self._one(rng.choice(["type", "stream", "more_stream", "insert", "move", "replace", "count"]))
                    for _ in range(3)
                )
        with self.doc.transaction():
            return self._one(kind)

    def _one(self, kind: str) -> str:
        rng = self.rng
        cell = self._cell()
        outputs = self._outputs()
        if kind in ("type", "erase") and cell is not None and isinstance(cell.get("source"), Text):
            text = cell["source"]
            if kind == "type" or not len(text):
                text.insert(rng.randint(0, len(text)), rng.choice(["x", "\n", "é", "print(1)\n", "  ", '"q"']))
            else:
                start = rng.randrange(len(text))
                del text[start : min(len(text), start + rng.randint(1, 5))]
        elif kind == "stream" and outputs is not None:
            name = rng.choice(["stdout", "stderr"])
            outputs.append(Map({"output_type": "stream", "name": name, "text": Text("line\n" * rng.randint(1, 3))}))
        elif kind == "more_stream" and outputs is not None:
            streams = [o for o in outputs if isinstance(o, Map) and isinstance(o.get("text"), Text)]
            if streams:
                streams[-1]["text"] += f"{rng.randint(0, 10**6)}\n"
        elif kind == "image" and outputs is not None:
            data = {"image/png": "iVBORw0KGgo" + "A" * rng.randint(10, 3000), "text/plain": "<Figure>"}
            outputs.append(Map({"output_type": "display_data", "data": data, "metadata": {}}))
        elif kind == "result" and outputs is not None:
            data = {"text/plain": f"{rng.random()}\nsecond line", "text/html": "<b>x</b>\n<i>y</i>"}
            outputs.append(Map({"output_type": "execute_result", "data": data, "metadata": {}, "execution_count": 7.0}))
        elif kind == "update" and outputs is not None and len(outputs):
            target = outputs[rng.randrange(len(outputs))]
            if isinstance(target, Map) and "data" in target:
                target["data"] = {"text/plain": f"updated {rng.random()}"}
        elif kind == "clear" and outputs is not None and len(outputs):
            outputs.clear()
        elif kind == "drop_output" and outputs is not None and len(outputs):
            del outputs[rng.randrange(len(outputs))]
        elif kind == "count" and cell is not None and cell.get("cell_type") == "code":
            cell["execution_count"] = float(rng.randint(1, 99))
        elif kind == "state" and cell is not None and cell.get("cell_type") == "code":
            cell["execution_state"] = rng.choice(["busy", "idle"])
        elif kind == "insert":
            new: dict[str, Any] = {"id": self._new_id(), "source": Text(rng.choice(["", "a = 1\n", "# T"]))}
            if rng.random() < 0.5:
                new.update(cell_type="code", metadata=Map(), outputs=Array(), execution_count=None)
            else:
                new.update(cell_type="markdown", metadata=Map())
            self.cells.insert(rng.randint(0, len(self.cells)), Map(new))
        elif kind == "delete" and len(self.cells) > 1:
            del self.cells[rng.randrange(len(self.cells))]
        elif kind == "move" and len(self.cells) > 1:
            old = rng.randrange(len(self.cells))
            value = self.cells[old].to_py()
            del self.cells[old]
            moved = Map(value) if rng.random() < 0.5 else ycell_from_dict(value, value["id"])  # plain values or Y types
            self.cells.insert(rng.randint(0, len(self.cells)), moved)
        elif kind == "replace" and cell is not None:  # made again under the same id, changed
            index = next(i for i, c in enumerate(self.cells) if c.get("id") == cell.get("id"))
            value = cell.to_py()
            if isinstance(value.get("outputs"), list) and value["outputs"]:
                value["outputs"] = [*value["outputs"][1:], {"output_type": "stream", "name": "stdout", "text": "r\n"}]
            value["source"] = "replaced\n"
            del self.cells[index]
            self.cells.insert(index, ycell_from_dict(value, value["id"]))  # Y types inside, as a client makes it
        elif kind == "rename" and cell is not None:
            cell["id"] = self._new_id()
        elif kind == "takeover" and len(self.cells) > 2:  # a cell takes the id of one just deleted
            a, b = rng.sample(range(len(self.cells)), 2)
            taken = self.cells[b]["id"]
            keep = self.cells[a]
            del self.cells[b]
            keep["id"] = taken
        elif kind == "cell_meta" and cell is not None and isinstance(cell.get("metadata"), Map):
            key, value = rng.choice(
                [
                    ("collapsed", True),
                    ("collapsed", False),
                    ("tags", ["a"]),
                    ("tags", []),
                    ("scrolled", False),
                    ("scrolled", ["a"]),
                ]
            )
            cell["metadata"][key] = value  # the last one nbformat refuses: the verdicts must agree too
        elif kind == "nb_meta":
            if rng.random() < 0.2 and "nbformat_minor" in self.meta:
                self.meta["nbformat_minor"] = float(rng.choice([4, 5]))  # cell ids written or not
            elif isinstance(self.meta.get("metadata"), Map):
                self.meta["metadata"]["gitrtc_test"] = rng.random()
        return kind


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_incremental_render_is_the_full_render_after_every_edit(name: str) -> None:
    guard, doc, codec = _guard_of(name)
    assert _incremental(guard) == _full(guard, codec, doc)  # untouched: the original bytes
    for seed in range(3):
        rng = random.Random(f"{name}:{seed}")
        editor = Editor(doc, rng)
        steps = []
        for _ in range(30):
            steps.append(editor.step())
            if rng.random() < 0.3:
                continue  # changes pile up across transactions between renders too
            assert _incremental(guard) == _full(guard, codec, doc), f"after {steps}"
        assert _incremental(guard) == _full(guard, codec, doc), f"after {steps}"


def test_a_new_reference_and_a_broken_notebook_render_as_the_full_render() -> None:
    guard, doc, codec = _guard_of("pdsh/02.02-The-Basics-Of-NumPy-Arrays.ipynb")
    editor = Editor(doc, random.Random(1))
    for _ in range(8):
        editor.step()
    assert _incremental(guard) == _full(guard, codec, doc)
    assert _incremental(guard)[0] is not None
    codec.write_like(doc, codec.dump(doc))  # the file was saved from outside: written like it from now
    cells = doc.get("cells", type=Array)
    cells[3]["source"] += "more"
    assert _incremental(guard) == _full(guard, codec, doc)
    # an output nbformat refuses: the verdict (and its message) is the full check's
    code = next(c for c in cells if isinstance(c.get("outputs"), Array))
    code["outputs"].append(Map({"output_type": "error", "ename": "E"}))
    broken = _incremental(guard)
    assert broken == _full(guard, codec, doc)
    assert broken[1] is not None and "error" in broken[1]
    del code["outputs"][len(code["outputs"]) - 1]
    assert _incremental(guard) == _full(guard, codec, doc)
    assert _incremental(guard)[0] is not None
    # repeated ids: not cached, still exact
    cells.append(Map({"id": cells[0]["id"], "cell_type": "markdown", "source": Text("dup"), "metadata": Map()}))
    assert _incremental(guard) == _full(guard, codec, doc)
    del cells[len(cells) - 1]
    assert _incremental(guard) == _full(guard, codec, doc)


def test_an_output_appended_to_one_cell_reads_checks_and_writes_that_cell_only() -> None:
    """The flood's case: one cell of a 2 MB notebook gets an image; write-back must not
    read, check or format the 60 others (nor the cell's earlier outputs) again."""
    guard, doc, codec = _guard_of("pdsh/05.11-K-Means.ipynb")
    renderer = guard.renderer
    assert renderer is not None, "write-back of a notebook goes through notebookcache"
    cells = doc.get("cells", type=Array)
    assert len(cells) > 50
    outputs = cells[7]["outputs"]
    outputs.append(Map({"output_type": "stream", "name": "stdout", "text": Text("first\n")}))
    guard.version += 1  # a structural change: write-back checks the notebook
    guard.render()  # the first write-back after the start pays for the whole notebook, once
    read, outputs_read, checked, written = (
        renderer.stats.cells_read,
        renderer.stats.outputs_read,
        renderer.stats.cells_checked,
        renderer.cells_written,
    )
    with doc.transaction():
        outputs.append(Map({"output_type": "display_data", "data": {"image/png": "iVBOR" * 50_000}, "metadata": {}}))
    guard.version += 1
    data = guard.render()
    assert data == codec.dump(doc)
    assert renderer.stats.cells_read - read == 1
    assert renderer.stats.outputs_read - outputs_read == 1  # the new output, not the cell's earlier one
    assert renderer.stats.cells_checked - checked == 1
    assert renderer.cells_written - written == 2  # the cell and its new output
    # typing into another cell: that cell only
    with doc.transaction():
        cells[20]["source"] += "x"
    assert guard.render() == codec.dump(doc)
    assert renderer.stats.cells_read - read == 2
    assert renderer.stats.full == 0


def test_an_output_appended_is_checked_alone_not_with_the_cells_earlier_outputs() -> None:
    """An image a second into one cell: each write-back checks the cell without its
    outputs and the new image, not the images before it (the check's cost is bounded by
    the change, not by the cell); the verdicts stay the full check's, a bad output too."""
    guard, doc, codec = _guard_of("pdsh/05.11-K-Means.ipynb")
    guard.strict = True  # nbformat's schema too, as for a notebook that was valid at the start
    renderer = guard.renderer
    assert renderer is not None
    outputs_seen: list[int] = []

    def check(value: dict[str, Any]) -> str | None:  # the guard's, counting the outputs it is shown
        outputs_seen.append(sum(len(cell.get("outputs", ())) for cell in value["cells"]))
        return guard._file_problem(value)

    cells = doc.get("cells", type=Array)
    outputs = cells[7]["outputs"]
    assert renderer.problem(renderer.snapshot(), check) is None  # the first check sees everything
    for i in range(5):
        with doc.transaction():
            outputs.append(
                Map({"output_type": "display_data", "data": {"image/png": f"{i}" * 200_000}, "metadata": {}})
            )
        outputs_seen.clear()
        snap = renderer.snapshot()
        assert renderer.problem(snap, check) is None
        assert sorted(outputs_seen) == [0, 1], f"after image {i}"  # the cell without outputs, the image
        assert guard._file_problem(codec.file_value(doc)) is None
    with doc.transaction():
        cells[7]["source"] += "# typed"
        outputs.append(Map({"output_type": "error", "ename": "E"}))  # nbformat refuses it
    snap = renderer.snapshot()
    problem = renderer.problem(snap, check)
    assert problem is not None and problem == guard._file_problem(codec.file_value(doc))
    del outputs[len(outputs) - 1]
    outputs_seen.clear()
    assert renderer.problem(renderer.snapshot(), check) is None
    assert sorted(outputs_seen) == [0], "the images were found fine before: not checked again"


def test_the_renderer_stops_watching_when_closed() -> None:
    guard, doc, _codec = _guard_of("nbformat/test4.5.ipynb")
    renderer = guard.renderer
    assert renderer is not None
    renderer.snapshot()
    renderer.close()
    cells = doc.get("cells", type=pycrdt.Array)
    code = next(c for c in cells if isinstance(c.get("outputs"), Array))
    with doc.transaction():
        code["outputs"].append(Map({"output_type": "stream", "name": "stdout", "text": "x"}))
        code["execution_count"] = 3.0
        cells.append(Map({"id": "new", "cell_type": "markdown", "source": Text(""), "metadata": Map()}))
    assert renderer._dirty == {}


def test_typing_is_not_watched() -> None:
    """Keystrokes are most of what a session applies: the renderer puts no observer on a
    text (pycrdt would make an event of each), and still sees what was typed."""
    guard, doc, codec = _guard_of("pdsh/02.02-The-Basics-Of-NumPy-Arrays.ipynb")
    renderer = guard.renderer
    assert renderer is not None
    renderer.snapshot()
    cells = doc.get("cells", type=Array)
    source = cells[5]["source"]
    source.insert(0, "typed ")
    assert renderer._dirty == {}  # nothing noted
    assert b"typed " in renderer.dump(renderer.snapshot())
    assert _incremental(guard) == _full(guard, codec, doc)
