"""Where the real-world test data is, and which files it holds.

The corpus (real notebooks, nbdime's merge cases, keystroke traces: nobody on this project
wrote them) is read in place from `../shared/corpus`, never copied into the project
(`../shared/corpus/README.md`). Tests are collected from the committed list `corpus.txt`,
so the suite has the same tests whether or not the corpus is here: without it each of them
skips saying where it looked, and where the corpus is required (`GITRTC_REQUIRE_CORPUS=1`,
as `scripts/test` sets) or present but missing a file, it fails.

Kept free of heavy imports: the benchmarks use it too.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checkout_roots() -> list[Path]:
    """This checkout's root and, for a git worktree, the root of its main checkout."""
    roots = [ROOT]
    dotgit = ROOT / ".git"
    if dotgit.is_file():  # a worktree: `.git` says "gitdir: MAIN/.git/worktrees/NAME"
        gitdir = Path(dotgit.read_text().removeprefix("gitdir:").strip())
        common = gitdir / (gitdir / "commondir").read_text().strip() if (gitdir / "commondir").is_file() else gitdir
        roots.append(common.resolve().parent)
    return roots


def _find_corpus() -> Path:
    """`$GITRTC_CORPUS`, else the first `../shared/corpus` beside a checkout root."""
    if os.environ.get("GITRTC_CORPUS"):
        return Path(os.environ["GITRTC_CORPUS"]).resolve()
    candidates = [root.parent / "shared" / "corpus" for root in _checkout_roots()]
    return next((c for c in candidates if c.is_dir()), candidates[0])


#: The one place tests and benchmarks find the corpus.
CORPUS = _find_corpus()

#: The corpus's files (paths relative to CORPUS), from the committed list.
FILES = tuple(
    line
    for line in Path(__file__).with_name("corpus.txt").read_text().splitlines()
    if line and not line.startswith("#")
)


def corpus_names(folder: str, pattern: str = "*") -> list[str]:
    """The listed files directly in `folder` (e.g. "merge/nbdime") whose name matches `pattern`."""
    prefix = folder.rstrip("/") + "/"
    return [
        f
        for f in FILES
        if f.startswith(prefix) and "/" not in f[len(prefix) :] and fnmatch.fnmatchcase(f[len(prefix) :], pattern)
    ]


def missing_message(rel: str) -> str:
    """What a test says when the corpus file `rel` is not where it looked."""
    return (
        f"test corpus file {rel} is not at {CORPUS}: the corpus is read from ../shared/corpus "
        f"beside the project (see its README.md), or from $GITRTC_CORPUS"
    )


def corpus_file(rel: str) -> Path:
    """The corpus file `rel`, for a test: skip when the whole corpus is absent here (and not
    required); fail when it is required, or present but without this file."""
    import pytest

    path = CORPUS / rel
    if path.is_file():
        return path
    if CORPUS.is_dir() or os.environ.get("GITRTC_REQUIRE_CORPUS") == "1":
        pytest.fail(missing_message(rel))
    pytest.skip(missing_message(rel))


def nbdime_file(name: str) -> bytes:
    """The bytes of one of nbdime's test notebooks (`merge/nbdime/NAME`), for a test."""
    return corpus_file(f"merge/nbdime/{name}").read_bytes()


def nbdime_triples() -> list[str]:
    """The names NAME of nbdime's merge cases `NAME--1/2/3.ipynb` (base, local, remote)."""
    return sorted({name.rsplit("/", 1)[1].split("--")[0] for name in corpus_names("merge/nbdime", "*--3.ipynb")})
