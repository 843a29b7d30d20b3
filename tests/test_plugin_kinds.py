"""The plugin API's kinds, in-process: the built-ins through the API, the loader's
isolation, and the gitrtc-csv example's lossless table (#20)."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import pycrdt
import pytest

from gitrtc.errors import PluginError
from gitrtc.merge.files import merge_file
from gitrtc.plugins import Merged
from gitrtc.plugins.builtin import NotebookKind, TextKind
from gitrtc.plugins.codec import KindCodec
from gitrtc.plugins.loader import KINDS_GROUP, SERVICES_GROUP, discover, installed, open_codec

from .corpus import corpus_file, corpus_names
from .plugins.install import EXAMPLE

sys.path.insert(0, str(EXAMPLE))  # the example's modules (its entry points are given below)
from gitrtc_csv.kind import CsvKind, rows_of
from gitrtc_csv.service import check_rows

NOTEBOOKS = corpus_names("notebooks/pdsh", "*.ipynb")[:6]


def test_the_builtin_kinds_are_loaded_through_the_entry_point_code() -> None:
    plugins = installed()
    assert [k.name for k in plugins.kinds][-2:] == ["notebook", "text"]
    assert {i.name: i.dist for i in plugins.infos}["text"] == "gitrtc (built-in)"
    assert open_codec("a.md", b"# hi\n").kind == "text"
    notebook = corpus_file(NOTEBOOKS[0]).read_bytes()
    assert open_codec("a.ipynb", notebook).kind == "notebook"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_notebook_kind_round_trips_through_the_api(name: str) -> None:
    data = corpus_file(name).read_bytes()
    kind = NotebookKind()
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    kind.load(data, doc)
    assert kind.render(doc, data) == data
    assert kind.merge3(data, data, data).data == merge_file(name, data, data, data).data


def test_the_text_kind_round_trips_and_merges_through_the_api() -> None:
    kind = TextKind()
    data = "a\r\nb 📊\r\nc".encode()
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    kind.load(data, doc)
    assert kind.render(doc, data) == data
    kind.update(doc, b"a\r\nB\r\nc", data)
    assert kind.render(doc, data) == b"a\r\nB\r\nc"
    merged = kind.merge3(b"1\n2\n3\n4\n", b"1\nx\n3\n4\n", b"1\n2\n3\ny\n")
    assert merged.data == b"1\nx\n3\ny\n" and not merged.conflict


@pytest.mark.parametrize(
    "data",
    [
        b"a,b\r\n1,2\r\n",
        b'\xef\xbb\xbfx;y\n"q;1";2\n3;"multi\nline"',
        b"",
        b"a\n\nb\n",
        b'a,b,c\n1,2\n"x""y",2,3\n',
        b"a\tb\n1\t2",
        b'"all","quoted"\r\n"1","2"\r\n',
        b"  spaced , cells \n",
    ],
)
def test_csv_files_round_trip_byte_for_byte(data: bytes) -> None:
    codec = KindCodec(CsvKind(), "t.csv", data, 1 << 20)
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    codec.load_into(doc, None)
    assert codec.dump(doc) == data


def test_a_csv_edit_changes_its_own_line_and_a_save_on_disk_merges_with_the_session() -> None:
    data = b'name,n\r\n"Ann",1\r\nBob,2\r\nCy,3\r\n'
    codec = KindCodec(CsvKind(), "t.csv", data, 1 << 20)
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    codec.load_into(doc, None)
    rows = doc.get("rows", type=pycrdt.Array)
    rows[2]["1"] = "5"
    rows.append(pycrdt.Map({"0": "Dee", "1": "x,y"}))
    assert codec.dump(doc) == b'name,n\r\n"Ann",1\r\nBob,5\r\nCy,3\r\nDee,"x,y"\r\n'
    # someone saves the file on disk meanwhile (from the original): Ann's row changed
    saved = b'name,n\r\n"Ann",7\r\nBob,2\r\nCy,3\r\n'
    assert codec.apply_file(doc, saved, None, base=data)
    assert rows_of(doc) == [("name", "n"), ("Ann", "7"), ("Bob", "5"), ("Cy", "3"), ("Dee", "x,y")]
    assert codec.dump(doc) == b'name,n\r\n"Ann",7\r\nBob,5\r\nCy,3\r\nDee,"x,y"\r\n'


def test_csv_three_way_merges_cell_by_cell_and_flags_the_same_cell() -> None:
    kind = CsvKind()
    base = b"a,b\n1,2\n3,4\n"
    merged = kind.merge3(base, b"a,b\n1,X\n3,4\n", b"a,b\nY,2\n3,4\n5,6\n")
    assert merged == Merged(b"a,b\nY,X\n3,4\n5,6\n", False)
    assert kind.merge3(base, b"a,b\n1,X\n3,4\n", b"a,b\n1,Z\n3,4\n").conflict


def test_the_validate_check_finds_short_rows_and_non_numbers() -> None:
    result = check_rows([("a", "n"), ("x", "1"), ("y", "2"), ("z", "three"), ("w",)])
    assert result["ok"] is False
    assert {"row": 4, "column": 2, "problem": "'three' is not a number"} in result["problems"]
    assert {"row": 5, "column": None, "problem": "1 columns, the header has 2"} in result["problems"]
    assert check_rows([("a",), ("1",)])["ok"] is True


def _ep(name: str, value: str, group: str = KINDS_GROUP) -> metadata.EntryPoint:
    return metadata.EntryPoint(name, value, group)


def test_the_loader_keeps_a_bad_entry_point_from_the_others(tmp_path: Path) -> None:
    plugins = discover(
        [
            _ep("csv", "gitrtc_csv.kind:CsvKind"),
            _ep("broken", "tests.plugins.bad_import:Kind"),
            _ep("missing", "no_such_module_xyz:Kind"),
            _ep("notakind", "tests.plugins.bad_plugins:NotAKind"),
            _ep("other", "gitrtc_csv.kind:CsvKind"),  # a name that differs from the class's
            _ep("text", "tests.plugins.bad_plugins:Raises"),  # a built-in's name... and a mismatch
            _ep("hangs", "tests.plugins.hang_import:Kind"),
        ],
        [_ep("validate", "gitrtc_csv.service:ValidateService", SERVICES_GROUP), _ep("kernel", "x:Y", SERVICES_GROUP)],
        seconds=0.5,
    )
    errors = {i.name: i.error for i in plugins.infos if i.error}
    assert [k.name for k in plugins.kinds] == ["csv", "notebook", "text"]
    assert set(plugins.services) == {"validate"}
    assert "needs libfoo" in errors["broken"]
    assert "No module named 'no_such_module_xyz'" in errors["missing"]
    assert "not a gitrtc.plugins.DocumentKind subclass" in errors["notakind"]
    assert "differs from its entry point's 'other'" in errors["other"]
    assert "kernel" in errors
    assert errors["hangs"] == "import took longer than 0.5 s (hung)"


def test_a_kind_that_is_not_lossless_or_raises_is_refused_with_why() -> None:
    from tests.plugins.bad_plugins import Invalid, Lossy, Raises

    with pytest.raises(PluginError, match="not lossless"):
        KindCodec(Lossy(), "x.lossy", b"abc", 1 << 20)
    with pytest.raises(PluginError, match="returned str, not bytes"):
        KindCodec(Invalid(), "x.invalid", b"abc", 1 << 20)
    with pytest.raises(PluginError, match="RuntimeError: cannot parse this"):
        KindCodec(Raises(), "x.raises", b"abc", 1 << 20)


def test_write_back_leaves_a_plugin_kinds_render_to_the_disk_thread() -> None:
    """`DocumentGuard.render_later` takes the document on the loop and calls the plugin's
    render only when the returned function runs (in a disk thread): a plugin that hangs
    rendering holds that thread for its time limit, never the event loop."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from gitrtc.validation import DocumentGuard

    calls: list[str] = []

    class Watched(CsvKind):
        def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
            calls.append(threading.current_thread().name)
            return super().render(doc, original)

    data = b"a,b\r\n1,2\r\n"
    codec = KindCodec(Watched(), "t.csv", data, 1 << 20)
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    codec.load_into(doc, None)
    guard = DocumentGuard(doc, codec, "t.csv")
    calls.clear()
    finish = guard.render_later()
    doc.get("rows", type=pycrdt.Array)[1]["1"] = "after"  # the loop goes on editing
    assert calls == []  # nothing rendered yet, on the loop or anywhere
    with ThreadPoolExecutor(1, thread_name_prefix="rtc-disk") as pool:
        assert pool.submit(finish).result() == data  # the document as it was when taken
    assert calls and all(name.startswith("rtc-plugin") for name in calls)


