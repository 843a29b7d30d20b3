"""What a keystroke and a cursor move cost in a notebook, structurally (issue 18: 16 ms
per key on a 464-cell notebook; benchmarks/editor.py measures the time): typing into one
cell, and another person typing and moving their cursor in another, do no work in the
other cells (no render, no editor update, no gutter redraw), counted through the page's
debug counters (web/src/debug.ts, window.__gitrtcCounts)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import expect, snapshot
from .helpers import room_url
from .test_notebook_lazy import Person, cell_source

pytestmark = pytest.mark.browser

CELLS = 8


def notebook() -> str:
    cells = [
        {
            "cell_type": "code",
            "execution_count": i + 1,
            "id": f"c{i}",
            "metadata": {},
            "outputs": [{"name": "stdout", "output_type": "stream", "text": [f"out {i}\n"]}],
            "source": [f"x{i} = {i}\n", f"y{i} = x{i} * 2\n", f"print(y{i})"],
        }
        for i in range(CELLS)
    ]
    nb = {
        "cells": cells,
        "metadata": {"language_info": {"name": "python", "file_extension": ".py"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1) + "\n"


def counts(page: Any) -> dict[str, dict[str, int]]:
    return page.evaluate("window.__gitrtcCounts.read()")


def test_typing_in_one_cell_does_no_work_in_the_others(start_session, people):
    session = start_session({"big.ipynb": notebook()})
    page = people.page(viewport={"width": 1280, "height": 1400})
    page.add_init_script("localStorage.setItem('gitrtc.identity', JSON.stringify({name: 'Ada'}))")
    page.goto(session.url_for("big.ipynb"))
    nb = page.locator(".doc-notebook")
    expect(nb).to_have_attribute("data-ready", "true")
    # every cell is near the visible area: each has its editor (the case where a remote
    # cursor used to redraw every editor)
    expect(nb.locator(".cell .cm-editor")).to_have_count(CELLS)
    bob = Person(room_url(session, "big.ipynb", "Bob"), "Bob")
    try:
        mine = page.locator(".cell[data-cell-id=c5] .cm-content")
        mine.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("#")
        cell_source(session, "c5", "#")
        page.evaluate("window.__gitrtcCounts.reset()")

        # Ada types into c5 while Bob types into c2 and moves his cursor there
        page.keyboard.type(" ada")
        bob.insert("c2", "bob = 1\n")
        bob.point_into_own_text(3)
        page.keyboard.type(" types")
        bob.point_into_own_text(5)
        bobs = page.locator(".cell[data-cell-id=c2]")
        expect(bobs.locator(".presence-tag[title='Bob is here']")).to_have_count(1)
        expect(bobs.locator(".cm-ySelectionInfo")).to_have_count(1)
        shown = {c["id"]: c["source"] for c in snapshot(page, "big.ipynb")}
        assert shown["c2"].startswith("bob = 1\n"), shown["c2"]
        assert cell_source(session, "c5", "# ada types").endswith("# ada types")

        got = counts(page)
        # the two cells in play did work (the counters count)
        assert got["editor"].get("c5", 0) >= len(" ada types"), got
        assert got["editor"].get("c2", 0) >= 1, got
        assert got["presence"].get("c2", 0) >= 1, got
        # and no other cell did any
        others = {f"c{i}" for i in range(CELLS)} - {"c2", "c5"}
        for kind, per_cell in got.items():
            assert not others & set(per_cell), (kind, per_cell)
        assert not page.errors, page.errors
    finally:
        bob.close()
