"""Two people in two browsers edit the same Markdown file and the same notebook cell at
the same time; everyone (both pages, a pycrdt client, the owner's file on disk) converges."""

from __future__ import annotations

import json

import pytest

from .conftest import expect, join, screenshot, snapshot, wait_for
from .helpers import NOTEBOOK, README, read_cells, read_text, source

pytestmark = pytest.mark.browser


def interleave(a_page, a_text: str, b_page, b_text: str) -> None:
    """Type two strings key by key, alternating between the pages, without waiting for
    either to sync: the edits cross on the wire."""
    for i in range(max(len(a_text), len(b_text))):
        if i < len(a_text):
            a_page.keyboard.type(a_text[i])
        if i < len(b_text):
            b_page.keyboard.type(b_text[i])


def test_two_browsers_converge_on_markdown_and_a_notebook_cell(start_session, people):
    session = start_session({"README.md": README, "analysis.ipynb": NOTEBOOK})
    ada = join(people.page(), session.url_for("README.md"), "Ada", "ada@example.org")
    bob = join(people.page(), session.url_for("README.md"), "Bob")

    # --- the same Markdown file ---------------------------------------------
    ada.click(".doc-text .cm-content")
    ada.keyboard.press("Control+End")
    bob.click(".doc-text .cm-content")
    bob.keyboard.press("Control+Home")
    interleave(ada, "Ada was here.", bob, "Bob: ")
    expected = "Bob: " + README + "Ada was here."
    wait_for(ada, lambda: snapshot(ada, "README.md") == expected, "Ada's page to converge")
    wait_for(bob, lambda: snapshot(bob, "README.md") == expected, "Bob's page to converge")
    assert read_text(session, "README.md", expected) == expected
    readme = session.repo / "README.md"
    wait_for(ada, lambda: readme.read_text() == expected, "the owner's README.md on disk")
    # each sees the other's cursor, labelled with the name
    expect(ada.locator(".doc-text .cm-ySelectionInfo", has_text="Bob")).to_have_count(1)
    expect(bob.locator(".doc-text .cm-ySelectionInfo", has_text="Ada")).to_have_count(1)
    # and the other in the participants list
    expect(ada.locator(".people .person[data-name=Bob]")).to_contain_text("README.md")
    screenshot(ada, "two-people-markdown")

    # --- the same notebook cell ----------------------------------------------
    for page in (ada, bob):
        page.click(".file[data-path='analysis.ipynb']")
        expect(page.locator(".doc-notebook")).to_have_attribute("data-ready", "true")
    cell = ".cell[data-cell-id=total] .cm-content"
    ada.click(cell)
    ada.keyboard.press("Control+End")
    bob.click(cell)
    bob.keyboard.press("Control+Home")
    interleave(ada, "  # by Ada", bob, "answer = ")
    expected_cell = "answer = sum(data)  # by Ada"

    def cell_source(cells: list[dict]) -> str:
        return next(source(c) for c in cells if c["id"] == "total")

    wait_for(ada, lambda: cell_source(snapshot(ada, "analysis.ipynb")) == expected_cell, "Ada's cell")
    wait_for(bob, lambda: cell_source(snapshot(bob, "analysis.ipynb")) == expected_cell, "Bob's cell")
    assert cell_source(read_cells(session, "analysis.ipynb")) == expected_cell
    expect(ada.locator(".cell[data-cell-id=total] .cm-ySelectionInfo", has_text="Bob")).to_have_count(1)
    screenshot(ada, "two-people-notebook")

    nb_path = session.repo / "analysis.ipynb"
    wait_for(
        ada,
        lambda: cell_source(json.loads(nb_path.read_text())["cells"]) == expected_cell,
        "the owner's notebook on disk",
    )
    on_disk = json.loads(nb_path.read_text())
    original = json.loads(NOTEBOOK)
    assert [c["id"] for c in on_disk["cells"]] == [c["id"] for c in original["cells"]]
    assert on_disk["cells"][2]["outputs"] == original["cells"][2]["outputs"]
    assert not ada.errors and not bob.errors, ada.errors + bob.errors


def test_undo_only_undoes_your_own_edits(start_session, people):
    session = start_session({"README.md": README})
    ada = join(people.page(), session.url_for("README.md"), "Ada")
    bob = join(people.page(), session.url_for("README.md"), "Bob")
    ada.click(".doc-text .cm-content")
    ada.keyboard.press("Control+End")
    ada.keyboard.type("mine")
    wait_for(bob, lambda: snapshot(bob, "README.md") == README + "mine", "Ada's edit at Bob")
    bob.click(".doc-text .cm-content")
    bob.keyboard.press("Control+Home")
    bob.keyboard.type("theirs ")
    both = "theirs " + README + "mine"
    wait_for(ada, lambda: snapshot(ada, "README.md") == both, "Bob's edit at Ada")
    ada.click(".doc-text .cm-content")
    ada.keyboard.press("Control+z")
    wait_for(bob, lambda: snapshot(bob, "README.md") == "theirs " + README, "Ada's undo at Bob")
    assert snapshot(ada, "README.md") == "theirs " + README


def test_follow_a_participant(start_session, people):
    session = start_session({"README.md": README, "src/tool.py": "def tool():\n    return 1\n" * 60})
    ada = join(people.page(), session.url_for("README.md"), "Ada")
    bob = join(people.page(), session.url_for("README.md"), "Bob")
    ada.click(".people .person[data-name=Bob] button.follow")
    expect(ada.locator(".people .person[data-name=Bob] button.follow")).to_have_attribute("aria-pressed", "true")
    bob.click(".file[data-path='src/tool.py']")
    expect(bob.locator(".doc-text[data-path='src/tool.py']")).to_have_attribute("data-ready", "true")
    bob.click(".doc-text[data-path='src/tool.py'] .cm-content")
    bob.keyboard.press("Control+End")
    # Ada's view jumps to Bob's file and to the end of it, where his cursor is
    expect(ada.locator(".file.active")).to_have_attribute("data-path", "src/tool.py")
    expect(ada.locator(".doc-text[data-path='src/tool.py'] .cm-line", has_text="return 1").last).to_be_in_viewport()
    expect(ada.locator(".doc-text[data-path='src/tool.py'] .cm-ySelectionInfo", has_text="Bob")).to_be_visible()