def test_a_kind_s_own_layout_decides_which_roots_clients_may_write_and_how() -> None:
    """The guard takes a kind's roots from its codec (one definition): a plugin kind whose
    root is a Map accepts keyed edits there, refuses roots it does not declare and items
    of its roots written as if of another type; the built-ins keep jupyter_ydoc's layouts."""
    from gitrtc.errors import RejectedEditError
    from gitrtc.validation import DocumentGuard

    class Settings(TextKind):  # a kind with a Map root (key = value lines)
        name = "settings"
        roots: ClassVar[dict[str, type]] = {"values": pycrdt.Map}
        rendered_roots = None

        def load(self, data: bytes, doc: pycrdt.Doc[Any]) -> None:
            values = doc.get("values", type=pycrdt.Map)
            for line in data.decode().splitlines():
                key, _, value = line.partition("=")
                values[key] = value

        def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
            values = doc.get("values", type=pycrdt.Map)
            return "".join(f"{k}={values[k]}\n" for k in sorted(values.keys())).encode()

    codec = KindCodec(Settings(), "a.settings", b"a=1\nb=2\n", 1 << 20)
    server: pycrdt.Doc[Any] = pycrdt.Doc()
    codec.load_into(server, None)
    guard = DocumentGuard(server, codec, "a.settings")

    def edit(change: Any) -> bytes:
        client: pycrdt.Doc[Any] = pycrdt.Doc()
        client.apply_update(server.get_update())
        before = client.get_state()
        change(client)
        return client.get_update(before)

    update = edit(lambda d: d.get("values", type=pycrdt.Map).__setitem__("c", "3"))
    checked = guard.check(update)
    server.apply_update(update)
    guard.accept(checked)
    assert guard.render() == b"a=1\nb=2\nc=3\n"
    with pytest.raises(RejectedEditError):
        guard.check(edit(lambda d: d.get("other", type=pycrdt.Map).__setitem__("x", "1")))
    with pytest.raises(RejectedEditError, match="another type"):
        guard.check(edit(lambda d: d.get("values", type=pycrdt.Array).append("x")))
    assert TextKind.roots == {"source": pycrdt.Text}
    assert NotebookKind.roots == {"meta": pycrdt.Map, "cells": pycrdt.Array}


