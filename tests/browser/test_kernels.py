"""Running cells from the browser: Shift-Enter in one browser, the output in another."""

from __future__ import annotations

import json

import pytest

from ..support import git
from .conftest import expect, join, wait_for
from .helpers import NOTEBOOK

pytestmark = pytest.mark.browser


def test_shift_enter_runs_the_cell_for_everyone(start_session, people):
    session = start_session({"analysis.ipynb": NOTEBOOK}, ["analysis.ipynb", "--kernels"])
    ada = join(people.page(), session.url_for("analysis.ipynb"), "Ada", "ada@example.org")
    bob = join(people.page(), session.url_for("analysis.ipynb"), "Bob", "bob@example.org")
    expect(bob.locator(".kernel-notice")).to_have_text("Code runs on Owner Person's machine.")

    ada.click(".cell[data-cell-id=load] .cm-content")
    ada.keyboard.press("Control+End")
    ada.keyboard.type("\nprint('from Ada')")
    ada.keyboard.press("Shift+Enter")
    out = bob.locator(".cell[data-cell-id=load] .cell-outputs")
    expect(out).to_contain_text("from Ada", timeout=60_000)
    expect(bob.locator(".cell[data-cell-id=load]")).to_have_attribute("data-run-by", "Ada")
    expect(bob.locator(".cell[data-cell-id=load]")).to_have_attribute("data-run-state", "done")
    # Shift-Enter moved Ada on to the next cell
    wait_for(
        ada,
        lambda: ada.evaluate("document.activeElement.closest('.cell')?.dataset.cellId") == "total",
        "the focus on the next cell",
    )

    session.stop("ran in the browser")
    saved = json.loads(git(session.repo, "show", "HEAD:analysis.ipynb"))
    load = next(c for c in saved["cells"] if c["id"] == "load")
    assert "".join(load["outputs"][0]["text"]) == "loaded\nfrom Ada\n"


def test_private_kernel_and_input_prompt(start_session, people):
    session = start_session({"analysis.ipynb": NOTEBOOK}, ["analysis.ipynb", "--kernels"])
    ada = join(people.page(), session.url_for("analysis.ipynb"), "Ada", "ada@example.org")
    bob = join(people.page(), session.url_for("analysis.ipynb"), "Bob", "bob@example.org")

    bob.check(".kernel-private")
    expect(bob.locator(".kernel-message")).to_have_text("")
    bob.click(".cell[data-cell-id=total] .cm-content")
    bob.keyboard.press("Control+a")
    bob.keyboard.type("print('secret', input('word? '))")
    bob.keyboard.press("Shift+Enter")
    prompt = bob.locator(".cell[data-cell-id=total] .kernel-stdin")
    expect(prompt).to_contain_text("word?", timeout=60_000)
    prompt.locator("input").fill("swordfish")
    prompt.locator("input").press("Enter")
    private = bob.locator(".cell[data-cell-id=total] .cell-private-outputs")
    expect(private).to_contain_text("secret swordfish", timeout=60_000)
    expect(bob.locator(".kernel-status")).to_have_attribute("data-scope", "private")
    # the shared document and the other browser never see it
    expect(ada.locator(".cell[data-cell-id=total] .cell-outputs")).to_contain_text("6")
    assert "swordfish" not in ada.content()
    expect(ada.locator(".kernel-stdin")).to_have_count(0)
    # switching back drops the private outputs
    bob.uncheck(".kernel-private")
    expect(bob.locator(".cell-private-outputs")).to_have_count(0)
