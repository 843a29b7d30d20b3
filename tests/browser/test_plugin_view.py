"""A plugin kind's browser view (#20): gitrtc-csv's grid, served by the session and
mounted by the client, edited in Chromium next to a pycrdt client; the commit's bytes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pycrdt
import pytest

from gitrtc.client import RoomClient

from ..plugins import install
from ..support import RtcProcess, get_json, git, make_repo, wait_until
from .conftest import expect, join, run_async, screenshot
from .helpers import NOTEBOOK, README

pytestmark = pytest.mark.browser

CSV = b'name,city,score\r\n"Ann","Paris, FR",1\r\nBob,Oslo,2\r\nCy,Rome,3\r\n'


async def _edit_row(url: str, row: int, col: int, value: str) -> None:
    async with RoomClient(url) as client:
        await client.wait_synced()
        client.doc.get("rows", type=pycrdt.Array)[row][str(col)] = value


def test_the_csv_grid_edits_a_cell_and_sees_others_edits(tmp_path: Path, people: Any) -> None:
    site = tmp_path / "site"
    install.install_example(site)
    repo = make_repo(tmp_path / "r", {"data.csv": CSV, "README.md": "# hi\n"})
    rtc = RtcProcess(repo, ["data.csv", "README.md"], env=install.env(site))
    try:
        info = rtc.wait_ready()
        page = join(people.page(), f"{info['url']}&f=data.csv", "Ada", "ada@example.org")
        grid = page.locator(".doc-csv table.csv-grid")
        expect(grid.locator("input[data-row='1'][data-col='1']")).to_have_value("Paris, FR")
        cell = grid.locator("input[data-row='2'][data-col='1']")
        cell.fill("Bergen")
        cell.press("Enter")
        cell.blur()
        # someone else, with a pycrdt client, changes another row meanwhile
        _status, body = run_async(get_json(f"{rtc.base}/api/session", info["token"]))
        room = next(f["room"] for f in body["files"] if f["path"] == "data.csv")
        url = f"{rtc.ws_base}{room}?token={info['token']}&name=Bob&email=bob@example.org"
        run_async(_edit_row(url, 3, 2, "30"))
        expect(grid.locator("input[data-row='3'][data-col='2']")).to_have_value("30")
        # the validate service's panel (its own module): the result reaches a viewer too
        vera = join(people.page(), f"{info['readonly_url']}&f=data.csv", "Vera")
        expect(vera.locator(".doc-csv input[data-row='2'][data-col='1']")).to_have_value("Bergen")
        expect(vera.locator(".doc-csv input[data-row='2'][data-col='1']")).not_to_be_editable()
        page.click(".doc-csv .plugin-panel-validate .csv-validate")
        expect(page.locator(".doc-csv .csv-result")).to_contain_text("no problems (checked by Ada)")
        expect(vera.locator(".doc-csv .csv-result")).to_contain_text("no problems (checked by Ada)")
        screenshot(page, "csv-grid")
        expected = CSV.replace(b"Bob,Oslo,2", b"Bob,Bergen,2").replace(b"Cy,Rome,3", b"Cy,Rome,30")
        wait_until(lambda: (repo / "data.csv").read_bytes() == expected, 20, "the write-back")
        assert page.errors == [] and vera.errors == []
        done = rtc.stop("-m", "Edit the table in the browser")
        assert done.returncode == 0, done.stderr
    finally:
        rtc.kill()
    shown = subprocess.run(["git", "show", "HEAD:data.csv"], cwd=repo, capture_output=True, check=True).stdout
    assert shown == expected
    assert "Co-authored-by: Ada <ada@example.org>" in git(repo, "log", "-1", "--format=%B")


def test_a_service_panel_sits_on_built_in_views_beside_the_kernel_bar(tmp_path: Path, people: Any) -> None:
    site = tmp_path / "site"
    install.install_hello(site)
    repo = make_repo(tmp_path / "r", {"README.md": README, "analysis.ipynb": NOTEBOOK})
    rtc = RtcProcess(repo, ["README.md", "analysis.ipynb"], env=install.env(site))
    try:
        info = rtc.wait_ready()
        page = join(people.page(), f"{info['url']}&f=README.md", "Ada", "ada@example.org")
        page.click(".doc-text .plugin-panel-hello .hello-ping")
        expect(page.locator(".doc-text .hello-answer")).to_have_text("pong to Ada on README.md")
        page.click(".file[data-path='analysis.ipynb']")
        expect(page.locator(".doc-notebook")).to_have_attribute("data-ready", "true")
        page.click(".doc-notebook .plugin-panel-hello .hello-ping")
        expect(page.locator(".doc-notebook .hello-answer")).to_have_text("pong to Ada on analysis.ipynb")
        # the kernel bar's own requests on the same connection are still answered
        page.wait_for_function(
            "() => (document.querySelector('.doc-notebook .kernel-message')?.textContent || '').includes('off')"
        )
        assert page.errors == []
    finally:
        rtc.kill()
