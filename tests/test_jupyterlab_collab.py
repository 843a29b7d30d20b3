"""gitrtc's JupyterLab extension beside JupyterLab's own collaboration package
(jupyter-collaboration), in a real JupyterLab driven by Chromium.

JupyterLab runs from `.venv/collab` (scripts/setup: .venv plus jupyter-collaboration)
with both server extensions. What each side does is in docs/jupyter.md: ordinary files
open in jupyter-collaboration's rooms, shared ones in the session's, and the two never
hold the same document. The flows are those of tests/test_jupyterlab.py, run again here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from . import test_jupyterlab as plain
from .support import ROOT, RtcProcess

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e '.[test]')")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from .labsupport import Lab, expect

pytestmark = pytest.mark.browser

COLLAB_PYTHON = ROOT / ".venv" / "collab" / "bin" / "python"
page = plain.page  # the same fixtures, on this module's `lab`
other_session = plain.other_session


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not COLLAB_PYTHON.exists():
        pytest.skip(f"{COLLAB_PYTHON} not found: scripts/setup makes it (jupyter-collaboration)")
    yield from plain.serve_lab(tmp_path_factory, str(COLLAB_PYTHON))


def test_jupyter_collaboration_serves_ordinary_files_in_its_own_rooms(lab: Lab, page: Any) -> None:
    """Both extensions load, and a file nobody shares opens in jupyter-collaboration's
    collaborative drive (its `RTC:` documents), as JupyterLab without gitrtc would."""
    plain.open_lab(page, lab, "collab")
    loaded = page.evaluate(
        "['@jupyter/docprovider-extension:content-provider', '@jupyter/collaboration-extension:userMenu']"
        ".map(id => window.jupyterapp.isPluginActivated(id))"
    )
    assert loaded == [True, True]
    page.locator(".jp-DirListing-item", has_text="other.txt").dblclick()
    editor = page.locator(".jp-FileEditor .cm-content").first
    expect(editor).to_have_text("not shared")
    model = page.evaluate("window.jupyterapp.shell.currentWidget.context.model.collaborative")
    assert model is True
    expect(page.locator(".gitrtc-StatusItem")).to_have_count(1)  # gitrtc's extension is there too
    assert not page.errors, page.errors


def test_with_jupyter_collaboration_the_owner_shares_and_ends_with_one_commit(lab: Lab, page: Any) -> None:
    plain.test_owner_shares_from_jupyterlab_sees_edits_live_and_ends_with_one_commit(lab, page)


def test_with_jupyter_collaboration_jupyterlab_joins_a_session_edits_and_runs(
    lab: Lab, page: Any, other_session: RtcProcess
) -> None:
    plain.test_jupyterlab_joins_a_session_by_url_edits_and_runs_with_its_own_kernel(lab, page, other_session)
