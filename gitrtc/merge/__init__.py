"""Merging changes into shared documents.

`text_ops` turns a new text into the fewest edits of a pycrdt `Text`; `notebook_ops`
turns a new notebook into the fewest YNotebook operations, using nbdime's alignment of
cells and outputs. Both decide first (pure functions), then apply in the caller's
transaction, so concurrent edits by others and their cursors survive.
"""

from __future__ import annotations

from .notebook_ops import apply_notebook
from .text_ops import apply_text, text_edits

__all__ = ["apply_notebook", "apply_text", "text_edits"]
