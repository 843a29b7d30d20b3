"""Three-way merge of file bytes: git's line merge for text, nbdime's for notebooks.

Used when a file changed on disk while the document also changed since the two last
agreed: the disk's change is merged against that common base instead of being diffed
against the live document (which would undo the others' unsaved edits).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pycrdt

from ..documents import Codec


@dataclass(frozen=True, slots=True)
class Merged:
    """A merge result; `conflicts` is True when markers had to be written into it."""

    data: bytes
    conflicts: bool


def merge3(path: str, base: bytes, ours: bytes, theirs: bytes) -> Merged:
    """Merge `theirs` into `ours` against `base`; both sides are always kept."""
    if path.lower().endswith(".ipynb"):
        try:
            return _merge_notebooks(base, ours, theirs)
        except (ValueError, KeyError):
            pass  # not notebooks nbdime can read: fall back to a line merge
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for label, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            target = Path(tmp) / label
            target.write_bytes(data)
            names.append(str(target))
        done = subprocess.run(["git", "merge-file", "-p", "-L", "session", "-L", "base", "-L", "disk", *names],
                              capture_output=True, check=False)
    if done.returncode < 0 or done.returncode > 127:
        raise OSError(f"git merge-file failed: {done.stderr.decode(errors='replace').strip()}")
    return Merged(done.stdout, done.returncode != 0)


def _merge_notebooks(base: bytes, ours: bytes, theirs: bytes) -> Merged:
    import nbformat
    from nbdime import merge_notebooks

    def read(data: bytes) -> nbformat.NotebookNode:
        return nbformat.reads(data.decode("utf-8"), as_version=4)

    from nbdime.nbmergeapp import _build_arg_parser

    args = _build_arg_parser().parse_args(["", "", "", "--merge-strategy", "inline"])
    merged, decisions = merge_notebooks(read(base), read(ours), read(theirs), args)
    return Merged((nbformat.writes(merged) + "\n").encode(), any(d.conflict for d in decisions))


def merge_file_into(codec: Codec, doc: pycrdt.Doc, base: bytes | None, new: bytes, origin: object) -> bool:
    """Bring a file's new bytes into `doc`, keeping edits the doc gained since `base`.

    Returns True when conflict markers had to be merged in (both sides are kept).
    """
    current = codec.dump(doc)
    if base is None or current == base or new == current:
        codec.apply_file(doc, new, origin)
        return False
    result = merge3(getattr(codec, "path", ""), base, current, new)
    codec.apply_file(doc, result.data, origin)
    return result.conflicts
