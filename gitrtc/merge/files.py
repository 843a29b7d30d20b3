"""Three-way merge of whole files for the end-of-session commit when the branch moved.

Pure: bytes in, bytes out. Text goes through `git merge-file` (git's own line merge);
notebooks through nbdime's `merge_notebooks` with its inline conflict strategy. Either
way a conflict keeps both sides (markers), and the caller decides not to commit them
onto the branch.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import CommitError


@dataclass(frozen=True, slots=True)
class FileMerge:
    """A merged file and whether it holds conflict markers."""

    data: bytes
    conflicts: bool


def merge_file(path: str, base: bytes | None, ours: bytes | None, theirs: bytes) -> FileMerge:
    """Merge `theirs` (the session) into `ours` (the branch tip) against `base`."""
    if ours is None or base is None:
        # added on one side only, or both: identical adds merge, anything else conflicts
        return FileMerge(theirs, ours is not None and ours != theirs)
    from ..plugins.loader import merge3  # the kind that takes the file merges it

    return merge3(path, base, ours, theirs)


def merge_text(base: bytes, ours: bytes, theirs: bytes) -> FileMerge:
    """Git's line merge of three versions of a text (conflicts kept as markers)."""
    return _merge_text(base, ours, theirs)


def merge_notebook_bytes(base: bytes, ours: bytes, theirs: bytes) -> FileMerge | None:
    """The notebook kind's three-way merge (None when a side is not a notebook)."""
    return _merge_notebook(base, ours, theirs)


def _merge_text(base: bytes, ours: bytes, theirs: bytes) -> FileMerge:
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for label, data in (("branch", ours), ("base", base), ("session", theirs)):
            target = Path(tmp) / label
            target.write_bytes(data)
            names.append(str(target))
        done = subprocess.run(
            ["git", "merge-file", "-p", "-L", "branch", "-L", "base", "-L", "session", *names],
            capture_output=True,
            check=False,
        )
    if done.returncode < 0 or done.returncode > 127:
        raise CommitError(f"git merge-file failed: {done.stderr.decode(errors='replace').strip()}")
    return FileMerge(done.stdout, done.returncode != 0)


def _merge_notebook(base: bytes, ours: bytes, theirs: bytes) -> FileMerge | None:
    """nbdime's merge, or None when a side is not a notebook nbdime can read."""
    from ..documents.nbformat_import import nbformat  # before nbdime, which imports nbformat

    # isort: split
    from nbdime import merge_notebooks
    from nbdime.nbmergeapp import _build_arg_parser

    try:
        sides = [nbformat.reads(x.decode("utf-8"), as_version=4) for x in (base, ours, theirs)]
    except (ValueError, UnicodeDecodeError, nbformat.reader.NotJSONError):
        return None
    args = _build_arg_parser().parse_args(["", "", "", "--merge-strategy", "inline"])
    merged, decisions = merge_notebooks(*sides, args)
    text = json.dumps(merged, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return FileMerge(text.encode(), any(d.conflict for d in decisions))
