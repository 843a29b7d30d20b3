"""nbdime's merge of a diverged notebook runs in a thread, not on the event loop (it takes
seconds on a large notebook, and every room would wait): the merge is computed ahead
from the document as it is (`conflicts.merge_later`), and applied on the loop only if the
document did not change meanwhile; otherwise it is merged again with what it holds."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc

import gitrtc.merge.notebooks
from gitrtc.conflicts import NbdimeMerger, attach, merge_later
from gitrtc.documents import open_codec

from .conftest import live_session
from .support import async_wait_until, make_repo
from .test_notebook_conflicts import HELD, save, small_nb


def recording(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Observe the thread each nbdime merge runs in (the merge itself is unchanged)."""
    threads: list[str] = []
    merge = gitrtc.merge.notebooks.merge_notebook

    def observed(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return merge(*args)

    monkeypatch.setattr(gitrtc.merge.notebooks, "merge_notebook", observed)
    return threads


async def test_a_save_on_disk_is_merged_in_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = recording(monkeypatch)
    base = small_nb("a = 1\n", "b = 2\n")
    repo = make_repo(tmp_path / "r", {"nb.ipynb": json.dumps(base) + "\n"})
    async with live_session(repo, ["nb.ipynb"], HELD) as live:
        async with live.client("nb.ipynb") as client:
            await client.wait_synced()
            client.doc.get("cells", type=Array)[0]["source"].insert(0, "# live\n")
            room = live.session.rooms[live.room("nb.ipynb")]
            cells = room.doc.get("cells", type=Array)
            await async_wait_until(lambda: "# live" in str(cells[0]["source"]), what="typing")
            theirs = copy.deepcopy(base)
            theirs["cells"][1]["source"] = "b = 3\n"
            save(repo / "nb.ipynb", theirs)
            await async_wait_until(lambda: str(cells[1]["source"]) == "b = 3\n", what="merged")
            assert str(cells[0]["source"]) == "# live\na = 1\n"
    assert threads and threading.main_thread().name not in threads, threads


async def test_a_merge_prepared_before_the_document_changed_is_not_used() -> None:
    base = small_nb("a = 1\n", "b = 2\n")
    original = json.dumps(base).encode()
    theirs = copy.deepcopy(base)
    theirs["cells"][1]["source"] = "b = 3\n"
    data = json.dumps(theirs).encode()
    codec = open_codec("nb.ipynb", original)
    doc: Doc[Any] = Doc()
    codec.load_into(doc, None)
    attach(codec, "the owner's disk")
    merger = codec.merger  # type: ignore[attr-defined]
    assert isinstance(merger, NbdimeMerger)
    await merger.prepare(*codec.merge_inputs(doc, data, original))  # type: ignore[attr-defined]
    doc.get("cells", type=Array)[0]["source"].insert(0, "# typed meanwhile\n")
    assert codec.apply_file(doc, data, "disk", base=original)
    value = codec.file_value(doc)  # type: ignore[attr-defined]
    assert ["".join(c["source"]) for c in value["cells"]] == ["# typed meanwhile\na = 1\n", "b = 3\n"]


async def test_merge_later_leaves_a_broken_save_to_apply_file() -> None:
    original = json.dumps(small_nb("a = 1\n")).encode()
    codec = open_codec("nb.ipynb", original)
    doc: Doc[Any] = Doc()
    codec.load_into(doc, None)
    attach(codec, "the owner's disk")
    from gitrtc.errors import DocumentError

    with pytest.raises(DocumentError):
        await merge_later(codec, doc, b"{not json", "disk", original, lambda apply: apply())
