"""The list of corpus files the suite is collected from matches the corpus itself."""

from __future__ import annotations

import pytest

from .corpus import CORPUS, FILES, corpus_file


def test_the_list_names_every_corpus_file() -> None:
    corpus_file(FILES[0])  # without the corpus here: skips, or fails where it is required
    on_disk = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p.parent != CORPUS)
    assert on_disk == sorted(FILES), "tests/corpus.txt is out of date: list the files of the corpus"


def test_a_missing_corpus_file_fails_the_test_where_the_corpus_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRTC_REQUIRE_CORPUS", "1")
    with pytest.raises(pytest.fail.Exception, match=r"notebooks/not-there\.ipynb"):
        corpus_file("notebooks/not-there.ipynb")
