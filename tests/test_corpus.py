"""The list of corpus files the suite is collected from matches the corpus itself."""

from __future__ import annotations

import pytest

from .corpus import CORPUS, FILES, corpus_file


def test_the_list_names_every_corpus_file() -> None:
    on_disk = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md")
    assert on_disk == sorted(FILES), "tests/corpus.txt is out of date: list the files of the corpus"


def test_a_missing_corpus_file_fails_the_test() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"notebooks/not-there\.ipynb"):
        corpus_file("notebooks/not-there.ipynb")
