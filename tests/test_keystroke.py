"""The update check's keystroke shortcuts (`gitrtc/keystroke.py`) decide exactly as the full
check does, and are the path typing takes. Real traces from the corpus, real pycrdt updates."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Text

from gitrtc.documents import open_codec
from gitrtc.errors import ProtocolError, RejectedEditError
from gitrtc.origins import DiskLoad
from gitrtc.validation import DocumentGuard

from .corpus import corpus_file

TRACES = ["traces/automerge-paper.json.gz", "traces/seph-blog1.json.gz", "traces/friendsforever_flat.json.gz"]
EDITS = 6000  # per trace: thousands of keystrokes, a few seconds


def trace_patches(name: str, limit: int = EDITS) -> list[tuple[int, int, str]]:
    data = json.loads(gzip.open(corpus_file(name)).read())
    out: list[tuple[int, int, str]] = []
    for txn in data["txns"]:
        out.extend((pos, ndel, ins) for pos, ndel, ins in txn["patches"])
        if len(out) >= limit:
            break
    return out[:limit]


def typists(patches: list[tuple[int, int, str]], count: int) -> list[bytes]:
    """The trace typed by `count` participants taking turns of 40 edits (each sees the others' edits
    at once), one update per edit, as their clients send them."""
    docs = [Doc() for _ in range(count)]
    updates: list[bytes] = []
    local: list[bytes] = []
    for doc in docs:
        doc.observe(lambda event: local.append(event.update))
    for i, (pos, ndel, ins) in enumerate(patches):
        doc = docs[(i // 40) % count]  # turns of 40 edits
        text = doc.get("source", type=Text)
        with doc.transaction():
            pos = min(pos, len(text))
            if ndel:
                del text[pos : min(pos + ndel, len(text))]
            if ins:
                text.insert(pos, ins)
        update = local[0]  # what the client sends: its transaction's update
        local.clear()
        updates.append(update)
        for other in docs:
            if other is not doc:
                other.apply_update(update)
        local.clear()
    return updates


def outcome(check: Callable[[bytes], Any], update: bytes) -> tuple[Any, ...]:
    """What a check makes of `update`: its decision, or the error it refuses it with."""
    try:
        checked = check(update)
    except (RejectedEditError, ProtocolError) as exc:
        return (type(exc).__name__, str(exc))
    return (checked.items, checked.credit, checked.structural, checked.growth)


def replay(guard: DocumentGuard, updates: list[bytes]) -> None:
    """Feed `updates` through the guard as `Room.receive` does, comparing each decision
    of the shortcuts with the full check's."""
    for update in updates:
        full = outcome(guard.check_fully, update)
        checked = None
        try:
            checked = guard.check(update)
        except (RejectedEditError, ProtocolError) as exc:
            assert (type(exc).__name__, str(exc)) == full
        if checked is not None:
            assert (checked.items, checked.credit, checked.structural, checked.growth) == full
            guard.doc.apply_update(update)
            guard.accept(checked)


def text_guard() -> DocumentGuard:
    doc: Doc[Any] = Doc()
    return DocumentGuard(doc, open_codec("t.txt", b""), "t.txt")


@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize("count", [1, 3])
def test_the_shortcuts_decide_as_the_full_check_on_real_traces(trace: str, count: int) -> None:
    """One typist (W1) and three taking turns: every update's decision is the full check's,
    and nearly every keystroke and deletion takes a shortcut."""
    patches = trace_patches(trace)
    guard = text_guard()
    replay(guard, typists(patches, count))
    typed = sum(1 for _pos, ndel, ins in patches if ins and not ndel)
    deleted = sum(1 for _pos, ndel, ins in patches if ndel and not ins)
    assert guard.keystrokes.hits >= 0.7 * typed
    assert guard.keystrokes.deletions >= 0.8 * deleted  # a range of several typists: the full check
    assert guard.doc.get("source", type=Text).to_py() == typists_text(patches)


def typists_text(patches: list[tuple[int, int, str]]) -> str:
    text = ""
    for pos, ndel, ins in patches:
        pos = min(pos, len(text))
        text = text[:pos] + ins + text[pos + ndel :]
    return text


def test_typing_into_a_notebook_takes_the_shortcuts_and_structure_does_not() -> None:
    """In a notebook, typing and backspace in a cell take the shortcuts; deleting a cell
    (structure) still gets the whole notebook checked."""
    path = corpus_file("notebooks/nbformat/test4.ipynb")
    codec = open_codec("nb.ipynb", path.read_bytes())
    server: Doc[Any] = Doc()
    codec.load_into(server, DiskLoad("nb.ipynb"))
    guard = DocumentGuard(server, codec, "nb.ipynb")
    guard.learn(server.get_update())
    client: Doc[Any] = Doc()
    client.apply_update(server.get_update())
    updates: list[bytes] = []
    client.observe(lambda event: updates.append(event.update))
    cells = client.get("cells", type=Array)
    source = cells[0]["source"]
    for ch in "typed é 📊 into a cell":
        source.insert(len(source), ch)
    for _ in range(5):
        del source[len(source) - 1]
    replay(guard, updates)
    assert guard.keystrokes.hits >= 20 and guard.keystrokes.deletions == 5
    hits, deletions = guard.keystrokes.hits, guard.keystrokes.deletions
    version = guard.version
    updates.clear()
    del cells[len(cells) - 1]
    replay(guard, updates)
    assert guard.version > version  # checked as structure
    # read as a deletion, then left to the full check
    assert (guard.keystrokes.hits, guard.keystrokes.deletions) == (hits, deletions + 1)


KEYSTROKES = typists(trace_patches(TRACES[0], 400), 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    at=st.integers(min_value=0, max_value=len(KEYSTROKES) - 1),
    changes=st.lists(st.tuples(st.integers(min_value=0, max_value=63), st.integers(0, 255)), min_size=1, max_size=3),
    cut=st.integers(min_value=-3, max_value=0),
)
def test_a_damaged_keystroke_is_refused_or_accepted_as_the_full_check_decides(
    at: int, changes: list[tuple[int, int]], cut: int
) -> None:
    """Bytes of a real keystroke changed (its ids, kind, length, text, a truncated or
    lengthened end), right where the shortcut expects the typist's next one."""
    guard = text_guard()
    replay(guard, KEYSTROKES[:at])
    damaged = bytearray(KEYSTROKES[at])
    for index, value in changes:
        damaged[index % len(damaged)] = value
    update = bytes(damaged[: len(damaged) + cut] if cut else damaged)
    assert outcome(guard.check, update) == outcome(guard.check_fully, update)


def test_a_keystroke_sent_again_leaves_the_typist_on_the_shortcut() -> None:
    """A client re-sending an earlier keystroke: it is recorded already, so the index keeps
    one range for the run (an overlapping one hid the rest of the run from look-ups, and
    every later keystroke of that typist took the full check); every decision is still
    the full check's."""
    guard = text_guard()
    replay(guard, KEYSTROKES[:40])
    hits = guard.keystrokes.hits
    replay(guard, [KEYSTROKES[20], *KEYSTROKES[40:60]])  # an old one again, then typing goes on
    assert guard.keystrokes.hits >= hits + 15
