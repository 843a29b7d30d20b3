"""The built-in kinds, `text` and `notebook`, as plugin API kinds.

They are registered through the same entry-point code as installed plugins (see
`loader.BUILTIN`), and their functions are those of the API. Their `codec` is the
built-in codec itself (`TextCodec`, `NotebookCodec`), run in place: gitrtc trusts its
own code, and these are the hot paths.
"""

from __future__ import annotations

from typing import Any

import pycrdt

from ..documents import MAX_FILE_BYTES, Codec, NotebookCodec, TextCodec
from ..documents import open_codec as open_builtin
from ..errors import NotShareableError
from .api import DocumentKind, Merged


class TextKind(DocumentKind):
    """UTF-8 text (jupyter_ydoc's `YUnicode`: root `source` Text); takes any text file."""

    name = "text"
    roots = TextCodec.roots
    rendered_roots = TextCodec.rendered_roots

    def load(self, data: bytes, doc: pycrdt.Doc[Any]) -> None:
        _text(data).load_into(doc, None)

    def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
        return _text(original).dump(doc)

    def update(self, doc: pycrdt.Doc[Any], data: bytes, original: bytes) -> None:
        _text(original).apply_file(doc, data, None)

    def codec(self, path: str, data: bytes, max_bytes: int) -> Codec:
        return TextCodec(path, data, max_bytes)


class NotebookKind(DocumentKind):
    """nbformat 4 notebooks (`YNotebook`: roots `meta` Map, `cells` Array); a `.ipynb`
    that is not one is shared as text, with a warning saying why."""

    name = "notebook"
    patterns = ("*.ipynb",)
    roots = NotebookCodec.roots
    rendered_roots = NotebookCodec.rendered_roots

    def load(self, data: bytes, doc: pycrdt.Doc[Any]) -> None:
        _notebook(data).load_into(doc, None)

    def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
        return _notebook(original).dump(doc)

    def update(self, doc: pycrdt.Doc[Any], data: bytes, original: bytes) -> None:
        _notebook(original).apply_file(doc, data, None)

    def merge3(self, base: bytes, ours: bytes, theirs: bytes) -> Merged:
        """nbdime's notebook merge (`merge.files.merge_notebook_bytes`), git's line merge
        when a side is not a notebook."""
        from ..merge.files import merge_notebook_bytes, merge_text

        done = merge_notebook_bytes(base, ours, theirs) or merge_text(base, ours, theirs)
        return Merged(done.data, done.conflicts)

    def codec(self, path: str, data: bytes, max_bytes: int) -> Codec:
        return open_builtin(path, data, max_bytes)  # a notebook, or text with a warning


def _text(data: bytes) -> TextCodec:
    try:
        return TextCodec("text", data, MAX_FILE_BYTES)
    except NotShareableError as exc:
        raise ValueError(str(exc)) from None


def _notebook(data: bytes) -> NotebookCodec:
    try:
        return NotebookCodec("notebook.ipynb", data, MAX_FILE_BYTES)
    except NotShareableError as exc:
        raise ValueError(str(exc)) from None
