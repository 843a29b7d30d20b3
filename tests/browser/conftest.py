"""Fixtures for the browser tests: a real Chromium (Debian's, driven by Python
playwright), a real `rtc start` session in a temp repository, and helpers that act the
way a person does (fill the name form, click, type).

Each test uses its own repository and port 0, so the tests run in parallel (-n 2).
Needs: `apt-get install chromium`, `pip install playwright` (the `test` extra; never
`playwright install`), and the built client (`npm ci && npm run build` in web/).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..support import ROOT, RtcProcess, make_repo, wait_until

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
)

CHROMIUM = os.environ.get("GITRTC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATIC = ROOT / "gitrtc" / "static"
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 20_000


@pytest.fixture
def browser() -> Iterator[Any]:
    # Function scope on purpose: playwright's sync API keeps an event loop running in
    # this thread while it is started, which would break other tests' asyncio.run()
    # on the same xdist worker.
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium")
    if not (STATIC / "app.js").is_file():
        pytest.skip("the browser client is not built: run `npm ci && npm run build` in web/")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion from sync test code (playwright's sync API owns
    this thread's event loop, so pycrdt clients run on a loop in another thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class Session:
    """A running `rtc start` and what its session.json says."""

    repo: Path
    rtc: RtcProcess
    info: dict[str, Any]

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def readonly_url(self) -> str:
        return self.info["readonly_url"]

    def url_for(self, path: str, readonly: bool = False) -> str:
        base = self.readonly_url if readonly else self.url
        return f"{base}&f={path}"

    @property
    def ws_base(self) -> str:
        return self.rtc.ws_base

    def room(self, path: str) -> str:
        from ..support import get_json

        status, body = run_async(get_json(f"{self.rtc.base}/api/session", self.info["token"]))
        assert status == 200, body
        return next(f["room"] for f in body["files"] if f["path"] == path)

    def stop(self, message: str) -> str:
        done = self.rtc.stop("-m", message)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[0]


@pytest.fixture
def start_session(tmp_path: Path) -> Iterator[Callable[..., Session]]:
    running: list[RtcProcess] = []

    def start(files: dict[str, str | bytes], paths: list[str] | None = None) -> Session:
        repo = make_repo(tmp_path / f"repo{len(running)}", files)
        rtc = RtcProcess(repo, paths if paths is not None else sorted(files))
        running.append(rtc)
        info = rtc.wait_ready()
        return Session(repo, rtc, info)

    yield start
    for rtc in running:
        rtc.kill()


@dataclass
class People:
    """Browser contexts (one per person: own storage, own identity)."""

    browser: Any
    contexts: list[Any] = field(default_factory=list)

    def page(self, viewport: dict[str, int] | None = None) -> Any:
        ctx = self.browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
        ctx.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda err: page.errors.append(str(err)))
        return page


@pytest.fixture
def people(browser: Any) -> Iterator[People]:
    p = People(browser)
    yield p
    for ctx in p.contexts:
        ctx.close()


def join(page: Any, url: str, name: str, email: str = "") -> Any:
    """Open a join URL, answer the name form, wait until the opened document has synced."""
    page.goto(url)
    page.fill("#id-name", name)
    if email:
        page.fill("#id-email", email)
    page.click(".identity-form button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-conn", "online")
    if "&f=" in url:
        expect(page.locator(".doc:not([hidden])")).to_have_attribute("data-ready", "true")
    return page


def expect(locator: Any) -> Any:
    return playwright_api.expect(locator)


def snapshot(page: Any, path: str) -> Any:
    """The page's own view of a document: a file's text or a notebook's cells."""
    return page.evaluate("(p) => window.gitrtc.snapshot(p)", path)


def wait_for(page: Any, predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT_MS / 1000) -> Any:
    """Poll a Python predicate (every 25 ms, letting playwright process events) until truthy."""
    return wait_until(predicate, timeout, what, pause=lambda: page.wait_for_timeout(25))


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    page.screenshot(path=str(target), full_page=False)
    return target
