"""Document codecs: file bytes ⇄ a shared pycrdt Doc, lossless.

Each shared file gets a `Codec` from `open_codec`. The codec fills an empty doc from the
file (`load_into`), turns the doc back into file bytes (`dump`: an untouched doc gives
the original bytes exactly), and applies a later version of the file as minimal CRDT
operations (`apply_file`), so that concurrent edits and cursors survive.

Layouts are those of jupyter_ydoc / @jupyter/ydoc, so JupyterLab and any Yjs client can
read the rooms: text files use `YUnicode` (root `source` Text), `*.ipynb` files `YNotebook`.

Files larger than `MAX_FILE_BYTES` (20 MiB) are refused by default: pycrdt holds the
GIL while it encodes or applies a document, so a huge document would stall every room.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pycrdt

from ..errors import NotShareableError
from .notebook import NotebookCodec
from .text import TextCodec, decode_text

__all__ = ["MAX_FILE_BYTES", "Codec", "Kind", "NotebookCodec", "TextCodec", "open_codec"]

Kind = str  # "text", "notebook", or an installed plugin kind's name

#: Largest file (in bytes) `open_codec` accepts unless told otherwise: 20 MiB.
MAX_FILE_BYTES = 20 * 1024 * 1024


class Codec(Protocol):
    """Turns one file's bytes into a shared doc and back."""

    @property
    def kind(self) -> Kind:
        """Which kind of document this codec makes (`text` or `notebook`)."""
        ...

    @property
    def roots(self) -> Mapping[str, type]:
        """The document's layout: root name → pycrdt type (`Text`, `Array`, `Map`); a client
        may write these roots and `state` (session state, never rendered), no others."""
        ...

    @property
    def rendered_roots(self) -> frozenset[str]:
        """The roots rendered into the file: edits elsewhere earn no co-author credit."""
        ...

    warnings: list[str]
    """Non-fatal notes to show the user (e.g. "does not validate: …")."""

    def load_into(self, doc: pycrdt.Doc[Any], origin: object) -> None:
        """Fill an EMPTY doc from the file, in one transaction with `origin`."""
        ...

    def dump(self, doc: pycrdt.Doc[Any]) -> bytes:
        """The file bytes the doc stands for."""
        ...

    def apply_file(self, doc: pycrdt.Doc[Any], data: bytes, origin: object, base: bytes | None = None) -> bool:
        """Apply a new version of the file as minimal operations (one transaction); True if the doc changed.

        Without `base` the doc becomes the file (edits it got that the file lacks are
        undone). With `base`, the file content the doc last agreed with (the bytes last
        written or read), only the change base → data is merged in and the doc's newer
        edits are kept: use that for out-of-band edits of a live document.
        """
        ...


def open_codec(path: str, data: bytes, max_bytes: int = MAX_FILE_BYTES) -> Codec:
    """The codec for a file, picked by extension and content.

    `*.ipynb` files that are nbformat-4 notebooks are shared as notebooks; any other
    `.ipynb` (older nbformat, broken JSON, a structure notebook editors cannot show) is
    shared as text with a warning saying why. Raises NotShareableError (one line: what
    and why) for files over `max_bytes` (default `MAX_FILE_BYTES`, 20 MiB), binary files
    (a NUL byte) and files that are not UTF-8.
    """
    decode_text(path, data, max_bytes)  # size, binary and encoding problems are final
    if path.lower().endswith(".ipynb"):
        try:
            return NotebookCodec(path, data, max_bytes)
        except NotShareableError as exc:  # not a notebook we can share: keep it as text
            text = TextCodec(path, data, max_bytes)
            text.warnings.append(f"{exc}; shared as plain text")
            return text
    return TextCodec(path, data, max_bytes)
