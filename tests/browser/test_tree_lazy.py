"""A large shared tree in Chromium (#19): the page lists the top level without fetching
every file (`/api/session?tree=lazy` leaves the list out, `/api/tree` lists one folder
page at a time), a folder is listed when opened and a long one page by page as it
scrolls, Ctrl-P finds a deep file through the server, a link opens a file in a folder
never listed, and files created, renamed and deleted on disk appear, move and vanish."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ..support import get_json
from .conftest import expect, join, run_async, wait_for

pytestmark = pytest.mark.browser

LONG = "a-file-whose-name-is-far-too-long-for-the-sidebar-of-any-reasonable-screen-width.md"
DEEP = "deep/l1/l2/l3/needle-file.md"


def big_tree() -> dict[str, str | bytes]:
    """5,000+ files: 50 packages of 90 modules, one folder of 600, one deep file."""
    files: dict[str, str | bytes] = {"README.md": "# Big\n", LONG: "long\n", DEEP: "found me\n"}
    for p in range(50):
        for m in range(90):
            files[f"src/pkg{p:02}/mod{m:02}.py"] = f"X = {m}\n"
    for n in range(600):
        files[f"big/entry{n:03}.md"] = f"{n}\n"
    return files


def tree_requests(urls: list[str]) -> list[dict[str, list[str]]]:
    """The query of every `/api/tree` request the page made."""
    return [parse_qs(urlsplit(u).query, keep_blank_values=True) for u in urls if urlsplit(u).path.endswith("/api/tree")]


def test_a_large_tree_is_listed_lazily_live_and_found_by_name(start_session: Any, people: Any) -> None:
    files = big_tree()
    assert len(files) > 5000
    session = start_session(files, paths=["."])
    repo = session.repo
    # the page's own view of the session leaves the list out; the full view keeps it
    status, lazy = run_async(get_json(f"{session.rtc.base}/api/session?tree=lazy", session.info["token"]))
    assert status == 200 and lazy["lazy"] is True and lazy["files"] == [] and lazy["files_count"] >= len(files)
    _status, full = run_async(get_json(f"{session.rtc.base}/api/session", session.info["token"]))
    assert len(full["files"]) == len(files)

    page = people.page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    join(page, session.url, "Ann")
    tree = page.locator("nav.files")

    # the top level at once, nothing below it fetched
    for folder in ("big", "deep", "src"):
        expect(tree.locator(f'summary[data-dir="{folder}"]')).to_be_visible()
    expect(tree.locator('a.file[data-path="README.md"]')).to_be_visible()
    assert [q.get("dir", [""])[0] for q in tree_requests(urls)] == [""]
    assert tree.locator("a.file").count() == 2
    # a long name ends with an ellipsis and shows whole on hover
    name = tree.locator(f'a.file[data-path="{LONG}"] .file-name')
    assert name.evaluate("(el) => el.scrollWidth > el.clientWidth && getComputedStyle(el).textOverflow === 'ellipsis'")
    expect(tree.locator(f'a.file[data-path="{LONG}"]')).to_have_attribute("title", LONG)

    # opening a folder lists it (and only it)
    tree.locator('summary[data-dir="src"]').click()
    expect(tree.locator('summary[data-dir="src/pkg07"]')).to_be_visible()
    tree.locator('summary[data-dir="src/pkg07"]').click()
    expect(tree.locator('a.file[data-path="src/pkg07/mod89.py"]')).to_be_visible()
    assert {q["dir"][0] for q in tree_requests(urls)} == {"", "src", "src/pkg07"}
    assert tree.locator("a.file").count() == 2 + 90

    # a long folder: one page, then the next as its end scrolls into view
    tree.locator('summary[data-dir="big"]').click()
    listed = tree.locator('a.file[data-path^="big/"]')
    expect(listed.first).to_be_visible()
    assert listed.count() < 600
    for _ in range(5):
        shown = listed.count()
        if shown >= 600:
            break
        tree.locator('li.more[data-more="big"]').scroll_into_view_if_needed()
        wait_for(page, lambda shown=shown: listed.count() > shown, "the next page as the list's end shows")
    expect(listed).to_have_count(600)
    expect(tree.locator('li.more[data-more="big"]')).to_have_count(0)

    # Ctrl-P finds a deep file through the server and opens it; its folders open
    page.locator("nav.files").click()
    page.keyboard.press("Control+p")
    page.locator(".quick-open-input").fill("mod")  # in 4,500 names: 50 shown, and a word that there are more
    expect(page.locator(".quick-open-list li[role=option]")).to_have_count(50)
    expect(page.locator(".quick-open-more")).to_be_visible()
    page.locator(".quick-open-input").fill("needle")
    expect(page.locator(".quick-open-more")).to_have_count(0)
    expect(page.locator(".quick-open-list li").first).to_have_text(DEEP)
    page.keyboard.press("Enter")
    expect(page.locator(".doc-title")).to_have_text(DEEP)
    expect(page.locator(".doc:not([hidden])")).to_have_attribute("data-ready", "true")
    expect(tree.locator(f'a.file[data-path="{DEEP}"]')).to_be_visible()
    assert any("find" in q for q in tree_requests(urls))

    # live: created in an open folder appears, in a closed one is listed when it opens,
    # a new top folder appears, a deleted file vanishes, a renamed one moves
    (repo / "src/pkg07/fresh.py").write_text("NEW = 1\n")
    (repo / "src/pkg08/late.py").write_text("LATE = 1\n")
    (repo / "newtop").mkdir()
    (repo / "newtop/made.md").write_text("made\n")
    (repo / "src/pkg07/mod00.py").unlink()
    (repo / "src/pkg07/mod01.py").rename(repo / "src/pkg07/renamed.py")
    expect(tree.locator('a.file[data-path="src/pkg07/fresh.py"]')).to_be_visible()
    expect(tree.locator('summary[data-dir="newtop"]')).to_be_visible()
    expect(tree.locator('a.file[data-path="src/pkg07/mod00.py"]')).to_have_count(0)
    expect(tree.locator('a.file[data-path="src/pkg07/renamed.py"]')).to_be_visible()
    expect(tree.locator('a.file[data-path="src/pkg07/mod01.py"]')).to_have_count(0)
    tree.locator('summary[data-dir="src/pkg08"]').click()
    expect(tree.locator('a.file[data-path="src/pkg08/late.py"]')).to_be_visible()
    expect(tree.locator('a.file[data-path^="src/pkg08/"]')).to_have_count(91)
    assert page.errors == []

    # a link to a file in a folder this page never listed opens it
    other = people.page()
    join(other, session.url_for("src/pkg40/mod10.py"), "Bob")
    expect(other.locator(".doc-title")).to_have_text("src/pkg40/mod10.py")
    expect(other.locator('nav.files a.file[data-path="src/pkg40/mod10.py"]')).to_be_visible()
    assert other.errors == []