def test_a_kind_checks_only_where_an_update_changed_its_document() -> None:
    """`validate_changes` gets the places an update changed (a cell: its row and key; new
    rows: their indexes), on the plugin's own copy of the document, which follows the live
    one (edits made on the server too) and is dropped after a refusal."""
    from gitrtc.errors import RejectedEditError
    from gitrtc.plugins import Change
    from gitrtc.validation import DocumentGuard

    seen: list[tuple[int, list[Change]]] = []

    class Watched(CsvKind):
        def validate_changes(self, doc: pycrdt.Doc[Any], changes: Any) -> str | None:
            seen.append((len(doc.get("rows", type=pycrdt.Array)), list(changes)))
            return super().validate_changes(doc, changes)

    data = b"a,b\r\n" + b"".join(b"%d,x\r\n" % i for i in range(50))
    codec = KindCodec(Watched(), "t.csv", data, 1 << 20)
    server: pycrdt.Doc[Any] = pycrdt.Doc()
    codec.load_into(server, None)
    guard = DocumentGuard(server, codec, "t.csv")
    guard.learn(server.get_update())  # as the registry does for a room's loaded document
    client: pycrdt.Doc[Any] = pycrdt.Doc()
    client.apply_update(server.get_update())
    rows = client.get("rows", type=pycrdt.Array)

    def send(change: Any) -> None:
        before = client.get_state()
        change()
        update = client.get_update(before)
        checked = guard.check(update)
        server.apply_update(update)
        guard.accept(checked)

    send(lambda: rows[3].__setitem__("1", "y"))
    assert seen[-1] == (51, [Change("rows", (3,), keys=("1",))])
    send(lambda: rows.insert(2, pycrdt.Map({"0": "new", "1": "row"})))
    assert seen[-1] == (52, [Change("rows", (), inserted=(2,))])
    # an edit made on the server (a disk save, a service) reaches the plugin's copy too
    state = server.get_state()
    server.get("rows", type=pycrdt.Array).append(pycrdt.Map({"0": "server"}))
    guard.learn(server.get_update(state))  # as a room does for its own edits
    client.apply_update(server.get_update(client.get_state()))
    before = client.get_state()
    rows[10]["0"] = pycrdt.Map({"nested": "no"})  # a cell must be text: refused
    with pytest.raises(RejectedEditError, match="row 11: cells are column numbers"):
        guard.check(client.get_update(before))
    assert seen[-1][0] == 53
    fresh: pycrdt.Doc[Any] = pycrdt.Doc()  # the refused edit is gone from the client, as on reload
    fresh.apply_update(server.get_update())
    client, rows = fresh, fresh.get("rows", type=pycrdt.Array)
    send(lambda: rows[0].__setitem__("2", "z"))  # the copy was dropped: made again from the live one
    assert seen[-1] == (53, [Change("rows", (0,), keys=("2",))])
    assert codec.dump(server).splitlines()[0] == b"a,b,z"
