"""gitrtc on a real JupyterHub: docs/jupyter.md's recipe (dummy authenticator, local process
spawner, configurable-http-proxy from npm) with one user's single-user server.

The owner's server starts a session through the server extension; someone with the link
and no hub account reaches it at `/user/NAME/gitrtc/proxy/` through the hub's proxy
(HTTP and WebSocket), with gitrtc's token still required; the end is one commit.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Text

from .support import ROOT, YClient, async_wait_until, git, make_repo, wait_until

pytest.importorskip("jupyterhub", reason="JupyterHub is not installed (pip install -e '.[test]')")
CHP = ROOT / "tests" / "js" / "node_modules" / ".bin" / "configurable-http-proxy"
SINGLEUSER = Path(sys.executable).with_name("jupyterhub-singleuser")
LABEXTENSION = ROOT / "gitrtc" / "labextension"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hub:
    base: str
    token: str  # a service's token with access to the users' servers
    repo: Path

    def call(self, method: str, path: str, body: Any = None, token: str | None = "hub") -> tuple[int, Any]:
        """One HTTP request through the hub's proxy; (status, JSON body or None)."""
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None),
        )
        if token == "hub":
            request.add_header("Authorization", f"token {self.token}")
        elif token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    if not CHP.exists():
        pytest.skip("configurable-http-proxy is not installed (npm ci in tests/js)")
    if not SINGLEUSER.exists():
        pytest.skip("jupyterhub-singleuser is not installed")
    work = tmp_path_factory.mktemp("hub")
    repo = make_repo(work / "alice" / "project", {"notes.md": "# Notes\n"})
    (work / "bob" / "project").mkdir(parents=True)  # bob's server: no checkout, nothing shared
    labextensions = work / "labextensions"
    labextensions.mkdir()
    (labextensions / "gitrtc").symlink_to(LABEXTENSION)
    port, hub_port, api_port = free_port(), free_port(), free_port()
    token = secrets.token_hex(16)
    root_flag = ", '--allow-root'" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    (work / "jupyterhub_config.py").write_text(
        f"""
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.JupyterHub.db_url = "sqlite:///{work}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/cookie_secret"
c.JupyterHub.pid_file = "{work}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{work}/{{username}}"
c.Spawner.cmd = [{str(SINGLEUSER)!r}]
c.Spawner.args = [
    '--ServerApp.jpserver_extensions={{"gitrtc.jupyter": True}}',
    "--LabApp.extra_labextensions_path={labextensions}",  # this checkout's build first
    "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the test runs commands by id
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"{root_flag},
]
c.Spawner.notebook_dir = "{work}/{{username}}/project"
c.Spawner.env_keep = ["PATH", "PYTHONPATH", "HOME", "LANG"]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.JupyterHub.services = [{{"name": "tester", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [
    {{"name": "tester", "scopes": ["admin:users", "admin:servers", "access:servers"], "services": ["tester"]}}
]
"""
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = open(work / "hub.log", "wb")  # closed after the hub
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(work / "jupyterhub_config.py")],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    hub = Hub(f"http://127.0.0.1:{port}", token, repo)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"jupyterhub exited: {(work / 'hub.log').read_text()[-3000:]}")
            try:
                return hub.call("GET", "/hub/api/")[0] == 200
            except OSError:
                return False

        wait_until(up, 60, "JupyterHub to answer")
        yield hub
    finally:
        subprocess.run([sys.executable, "-m", "gitrtc", "stop", "--no-commit"], cwd=repo, capture_output=True)
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if os.environ.get("GITRTC_SHOW_HUB_LOG"):
            print((work / "hub.log").read_text())
        shutil.rmtree(work / "alice" / ".jupyter", ignore_errors=True)


