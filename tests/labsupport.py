"""Real JupyterLab in tests and benchmarks: one `jupyter lab --no-browser` on a loopback
port with this checkout's server extension and built labextension, Chromium pages driven
by Playwright, and the gestures the tests repeat (the panel, dialogs, Join by URL).

Shared by tests/test_jupyterlab.py, tests/test_jupyterhub.py and benchmarks/lab.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .support import ROOT, wait_until

CHROMIUM = os.environ.get("GITRTC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
LABEXTENSION = ROOT / "gitrtc" / "labextension"
TIMEOUT_MS = 30_000


def missing() -> str | None:
    """Why JupyterLab cannot be driven here (None when it can)."""
    if not (LABEXTENSION / "package.json").is_file():
        return "the JupyterLab extension is not built: run labextension/build.sh (scripts/setup does)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not found: apt-get install chromium"
    return None


def notebook(*sources: str) -> str:
    """A small nbformat 4.5 notebook with python3 as its kernel."""
    cells: list[dict[str, Any]] = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": s}
        for i, s in enumerate(sources)
    ]
    meta = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    return json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_async(coro: Any) -> Any:
    """Run a coroutine from sync test code (playwright owns this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Background:
    """An event loop in a thread, for clients that stay connected while a page is driven."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Lab:
    """A running JupyterLab server; `root` is its root folder."""

    root: Path
    port: int
    token: str
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, workspace: str) -> str:
        return f"{self.base}/lab/workspaces/{workspace}?token={self.token}"

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request to the server extension's owner API (`gitrtc/api/PATH`), as Jupyter's user."""
        request = urllib.request.Request(
            f"{self.base}/gitrtc/api/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=90) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited with {self.proc.returncode}")
        try:
            with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False


def lab_command(home: Path, root: Path, port: int, token: str, python: str = sys.executable) -> list[str]:
    """`jupyter lab` serving `root` with this checkout's extensions (settings under `home`),
    run by `python` (this environment's, or one layered on it such as `.venv/collab`)."""
    # JupyterLab serves an extension's files from <path>/<package name>/static; an extra
    # path comes before the environment's, so this build wins over an installed one
    (home / "labextensions").mkdir(exist_ok=True)
    (home / "data").mkdir(exist_ok=True)  # JUPYTER_DATA_DIR: jupyter-server-fileid keeps its database there
    link = home / "labextensions" / "gitrtc"
    if not link.exists():
        link.symlink_to(LABEXTENSION)
    args = [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        """--ServerApp.jpserver_extensions={"gitrtc.jupyter": True}""",
        f"--LabApp.extra_labextensions_path={home / 'labextensions'}",
        f"--LabApp.app_dir={Path(sys.prefix) / 'share' / 'jupyter' / 'lab'}",  # this environment's JupyterLab
        "--LabApp.news_url=None",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the tests run commands by id
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    return args


def lab_env(home: Path) -> dict[str, str]:
    """An environment whose Jupyter settings live under `home` and which imports this checkout."""
    return {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        # this environment's labextensions, kernels and enabled server extensions, also for
        # a JupyterLab run by another environment (layered on this one)
        "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter"),
        "JUPYTER_CONFIG_PATH": str(Path(sys.prefix) / "etc" / "jupyter"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }


def launch_lab(
    home: Path,
    root: Path,
    port: int | None = None,
    token: str | None = None,
    python: str = sys.executable,
) -> Lab:
    """Start JupyterLab on `root` and wait until it answers (its output: home/lab.log);
    `python` as for `lab_command`."""
    port, token = port or free_port(), token or secrets.token_urlsafe(16)
    command = lab_command(home, root, port, token, python)
    with open(home / "lab.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(command, cwd=root, env=lab_env(home), stdout=log, stderr=subprocess.STDOUT)
    lab = Lab(root, port, token, proc)
    wait_until(lab.up, 60, "JupyterLab to answer")
    return lab


def stop_lab(lab: Lab) -> int:
    """Stop JupyterLab as Ctrl-C would (SIGTERM), waiting for it; its exit status."""
    lab.proc.terminate()
    try:
        return lab.proc.wait(20)
    except subprocess.TimeoutExpired:
        lab.proc.kill()
        return lab.proc.wait()


def end_rtc(repo: Path) -> None:
    """Stop a session a test left running (the server extension starts it detached)."""
    info = repo / ".git" / "rtc" / "session.json"
    if info.is_file():
        subprocess.run([sys.executable, "-m", "gitrtc", "stop", "--no-commit"], cwd=repo, capture_output=True)


@contextlib.contextmanager
def chromium_page() -> Iterator[Any]:
    """A fresh Chromium page; its uncaught errors collect in `page.errors`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page: Any = context.new_page()
        errors: list[str] = []
        page.errors = errors
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda m: print("console:", m.type, m.text) if m.type in ("error", "warning") else None)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(locator)


def show_panel(page: Any) -> None:
    page.evaluate("window.jupyterapp.commands.execute('gitrtc:panel')")
    expect(page.locator("#gitrtc-panel")).to_be_visible()


def dialog_accept(page: Any, text: str | None = None) -> None:
    """Fill the open dialog's input (if `text`) and press its accept button."""
    dialog = page.locator(".jp-Dialog").last
    expect(dialog).to_be_visible()
    if text is not None:
        dialog.locator("input").fill(text)
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()


def dismiss(page: Any) -> None:
    """Close the message dialog on top (Escape, as a person would)."""
    expect(page.locator(".jp-Dialog")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def join_by_url(page: Any, url: str, name: str | None = "Bob") -> None:
    """Join live session…: paste `url`, then give a name (asked once per browser)."""
    page.evaluate("() => { void window.jupyterapp.commands.execute('gitrtc:join'); }")
    dialog_accept(page, url)
    if name is not None:
        expect(page.locator(".jp-Dialog", has_text="Your name in live sessions")).to_be_visible()
        dialog_accept(page, name)


def ws_url(info: dict[str, Any], room: str, name: str, email: str = "") -> str:
    return f"ws://127.0.0.1:{info['port']}/rooms/{room}?token={info['token']}&name={name}&email={email}"


async def room_of(info: dict[str, Any], path: str) -> str:
    """The room of `path` in the session `info` (session.json's) describes."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{info['port']}/api/session?token={info['token']}") as r:
            body = await r.json()
    return str(next(f["room"] for f in body["files"] if f["path"] == path))


def session_info(repo: Path) -> dict[str, Any]:
    return dict(json.loads((repo / ".git" / "rtc" / "session.json").read_text()))
