"""Where the real-world test data is, and which files it holds.

The corpus (real notebooks, nbdime's merge cases, keystroke traces: nobody on this project
wrote them) is copied into `fixtures/corpus/` with its licenses (see its README.md), so a
clone of the repository alone runs the whole suite. Tests are collected from the committed
list `corpus.txt`; a listed file that is missing fails its test loudly, never shrinks the
suite.

Kept free of heavy imports: the benchmarks use it too.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The one place tests and benchmarks find the corpus.
CORPUS = ROOT / "fixtures" / "corpus"

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


def corpus_file(rel: str) -> Path:
    """The corpus file `rel`, for a test; a missing one fails the test (the corpus ships
    with the repository)."""
    path = CORPUS / rel
    if not path.is_file():
        import pytest

        pytest.fail(f"test corpus file {rel} is missing from {CORPUS} (it ships with the repository)")
    return path


def nbdime_file(name: str) -> bytes:
    """The bytes of one of nbdime's test notebooks (`merge/nbdime/NAME`), for a test."""
    return corpus_file(f"merge/nbdime/{name}").read_bytes()


def nbdime_triples() -> list[str]:
    """The names NAME of nbdime's merge cases `NAME--1/2/3.ipynb` (base, local, remote)."""
    return sorted({name.rsplit("/", 1)[1].split("--")[0] for name in corpus_names("merge/nbdime", "*--3.ipynb")})