def test_a_session_on_jupyterhub_is_reachable_under_the_users_url_with_the_link_alone(hub: Hub) -> None:
    head = git(hub.repo, "rev-parse", "HEAD").strip()
    assert hub.call("POST", "/hub/api/users", {"usernames": ["alice"]})[0] in (201, 409)
    status, _ = hub.call("POST", "/hub/api/users/alice/server")
    assert status in (201, 202), status
    wait_until(lambda: hub.call("GET", "/user/alice/api/status")[0] == 200, 60, "alice's server")

    # alice shares from her server (what Share live… calls)
    status, body = hub.call("POST", "/user/alice/gitrtc/api/start", {"paths": ["notes.md"]})
    assert status == 200, body
    status, info = hub.call("GET", "/user/alice/gitrtc/api/status")
    assert status == 200 and info["running"], info
    assert info["proxy_url"].startswith("/user/alice/gitrtc/proxy/#t=")
    token = info["proxy_url"].split("#t=")[1]
    room = next(f["room"] for f in info["files"] if f["path"] == "notes.md")

    # someone with the link and no hub account: through the hub's proxy, gitrtc's token only
    status, session = hub.call("GET", f"/user/alice/gitrtc/proxy/api/session?token={token}", token=None)
    assert status == 200, session
    assert [f["path"] for f in session["files"]] == ["notes.md"]
    assert hub.call("GET", "/user/alice/gitrtc/proxy/api/session?token=wrong", token=None)[0] == 401
    assert hub.call("GET", "/user/alice/gitrtc/api/status", token=None)[0] in (302, 403)  # owner API: hub login

    ws = hub.base.replace("http", "ws", 1) + f"/user/alice/gitrtc/proxy/rooms/{room}?token={token}"

    async def edit_through_hub() -> str:
        async with YClient(f"{ws}&name=Bob&email=bob@example.org") as bob:
            await bob.wait_synced()
            source = bob.doc.get("source", type=Text)
            source.insert(len(str(source)), "Bob was here\n")
            async with YClient(f"{ws}&name=Witness") as witness:
                await witness.wait_synced()
                seen = witness.doc.get("source", type=Text)
                await async_wait_until(lambda: "Bob was here" in str(seen), what="the edit through the hub")
                return str(seen)

    assert asyncio.run(edit_through_hub()) == "# Notes\nBob was here\n"

    async def refused() -> int | None:
        bad = YClient(ws.replace(token, "wrong"))
        try:
            await bad.connect()
            await async_wait_until(lambda: bad.ws is None or bad.ws.closed, what="the refusal")
        finally:
            code = bad.ws.close_code if bad.ws is not None else None
            await bad.close()
        return code

    assert asyncio.run(refused()) == 4401

    status, done = hub.call("POST", "/user/alice/gitrtc/api/stop", {"message": "Notes from the hub"})
    assert status == 200 and done["commit"], done
    assert git(hub.repo, "rev-list", "--count", f"{head}..HEAD").strip() == "1"
    assert "Co-authored-by: Bob <bob@example.org>" in git(hub.repo, "log", "-1", "--format=%B")
    assert (hub.repo / "notes.md").read_text() == "# Notes\nBob was here\n"


@pytest.mark.timeout(360)  # two single-user servers and a JupyterLab page load: slow on a busy machine
def test_another_hub_user_joins_in_jupyterlab_through_the_hub(hub: Hub) -> None:
    """bob, a user of the same hub, joins alice's session from his own JupyterLab in a
    browser: his server's remote proxy reaches hers through the hub's public URL."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from .labsupport import chromium_page, expect, join_by_url, missing, run_async, show_panel

    why = missing()
    if why:
        pytest.skip(why)
    head = git(hub.repo, "rev-parse", "HEAD").strip()

    def server_up(user: str) -> bool:
        return hub.call("GET", f"/user/{user}/api/status")[0] == 200

    for user in ("alice", "bob"):
        assert hub.call("POST", "/hub/api/users", {"usernames": [user]})[0] in (201, 409)
        assert hub.call("POST", f"/hub/api/users/{user}/server")[0] in (201, 202, 400)  # 400: already running
        wait_until(functools.partial(server_up, user), 90, f"{user}'s server")
    status, body = hub.call("POST", "/user/alice/gitrtc/api/start", {"paths": ["notes.md"]})
    assert status == 200, body
    status, info = hub.call("GET", "/user/alice/gitrtc/api/status")
    assert status == 200 and info["running"], info
    link = hub.base + info["proxy_url"]  # the edit link alice's panel shows
    room = next(f["room"] for f in info["files"] if f["path"] == "notes.md")
    token = info["proxy_url"].split("#t=")[1]

    with chromium_page() as page:
        page.goto(f"{hub.base}/hub/login?next=/user/bob/lab")
        page.fill("#username_input", "bob")
        page.fill("#password_input", "anything")  # the dummy authenticator
        page.click("#login_submit")
        page.wait_for_url("**/user/bob/lab**", timeout=90_000)
        expect(page.locator("#jp-main-dock-panel")).to_be_visible()
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('gitrtc:join')")
        join_by_url(page, link, name="Bob")
        show_panel(page)
        page.locator(".gitrtc-joined-file", has_text="notes.md").click()
        editor = page.locator(".jp-FileEditor .cm-content").first
        expect(editor).to_contain_text("# Notes")  # (and the first test's edit)
        editor.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("Bob typed this in JupyterLab")

        ws = hub.base.replace("http", "ws", 1) + f"/user/alice/gitrtc/proxy/rooms/{room}?token={token}"

        async def seen() -> str:
            async with YClient(f"{ws}&name=Witness") as witness:
                await witness.wait_synced()
                text = witness.doc.get("source", type=Text)
                await async_wait_until(lambda: "in JupyterLab" in str(text), what="bob's edit through the hub")
                return str(text)

        assert run_async(seen()).endswith("\nBob typed this in JupyterLab")
        # his JupyterLab reached the session through his own server's remote proxy
        assert not (hub.repo.parent.parent / "bob" / "project" / "notes.md").exists()
        assert not page.errors, page.errors

    status, done = hub.call("POST", "/user/alice/gitrtc/api/stop", {"message": "Bob joined from his JupyterLab"})
    assert status == 200 and done["commit"], done
    assert git(hub.repo, "rev-list", "--count", f"{head}..HEAD").strip() == "1"
    assert "Bob typed this in JupyterLab" in (hub.repo / "notes.md").read_text()
    assert "Co-authored-by: Bob" in git(hub.repo, "log", "-1", "--format=%B")
