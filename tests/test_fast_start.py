"""`rtc start`'s one import seam: nbformat without jsonschema's IRI grammar, and no lasting mark."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import {first}
import gitrtc.documents, gitrtc.merge.files, gitrtc.server, nbdime, jupyter_ydoc
print(json.dumps({{"loaded": sorted(sys.modules), "marked": "rfc3987_syntax" in sys.modules}}))
"""


@pytest.mark.parametrize(
    "first", ["gitrtc", "gitrtc.documents", "gitrtc.merge", "gitrtc.merge.files", "gitrtc.cli.runner"]
)
def test_nbformat_is_imported_without_the_iri_grammar_whatever_comes_first(first: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)], capture_output=True, text=True, timeout=120, check=True
    )
    found = json.loads(done.stdout)
    assert {"nbformat", "jsonschema", "gitrtc.documents.nbformat_import"} <= set(found["loaded"])
    assert "lark" not in found["loaded"]  # rfc3987_syntax builds its grammar with lark: 2.3 s
    assert not found["marked"]  # nothing left in sys.modules: others may still import it


def test_importing_gitrtc_changes_nothing_in_sys_modules() -> None:
    probe = "import sys; before = set(sys.modules); import gitrtc; print(sorted(set(sys.modules) - before))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout.replace("'", '"')) == ["gitrtc"]
