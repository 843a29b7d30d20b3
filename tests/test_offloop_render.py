"""Write-back formats a notebook off the event loop (`DocumentGuard.render_later`).

A kernel flooding output into one notebook makes its write-back render megabytes; done on
the event loop, that held every other room's keystrokes (issue 15's flood figures). The
document's value is taken on the loop and formatted in a disk thread: these tests check
that the bytes are those of the moment the value was taken (never a torn or later
state), that the formatting really leaves the loop's thread, and that a notebook that
must not be written is still refused.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text

from gitrtc.documents import open_codec
from gitrtc.errors import DocumentError
from gitrtc.validation import DocumentGuard

from .conftest import Live
from .corpus import CORPUS
from .support import async_wait_until


def _guard_of(name: str) -> tuple[DocumentGuard, Doc[Any], bytes]:
    path = next(CORPUS.rglob(name))
    data = path.read_bytes()
    codec = open_codec(path.name, data)
    doc: Doc[Any] = Doc()
    codec.load_into(doc, None)
    return DocumentGuard(doc, codec, path.name), doc, data


def test_the_bytes_are_the_document_when_render_later_was_called() -> None:
    guard, doc, original = _guard_of("05.11-K-Means.ipynb")
    finish = guard.render_later()
    cells = doc.get("cells", type=Array)
    source = cells[0]["source"]
    assert isinstance(source, Text)
    source.insert(0, "typed after the snapshot ")  # the loop goes on while the thread formats
    with ThreadPoolExecutor(1) as pool:
        data = pool.submit(finish).result()
    assert data == original  # untouched when taken: the file's own bytes
    now = guard.render()
    assert "typed after the snapshot " in json.loads(now)["cells"][0]["source"][0]


def test_a_notebook_that_must_not_be_written_is_refused_in_the_thread_too() -> None:
    guard, doc, _ = _guard_of("05.11-K-Means.ipynb")
    cells = doc.get("cells", type=Array)
    with doc.transaction():
        del cells[0]["source"]  # a cell without its source: nbformat refuses it
    finish = guard.render_later()
    with ThreadPoolExecutor(1) as pool, pytest.raises(DocumentError, match="not written, kept in the session store"):
        pool.submit(finish).result()
    with pytest.raises(DocumentError):  # remembered for this version: refused at once
        guard.render_later()


async def test_write_back_formats_the_notebook_in_a_disk_thread(live: Live) -> None:
    notebook = live.repo / "analysis.ipynb"
    async with live.client("analysis.ipynb") as client:
        await client.wait_synced()
        guard = live.session.registry.rooms[live.room("analysis.ipynb")].guard
        assert guard is not None
        renderer: Any = guard.renderer  # write-back formats a notebook through it (`notebookcache`)
        threads: list[str] = []
        dump = renderer.dump

        def recording(snap: Any) -> bytes:
            threads.append(threading.current_thread().name)
            result: bytes = dump(snap)
            return result

        renderer.dump = recording  # observes where the formatting runs; changes nothing
        cells = client.doc.get("cells", type=Array)
        cell = cells[1]
        assert isinstance(cell, Map)
        source = cell["source"]
        assert isinstance(source, Text)
        source.insert(0, "# written from a thread\n")
        await async_wait_until(lambda: "# written from a thread" in notebook.read_text(), what="the write-back")
    # (the update check may measure a document's exact size on the loop: not write-back)
    assert any(name.startswith("rtc-disk") for name in threads), threads
    json.loads(notebook.read_text())  # whole, valid JSON on disk
