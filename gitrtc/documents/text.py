"""Text files ⇄ the `YUnicode` layout of jupyter_ydoc (root `source` Text, root `state` Map).

The file's characters are the document, exactly: a BOM is kept as U+FEFF, CRLF stays
CRLF, no trailing newline stays none. `dump` of an untouched doc is the original bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import pycrdt

from ..errors import DocumentError, NotShareableError
from .text_ops import apply_text, rebase_text

__all__ = ["TextCodec", "decode_text"]


def decode_text(path: str, data: bytes, max_bytes: int) -> str:
    """The file's text; NotShareableError if it is too large, binary or not UTF-8."""
    if len(data) > max_bytes:
        raise NotShareableError(f"{path}: {len(data)} bytes is over the {max_bytes}-byte limit for shared files")
    if b"\0" in data:
        raise NotShareableError(f"{path}: binary file (contains NUL bytes); only text files can be shared")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotShareableError(
            f"{path}: not UTF-8 (invalid byte at offset {exc.start}); only UTF-8 text can be shared"
        ) from None


class TextCodec:
    """A UTF-8 text file as a `YUnicode` document."""

    kind: Literal["text"] = "text"
    #: jupyter_ydoc's `YUnicode` layout: the root types a client may write, all rendered.
    roots: ClassVar[Mapping[str, type]] = {"source": pycrdt.Text}
    rendered_roots: ClassVar[frozenset[str]] = frozenset({"source"})

    def __init__(self, path: str, data: bytes, max_bytes: int) -> None:
        """Decode the file; NotShareableError (one line) if it is too large, binary or not UTF-8."""
        self.path = path
        self.max_bytes = max_bytes
        self.warnings: list[str] = []
        self._text = decode_text(path, data, max_bytes)

    def load_into(self, doc: pycrdt.Doc[Any], origin: object) -> None:
        """Fill an empty doc with the file's text, in one transaction with `origin`."""
        source = _roots(doc)
        if len(source):
            raise ValueError(f"{self.path}: load_into needs an empty document")
        with doc.transaction(origin=origin):
            if self._text:
                source += self._text

    def dump(self, doc: pycrdt.Doc[Any]) -> bytes:
        """The file bytes the doc stands for."""
        return str(_roots(doc)).encode("utf-8")

    def apply_file(self, doc: pycrdt.Doc[Any], data: bytes, origin: object, base: bytes | None = None) -> bool:
        """Apply a new version of the file as minimal text edits; True if the doc changed.

        Without `base` the doc becomes the new text. With `base` (the file as the doc last
        agreed with it, e.g. the bytes last written) only the change base → data is
        brought in, mapped through what the doc changed since (both kept where they
        overlap). DocumentError (and no change) if the bytes are not shareable text.
        """
        text = self._decode(data)
        old = None if base is None else self._decode(base)
        source = _roots(doc)
        with doc.transaction(origin=origin):
            return apply_text(source, text) if old is None else rebase_text(source, old, text)

    def _decode(self, data: bytes) -> str:
        try:
            return decode_text(self.path, data, self.max_bytes)
        except NotShareableError as exc:
            raise DocumentError(str(exc)) from None


def _roots(doc: pycrdt.Doc[Any]) -> pycrdt.Text:
    doc.get("state", type=pycrdt.Map)
    source: pycrdt.Text = doc.get("source", type=pycrdt.Text)
    return source
