"""The soak run (benchmarks/soak.py), short; marked `soak`, so not in the default suite:
`.venv/bin/pytest -m soak`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from .support import ROOT, make_repo


@pytest.mark.soak
@pytest.mark.timeout(600)
def test_soak_clients_converge_with_the_commit(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import soak

    repo = make_repo(tmp_path / "soak", {"notes.md": "# Notes\n", "nb.ipynb": soak.NOTEBOOK})
    figures = asyncio.run(soak.soak(clients=24, seconds=45, seed=7, repo=repo))
    assert figures["mismatches"] == []
    assert figures["edits"] > 1000 and figures["reconnects"] > 0
