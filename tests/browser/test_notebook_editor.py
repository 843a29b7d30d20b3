"""The notebook editor as a JupyterLab user expects it: typeset math, command mode with
per-person undo of cell deletions, notebook-wide find, bounded long outputs, stale
outputs marked after an edit."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import expect, join, snapshot, wait_for
from .helpers import NOTEBOOK, read_cells

pytestmark = pytest.mark.browser


def notebook(cells: list[dict]) -> str:
    return (
        json.dumps(
            {
                "cells": cells,
                "metadata": {
                    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                    "language_info": {"name": "python"},
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            },
            indent=1,
        )
        + "\n"
    )


def md(cell_id: str, text: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def code(cell_id: str, text: str, outputs: list | None = None, n: int | None = None) -> dict:
    return {
        "cell_type": "code",
        "execution_count": n,
        "id": cell_id,
        "metadata": {},
        "outputs": outputs or [],
        "source": text,
    }


def ids(page, path: str = "analysis.ipynb") -> list[str]:
    return [c["id"] for c in snapshot(page, path)]


def test_math_is_typeset_in_markdown_and_latex_outputs(start_session, people):
    nb = notebook(
        [
            md(
                "m1",
                "Inline $e^{i\\pi} + 1 = 0$ and display:\n\n$$\\sum_{k=1}^n k = \\frac{n(n+1)}{2}$$\n\n"
                "\\begin{equation}\na_b = c_d\n\\end{equation}\n\nnot math: `$x$` in code",
            ),
            code(
                "c1",
                "sympy.sqrt(x)",
                [
                    {
                        "output_type": "execute_result",
                        "execution_count": 1,
                        "metadata": {},
                        "data": {"text/latex": ["$\\displaystyle \\sqrt{x}$"], "text/plain": ["sqrt(x)"]},
                    }
                ],
                1,
            ),
        ]
    )
    session = start_session({"math.ipynb": nb})
    page = join(people.page(), session.url_for("math.ipynb"), "Ada")
    rendered = page.locator(".cell[data-cell-id=m1] .cell-rendered")
    expect(rendered.locator(".katex")).to_have_count(3)
    expect(rendered.locator(".katex-display")).to_have_count(2)
    # underscores inside math stay TeX (no <em> from Markdown), code keeps its dollars
    assert rendered.locator("em").count() == 0
    expect(rendered.locator("code")).to_have_text("$x$")
    expect(page.locator(".cell[data-cell-id=c1] .output-latex .katex")).to_have_count(1)
    expect(page.locator(".cell[data-cell-id=c1] .output-prompt")).to_have_text("Out[1]:")
    # the stylesheet and its fonts come from the session itself (CSP: nothing from the web)
    loaded = (
        "() => document.fonts.check('16px KaTeX_Main')"
        " && [...document.styleSheets].some(s => (s.href || '').endsWith('/static/katex.css'))"
    )
    wait_for(page, lambda: page.evaluate(loaded), "KaTeX's stylesheet and fonts")
    assert not page.errors, page.errors


def test_dd_then_z_restores_the_cell_for_its_deleter_only(start_session, people):
    session = start_session({"analysis.ipynb": NOTEBOOK})
    ada = join(people.page(), session.url_for("analysis.ipynb"), "Ada")
    bob = join(people.page(), session.url_for("analysis.ipynb"), "Bob")
    original = ids(ada)

    # Ada: command mode on "load", d d
    ada.click(".cell[data-cell-id=load] .cm-content")
    ada.keyboard.press("Escape")
    expect(ada.locator(".doc-notebook")).to_have_attribute("data-mode", "command")
    ada.keyboard.press("d")
    ada.keyboard.press("d")
    gone = [i for i in original if i != "load"]
    wait_for(ada, lambda: ids(ada) == gone, "the deletion")
    wait_for(bob, lambda: ids(bob) == gone, "the deletion at Bob's")

    # Bob's z (and Ctrl-Z) in command mode does not bring Ada's cell back
    bob.click(".cell[data-cell-id=total] .cm-content")
    bob.keyboard.press("Escape")
    bob.keyboard.press("z")
    bob.keyboard.press("Control+z")
    bob.wait_for_timeout(300)  # give a wrong undo the time to show (nothing to wait on)
    assert ids(bob) == gone and ids(ada) == gone

    # Ada's z does
    ada.keyboard.press("z")
    wait_for(ada, lambda: ids(ada) == original, "Ada's undo")
    wait_for(bob, lambda: ids(bob) == original, "Ada's undo at Bob's")
    cells = read_cells(session, "analysis.ipynb")
    load = next(c for c in cells if c["id"] == "load")
    assert "".join(load["source"]) == "data = [1, 2, 3]\nprint('loaded')"
    assert load["outputs"][0]["text"] in ("loaded\n", ["loaded\n"])

    # and Ctrl-Z undoes a deletion made with the toolbar too
    ada.click(".cell[data-cell-id=outro] .cell-delete")
    wait_for(ada, lambda: "outro" not in ids(ada), "the toolbar deletion")
    ada.locator(".cell[data-cell-id=total]").click(position={"x": 2, "y": 2})
    ada.keyboard.press("Escape")
    ada.keyboard.press("Control+z")
    wait_for(ada, lambda: ids(ada) == original, "Ctrl-Z")
    assert not ada.errors and not bob.errors, (ada.errors, bob.errors)


def test_command_mode_keys(start_session, people):
    session = start_session({"analysis.ipynb": NOTEBOOK})
    page = join(people.page(), session.url_for("analysis.ipynb"), "Ada")
    page.click(".cell[data-cell-id=load] .cm-content")
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a code cell below, in command mode
    wait_for(page, lambda: len(ids(page)) == 5, "b")
    new = ids(page)[2]
    expect(page.locator(f".cell[data-cell-id='{new}']")).to_have_class(re.compile(r"\bactive\b"))
    page.keyboard.press("Enter")
    page.keyboard.type("x = 1")
    page.keyboard.press("Escape")
    page.keyboard.press("m")  # to Markdown
    wait_for(page, lambda: snapshot(page, "analysis.ipynb")[2]["cell_type"] == "markdown", "m")
    # select it and the next with Shift-j, copy, paste below the last cell
    page.keyboard.press("Shift+j")
    expect(page.locator(".cell.selected")).to_have_count(2)
    page.keyboard.press("c")
    page.locator(".cell[data-cell-id=outro]").click(position={"x": 2, "y": 2}, modifiers=[])
    page.keyboard.press("Escape")
    page.keyboard.press("v")
    wait_for(page, lambda: len(ids(page)) == 7, "the paste")
    cells = snapshot(page, "analysis.ipynb")
    assert [c["source"] for c in cells[5:]] == ["x = 1", "sum(data)"]
    assert len(set(ids(page))) == 7  # pasted cells get new ids
    # merge the two pasted cells (Shift-m on a selection; the first pasted one is active)
    page.keyboard.press("Shift+j")
    expect(page.locator(".cell.selected")).to_have_count(2)
    page.keyboard.press("Shift+m")
    wait_for(page, lambda: len(ids(page)) == 6, f"the merge {snapshot(page, 'analysis.ipynb')}")
    assert snapshot(page, "analysis.ipynb")[5]["source"] == "x = 1\n\nsum(data)"
    # split it again at the cursor (Ctrl-Shift-Minus in edit mode)
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Home")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Control+Shift+Minus")
    wait_for(page, lambda: len(ids(page)) == 7, "the split")
    assert [c["source"] for c in snapshot(page, "analysis.ipynb")[5:]] == ["x = 1", "\nsum(data)"]
    assert not page.errors, page.errors


def test_ctrl_f_finds_text_in_a_later_cell(start_session, people):
    cells = [code(f"c{i}", f"value_{i} = {i}\n" * 3) for i in range(30)]
    cells.append(
        code(
            "late",
            "needle_here = 42",
            [{"output_type": "stream", "name": "stdout", "text": "haystack output line\n"}],
            3,
        )
    )
    session = start_session({"long.ipynb": notebook(cells)})
    page = join(people.page(), session.url_for("long.ipynb"), "Ada")
    page.click(".cell[data-cell-id=c0] .cm-content")
    page.keyboard.press("Control+f")
    expect(page.locator(".find-bar")).to_be_visible()
    page.keyboard.type("needle_here")
    page.keyboard.press("Enter")
    late = page.locator(".cell[data-cell-id=late]")
    expect(late).to_have_class(re.compile(r"find-current"))
    expect(late).to_be_in_viewport()
    # the match is selected in that cell's editor
    expect(late.locator(".cm-selectionBackground")).to_have_count(1)
    expect(page.locator(".find-count")).to_have_text("1 of 1")
    # outputs are searched too
    page.fill(".find-query", "haystack")
    page.keyboard.press("Enter")
    expect(page.locator(".find-count")).to_have_text("1 of 1")
    # replace in sources
    page.fill(".find-query", "value_29")
    page.fill(".find-replacement", "renamed")
    page.click(".find-replace-all")
    wait_for(page, lambda: snapshot(page, "long.ipynb")[29]["source"] == "renamed = 29\n" * 3, "the replacement")
    assert not page.errors, page.errors


def test_a_long_output_is_bounded_and_collapsible(start_session, people):
    text = "".join(f"line {i}\n" for i in range(3000))
    nb = notebook(
        [
            code(
                "long",
                "for i in range(3000): print(f'line {i}')",
                [{"output_type": "stream", "name": "stdout", "text": text}],
                1,
            ),
            code("after", "pass"),
        ]
    )
    session = start_session({"out.ipynb": nb})
    page = join(people.page(), session.url_for("out.ipynb"), "Ada")
    box = page.locator(".cell[data-cell-id=long] .cell-outputs")
    expect(box).to_contain_text("line 2999")
    height = box.bounding_box()["height"]
    assert 100 < height < 800, height
    total = page.evaluate("() => document.querySelector('.doc-notebook').scrollHeight")
    assert total < 3000, total
    page.click(".cell[data-cell-id=long] .output-collapser")
    expect(box).to_be_hidden()
    page.click(".cell[data-cell-id=long] .output-collapser")
    expect(box).to_be_visible()


def test_stale_outputs_are_marked_after_a_source_edit(start_session, people):
    session = start_session({"analysis.ipynb": NOTEBOOK})
    ada = join(people.page(), session.url_for("analysis.ipynb"), "Ada")
    bob = join(people.page(), session.url_for("analysis.ipynb"), "Bob")
    total = ".cell[data-cell-id=total]"
    expect(ada.locator(f"{total} .output-prompt")).to_have_text("Out[2]:")
    expect(ada.locator(f"{total} .stale-note")).to_be_hidden()
    ada.click(f"{total} .cm-content")
    ada.keyboard.press("End")
    ada.keyboard.type(" * 2")
    for page in (ada, bob):
        expect(page.locator(total)).to_have_class(re.compile(r"\bstale\b"))
        expect(page.locator(f"{total} .stale-note")).to_be_visible()
    # typing it back as it was clears the mark
    for _ in range(4):
        ada.keyboard.press("Backspace")
    expect(bob.locator(total)).not_to_have_class(re.compile(r"\bstale\b"))


def test_markdown_file_preview_and_long_names(start_session, people):
    long_name = "a_really_long_file_name_that_does_not_fit_in_the_sidebar_at_all.md"
    session = start_session({"README.md": "# Title\n\nSome $x^2$ math.\n", long_name: "x\n"})
    page = join(people.page(), session.url_for("README.md"), "Ada")
    preview = page.locator(".doc:not([hidden]) .md-preview")
    expect(preview.locator("h1")).to_have_text("Title")
    expect(preview.locator(".katex")).to_have_count(1)
    page.click(".doc:not([hidden]) .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type("\n## More")
    expect(preview.locator("h2")).to_have_text("More")
    name = page.locator(f".file[data-path='{long_name}'] .file-name")
    assert page.evaluate(
        "(el) => el.scrollWidth > el.clientWidth && getComputedStyle(el).textOverflow === 'ellipsis'",
        name.element_handle(),
    )
    expect(page.locator(f".file[data-path='{long_name}']")).to_have_attribute("title", long_name)
