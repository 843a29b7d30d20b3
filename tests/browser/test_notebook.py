"""Notebooks in the browser: cell operations end up in the commit exactly; real notebooks
with images render; hostile Markdown and outputs run nothing."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from ..support import CORPUS, git
from .conftest import expect, join, screenshot, snapshot, wait_for
from .helpers import NOTEBOOK

pytestmark = pytest.mark.browser


def test_cell_operations_end_up_in_the_commit(start_session, people):
    session = start_session({"analysis.ipynb": NOTEBOOK})
    page = join(people.page(), session.url_for("analysis.ipynb"), "Ada", "ada@example.org")
    ids = lambda: [c["id"] for c in snapshot(page, "analysis.ipynb")]  # noqa: E731

    # add a code cell below "load" and type into it (the new cell has the focus)
    page.click(".cell[data-cell-id=load] .cell-add")
    wait_for(page, lambda: len(ids()) == 5, "the new cell")
    new_id = ids()[2]
    assert new_id not in {"intro", "load", "total", "outro"}
    expect(page.locator(f".cell[data-cell-id='{new_id}'] .cm-editor")).to_have_class(re.compile(r"cm-focused"))
    page.keyboard.type("new_cell = True")
    # move "outro" up, above "total"
    page.click(".cell[data-cell-id=outro] .cell-up")
    wait_for(page, lambda: ids() == ["intro", "load", new_id, "outro", "total"], "the move")
    # delete "intro"
    page.click(".cell[data-cell-id=intro] .cell-delete")
    wait_for(page, lambda: ids() == ["load", new_id, "outro", "total"], "the deletion")
    # "total" becomes a Markdown cell
    page.select_option(".cell[data-cell-id=total] select.cell-type", "markdown")
    expect(page.locator(".cell[data-cell-id=total]")).to_have_attribute("data-cell-type", "markdown")
    types = ["code", "code", "markdown", "markdown"]
    wait_for(page, lambda: [c["cell_type"] for c in snapshot(page, "analysis.ipynb")] == types, "the type change")
    wait_for(page, lambda: snapshot(page, "analysis.ipynb")[1]["source"] == "new_cell = True", "the typing")

    commit = session.stop("Rework the analysis")
    assert git(session.repo, "rev-parse", "HEAD").strip().startswith(commit[:7])
    text = git(session.repo, "show", "HEAD:analysis.ipynb")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    original = json.loads(NOTEBOOK)
    by_id = {c["id"]: c for c in original["cells"]}
    got = json.loads(text)
    assert got["metadata"] == original["metadata"]
    assert (got["nbformat"], got["nbformat_minor"]) == (4, 5)
    assert [c["id"] for c in got["cells"]] == ["load", new_id, "outro", "total"]
    assert got["cells"][0] == by_id["load"]
    added = got["cells"][1]
    assert {k: v for k, v in added.items() if k != "source"} == {
        "cell_type": "code",
        "execution_count": None,
        "id": new_id,
        "metadata": {},
        "outputs": [],
    }
    assert "".join(added["source"]) == "new_cell = True"
    assert got["cells"][2] == by_id["outro"]
    total = got["cells"][3]
    assert total["cell_type"] == "markdown" and "".join(total["source"]) == "sum(data)"
    assert "outputs" not in total and "execution_count" not in total
    assert not page.errors, page.errors


HOSTILE = (
    json.dumps(
        {
            "cells": [
                {
                    "cell_type": "markdown",
                    "id": "evil-md",
                    "metadata": {},
                    "source": [
                        "# Hello\n",
                        "<img src=x onerror=\"window.__pwned='md-img'\">\n",
                        "<script>window.__pwned='md-script'</script>\n",
                        "[click](javascript:window.__pwned='md-link') <b onmouseover=\"window.__pwned='md-hover'\">bold</b>\n",  # noqa: E501
                        "<iframe src=\"javascript:parent.__pwned='md-iframe'\"></iframe><style>body{display:none}</style>\n",  # noqa: E501
                    ],
                },
                {
                    "cell_type": "code",
                    "execution_count": 3,
                    "id": "evil-out",
                    "metadata": {},
                    "source": ["show()"],
                    "outputs": [
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {
                                "text/html": [
                                    "<b class=\"html-ok\">html</b><script>window.__pwned='html'</script>",
                                    "<img src=x onerror=\"window.__pwned='html-img'\">",
                                ],
                                "text/plain": ["<HTML>"],
                            },
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {
                                "image/svg+xml": [
                                    '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" ',
                                    "onload=\"window.__pwned='svg'\"><script>window.__pwned='svg-script'</script>",
                                    '<circle cx="10" cy="10" r="8" fill="red"/></svg>',
                                ]
                            },
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"application/javascript": ["window.__pwned='js'"], "text/plain": ["<JS>"]},
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {
                                "text/markdown": ["**md output** <img src=x onerror=\"window.__pwned='md-out'\">"]
                            },
                        },
                        {"output_type": "display_data", "metadata": {}, "data": {"application/json": {"a": [1, 2]}}},
                        {
                            "output_type": "stream",
                            "name": "stderr",
                            "text": ["\u001b[1;31mwarning\u001b[0m <not a tag>\n"],
                        },
                        {
                            "output_type": "error",
                            "ename": "ZeroDivisionError",
                            "evalue": "division by zero",
                            "traceback": [
                                "\u001b[0;31m----------------------------------------------------------\u001b[0m",
                                "\u001b[0;31mZeroDivisionError\u001b[0m: division by zero <script>x</script>",
                            ],
                        },
                    ],
                },
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )
    + "\n"
)

PDSH = "04.02-Simple-Scatter-Plots.ipynb"


def test_real_notebook_renders_and_hostile_content_runs_nothing(start_session, people):
    pdsh = (CORPUS / "notebooks" / "pdsh" / PDSH).read_text()
    session = start_session({f"book/{PDSH}": pdsh, "hostile.ipynb": HOSTILE})
    page = join(people.page(), session.url_for(f"book/{PDSH}"), "Ada")

    # every image output of the real notebook is there, decoded
    source_nb = json.loads(pdsh)
    images = sum(
        1
        for c in source_nb["cells"]
        for o in c.get("outputs", [])
        if any(k.startswith("image/") for k in o.get("data", {}))
    )
    assert images > 0
    expect(page.locator(".doc-notebook .output-image")).to_have_count(images)
    wait_for(
        page,
        lambda: page.eval_on_selector_all(
            ".doc-notebook .output-image", "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"
        ),
        "images decoded",
    )
    expect(page.locator(".cell-markdown .cell-rendered h1").first).to_have_text("Simple Scatter Plots")
    expect(page.locator(".cell-code .cell-prompt").first).to_have_text("[1]:")
    shot = screenshot(page, "pdsh-notebook")
    assert shot.stat().st_size > 10_000
    page.set_viewport_size({"width": 420, "height": 800})
    screenshot(page, "pdsh-notebook-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})

    # the hostile notebook renders its harmless parts and runs none of its scripts
    page.click(".file[data-path='hostile.ipynb']")
    nb = page.locator(".doc-notebook[data-path='hostile.ipynb']")
    expect(nb).to_have_attribute("data-ready", "true")
    expect(nb.locator(".cell-rendered h1")).to_have_text("Hello")
    expect(nb.locator(".output-html b.html-ok")).to_have_text("html")
    expect(nb.locator(".output-markdown strong")).to_have_text("md output")
    expect(nb.locator("img.output-image[data-mime='image/svg+xml']")).to_have_count(1)
    expect(nb.locator(".output-stream-stderr .ansi-red-fg.ansi-bold")).to_have_text("warning")
    expect(nb.locator(".output-stream-stderr")).to_contain_text("<not a tag>")
    expect(nb.locator(".output-traceback .ansi-red-fg").first).to_be_visible()
    expect(nb.locator(".output-traceback")).to_contain_text("<script>x</script>")
    expect(nb.locator(".output-json")).to_contain_text('"a"')
    wait_for(
        page,
        lambda: page.eval_on_selector(
            "img.output-image[data-mime='image/svg+xml']", "i => i.complete && i.naturalWidth > 0"
        ),
        "the SVG image",
    )
    nb.locator(".cell-rendered b").hover()
    screenshot(page, "hostile-notebook")
    assert page.evaluate("() => window.__pwned") is None
    assert nb.locator("script, iframe, style, [onerror], [onload], [onmouseover]").count() == 0
    assert nb.locator("a[href^='javascript']").count() == 0
    assert page.evaluate("() => getComputedStyle(document.body).display") != "none"
    assert not page.errors, page.errors
