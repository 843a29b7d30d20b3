"""A shared folder in Chromium (#19): files created on the owner's disk appear live; new
file, rename/move (the open editor follows), delete and Ctrl-P quick-open from the page;
the end commit shows them (`git show --stat -M`)."""

from __future__ import annotations

from typing import Any

import pytest

from ..support import git
from .conftest import expect, join, wait_for

pytestmark = pytest.mark.browser

FILES: dict[str, str | bytes] = {
    "docs/guide.md": "Guide\n=====\n\nText.\n",
    "docs/old.md": "Old page\n",
    "README.md": "Not shared\n",
}


def answer_dialogs(page: Any, answers: list[str]) -> None:
    """Answer the page's prompts and confirms in order (a person typing a name)."""

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "prompt":
            dialog.accept(answers.pop(0))
        else:
            dialog.accept()

    page.on("dialog", on_dialog)


def test_a_shared_folder_is_live_in_the_browser(start_session, people):
    session = start_session(FILES, paths=["docs"])
    repo = session.repo
    page = people.page()
    answers: list[str] = []
    answer_dialogs(page, answers)
    join(page, session.url, "Ann", "ann@example.org")
    tree = page.locator("nav.files")
    expect(tree.locator('a.file[data-path="docs/guide.md"]')).to_be_visible()

    # made on the owner's disk: appears
    (repo / "docs/fromdisk.md").write_text("From disk\n")
    expect(tree.locator('a.file[data-path="docs/fromdisk.md"]')).to_be_visible()

    # new file from the page: created, listed, opened, typed into, written
    answers.append("docs/browser.md")
    page.click("button.new-file")
    expect(page.locator(".doc-title")).to_have_text("docs/browser.md")
    expect(page.locator(".doc:not([hidden])")).to_have_attribute("data-ready", "true")
    page.locator(".doc:not([hidden]) .cm-content").click()
    page.keyboard.type("Typed here. ")
    made = repo / "docs/browser.md"
    wait_for(page, lambda: made.exists() and made.read_text() == "Typed here. ", "the new file on disk")

    # rename/move while open: the editor follows, typing goes on at the new path
    answers.append("docs/sub/renamed.md")
    page.click("button.rename-file")
    expect(tree.locator('a.file[data-path="docs/sub/renamed.md"]')).to_be_visible()
    expect(tree.locator('a.file[data-path="docs/browser.md"]')).to_have_count(0)
    expect(page.locator(".doc-title")).to_have_text("docs/sub/renamed.md")
    page.locator(".doc:not([hidden]) .cm-content").click()
    page.keyboard.press("End")
    page.keyboard.type("And more.")
    moved = repo / "docs/sub/renamed.md"
    wait_for(page, lambda: moved.exists() and moved.read_text() == "Typed here. And more.", "typing at the new path")
    assert not made.exists()

    # bad names: a clear error, nothing made
    answers.append("../outside.md")
    page.click("button.new-file")
    expect(page.locator(".file-message")).to_contain_text("not names")
    assert not (repo.parent / "outside.md").exists()

    # delete
    tree.locator('a.file[data-path="docs/old.md"]').click()
    expect(page.locator(".doc-title")).to_have_text("docs/old.md")
    page.click("button.delete-file")
    expect(tree.locator('a.file[data-path="docs/old.md"]')).to_have_count(0)
    wait_for(page, lambda: not (repo / "docs/old.md").exists(), "the deleted file gone from disk")

    # Ctrl-P quick-open
    page.locator("nav.files").click()
    page.keyboard.press("Control+p")
    page.locator(".quick-open-input").fill("renam")
    expect(page.locator(".quick-open-list li").first).to_have_text("docs/sub/renamed.md")
    page.keyboard.press("Enter")
    expect(page.locator(".doc-title")).to_have_text("docs/sub/renamed.md")
    assert page.errors == []

    # a viewer sees the live list and no file actions
    viewer = people.page()
    join(viewer, session.readonly_url, "Vic")
    expect(viewer.locator('nav.files a.file[data-path="docs/sub/renamed.md"]')).to_be_visible()
    expect(viewer.locator("button.new-file")).to_have_count(0)

    session.stop("Files made, moved and deleted in the browser")
    stat = git(repo, "show", "--stat", "-M", "--format=%B", "HEAD")
    assert "docs/fromdisk.md" in stat and "docs/sub/renamed.md" in stat and "docs/old.md" in stat, stat
    assert "Co-authored-by: Ann <ann@example.org>" in stat
    assert "README.md" not in stat
    assert git(repo, "status", "--porcelain") == ""


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of that size (rendered by the browser)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_an_image_in_a_shared_folder_is_shown_and_follows_a_replacement(start_session, people):
    session = start_session({**FILES, "docs/fig.png": png(3, 2)}, paths=["docs"])
    page = people.page()
    join(page, session.url, "Ann", "ann@example.org")
    page.locator('nav.files a.file[data-path="docs/fig.png"]').click()
    image = page.locator("img.binary-image")
    expect(image).to_be_visible()
    wait_for(page, lambda: image.evaluate("i => i.naturalWidth") == 3, "the image rendered")
    (session.repo / "docs/fig.png").write_bytes(png(5, 4))  # replaced on the owner's disk
    wait_for(page, lambda: image.evaluate("i => i.naturalWidth") == 5, "the new image shown")
    # a document opens in its place
    page.locator('nav.files a.file[data-path="docs/guide.md"]').click()
    expect(page.locator(".doc-title")).to_have_text("docs/guide.md")
    expect(image).to_be_hidden()
    assert page.errors == []
    session.stop("A new figure")
    stat = git(session.repo, "show", "--stat", "-M", "--format=%B", "HEAD")
    assert "docs/fig.png" in stat and "Bin" in stat
