"""An `rtc join` folder's notebooks are written like the session's files, byte for byte.

A notebook codec writes its document like a reference file (key order, indentation,
one-string or list-of-lines sources). The session's codec adopts the formatting of each
save it merges from the owner's disk (and of the branch's version it merges when the
branch moved), so the owner's editor and the session agree; a join's codec starts from
the same original bytes but never adopts its own folder's saves (`mirror`). For the two
to stay equal after the owner's codec changed its reference, the session says so in the
notebook doc's `state` map (`FORMAT_KEY`: a digest of the reference's bytes, `announce`)
and the join fetches them (`GET /api/format/{room}`) and writes like them (`follow`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

from .disk import digest
from .documents.notebook import NotebookCodec

if TYPE_CHECKING:
    from .documents import Codec
    from .rooms import Room

__all__ = ["FORMAT_KEY", "announce", "session_merge", "wanted"]

#: The key of the session's formatting digest in a notebook doc's `state` map.
FORMAT_KEY = "rtc:format"


def announce(doc: Doc[Any], codec: NotebookCodec, original: bytes) -> None:
    """(inside the session's edit that merged a file) Record the digest of the file the
    session now writes the notebook like, if it changed (none recorded: the original)."""
    state = doc.get("state", type=Map)
    mark = digest(codec.format_bytes())
    if state.get(FORMAT_KEY, digest(original)) != mark:
        state[FORMAT_KEY] = mark


def session_merge(room: Room, codec: Codec, origin: object, original: bytes) -> Callable[[Callable[[], bool]], bool]:
    """The `edit` a session gives `conflicts.merge_later`: the room's attributed edit,
    which also announces a notebook's new formatting (the joins follow it)."""

    def run(apply: Callable[[], bool]) -> bool:
        changed: list[bool] = []

        def both() -> None:
            changed.append(apply())
            if isinstance(codec, NotebookCodec):
                announce(room.doc, codec, original)

        room.edit(both, origin)
        return bool(changed and changed[0])  # whether the file's content changed the document

    return run


def wanted(doc: Doc[Any], codec: NotebookCodec) -> str | None:
    """The session's formatting digest when the join's codec writes otherwise (then the
    join fetches `/api/format/{room}`); None when they agree or none is recorded."""
    mark = doc.get("state", type=Map).get(FORMAT_KEY)
    if not isinstance(mark, str) or mark == digest(codec.format_bytes()):
        return None
    return mark
