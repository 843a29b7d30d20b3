"""gitrtc inside a real JupyterLab (the `gitrtc.jupyter` server extension and the
labextension), driven by Playwright in Debian's Chromium.

One `jupyter lab --no-browser` on a loopback port serves the module (it is the slow part);
each test has its own repository and workspace. Needs: JupyterLab (the `lab` extra), the
built extension (`labextension/build.sh`, run by scripts/setup), chromium, ipykernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Text

from .support import RtcProcess, YClient, async_wait_until, git, make_repo, wait_until

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e '.[test]')")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from .labsupport import (  # noqa: E402  (after the skips: it drives playwright)
    TIMEOUT_MS,
    Background,
    Lab,
    chromium_page,
    dialog_accept,
    dismiss,
    end_rtc,
    expect,
    join_by_url,
    launch_lab,
    missing,
    notebook,
    room_of,
    run_async,
    session_info,
    show_panel,
    stop_lab,
    ws_url,
)

pytestmark = pytest.mark.browser


def serve_lab(tmp_path_factory: pytest.TempPathFactory, python: str = sys.executable) -> Iterator[Lab]:
    """The module's JupyterLab (run by `python`) on a repository of three files; any
    session a test left running is stopped after."""
    why = missing()
    if why:
        pytest.skip(why)
    home = tmp_path_factory.mktemp("jupyter")
    root = make_repo(
        tmp_path_factory.mktemp("lab") / "repo",
        {"analysis.ipynb": notebook("x = 1"), "notes.md": "# Notes\n", "other.txt": "not shared\n"},
    )
    server = launch_lab(home, root, python=python)
    try:
        yield server
    finally:
        end_rtc(root)
        code = stop_lab(server)
        if code not in (0, -15, 143) and os.environ.get("GITRTC_SHOW_LAB_LOG"):
            print((home / "lab.log").read_text())


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from serve_lab(tmp_path_factory)


@pytest.fixture
def page(lab: Lab) -> Iterator[Any]:
    with chromium_page() as page:
        yield page


def open_lab(page: Any, lab: Lab, workspace: str) -> None:
    page.goto(lab.url(workspace))
    expect(page.locator(".jp-DirListing-item").first).to_be_visible()


def cell_text(page: Any, index: int = 0) -> str:
    return str(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content").nth(index).inner_text())


def test_owner_shares_from_jupyterlab_sees_edits_live_and_ends_with_one_commit(lab: Lab, page: Any) -> None:
    head = git(lab.root, "rev-parse", "HEAD").strip()
    open_lab(page, lab, "share")
    # Share live… from the file browser's context menu, on the notebook
    page.locator(".jp-DirListing-item", has_text="analysis.ipynb").click(button="right")
    page.locator(".lm-Menu-item", has_text="Share live…").click()
    dialog_accept(page)
    show_panel(page)
    edit_link = page.locator(".gitrtc-edit-link .gitrtc-url")
    expect(edit_link).to_contain_text("/gitrtc/proxy/#t=")
    info = session_info(lab.root)  # a session exactly as `rtc start` makes it
    assert info["url"].split("#t=")[1] in edit_link.inner_text()
    status = subprocess.run(
        [sys.executable, "-m", "gitrtc", "status", "--json"], cwd=lab.root, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert [f["path"] for f in json.loads(status.stdout)["files"]] == ["analysis.ipynb"]
    expect(page.locator(".gitrtc-StatusItem")).to_contain_text("Live")

    # the owner opens the shared file from the file browser: JupyterLab offers the live view
    # (its notebook editor bound to the session room), not the file on disk
    page.locator(".jp-DirListing-item", has_text="analysis.ipynb").dblclick()
    dialog_accept(page)  # Open live view
    expect(page.locator(".jp-NotebookPanel")).to_have_count(1)
    expect(page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first).to_have_text("x = 1")
    expect(page.locator(".gitrtc-kernel-label")).to_be_visible()

    # a pycrdt client edits the cell: JupyterLab shows it
    room = run_async(room_of(info, "analysis.ipynb"))

    async def alice_edits() -> None:
        async with YClient(ws_url(info, room, "Alice", "alice@example.org")) as alice:
            await alice.wait_synced()
            source = alice.doc.get("cells", type=Array)[0]["source"]
            source.insert(len(str(source)), "\ny = 2")
            async with YClient(ws_url(info, room, "Witness")) as witness:  # the edit reached the server
                await witness.wait_synced()

    run_async(alice_edits())
    expect(page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first).to_have_text(re.compile(r"x = 1\s*y = 2"))

    # the owner ends the session from the panel, with a message
    page.locator(".gitrtc-end").click()
    dialog_accept(page, "Edited from JupyterLab")
    done = page.locator(".jp-Dialog", has_text="Session ended")
    expect(done).to_contain_text("1 commit on main")
    dialog_accept(page)
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    assert git(lab.root, "rev-list", "--count", f"{head}..HEAD").strip() == "1"
    message = git(lab.root, "log", "-1", "--format=%B")
    assert message.startswith("Edited from JupyterLab")
    assert "Co-authored-by: Alice <alice@example.org>" in message
    assert "Owner Person" not in message  # the owner authors it, and is no co-author
    saved = json.loads((lab.root / "analysis.ipynb").read_text())
    assert saved["cells"][0]["source"] == "x = 1\ny = 2"
    wait_until(lambda: not (lab.root / ".git" / "rtc" / "session.json").exists(), what="the session to end")
    expect(page.locator(".gitrtc-idle")).to_be_visible()
    assert not page.errors, page.errors


@contextlib.contextmanager
def fake_session(answer: dict[str, Any]) -> Iterator[str]:
    """A server whose `/api/session` answers `answer` (what another gitrtc might say)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/#t=abc"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def other_session(tmp_path: Path) -> Iterator[RtcProcess]:
    """An `rtc start` session of another repository (what a JupyterLab user joins)."""
    repo = make_repo(tmp_path / "other", {"shared.ipynb": notebook("n = 1"), "readme.md": "hello\n"})
    rtc = RtcProcess(repo, ["shared.ipynb", "readme.md"])
    rtc.wait_ready()
    try:
        yield rtc
    finally:
        rtc.kill()


def test_jupyterlab_joins_a_session_by_url_edits_and_runs_with_its_own_kernel(
    lab: Lab, page: Any, other_session: RtcProcess
) -> None:
    info = other_session.info
    nb_room = run_async(room_of(info, "shared.ipynb"))
    text_room = run_async(room_of(info, "readme.md"))
    open_lab(page, lab, "join")
    join_by_url(page, info["url"])
    show_panel(page)
    page.locator(".gitrtc-joined-file", has_text="shared.ipynb").click()
    cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    expect(cell).to_have_text("n = 1")
    expect(page.locator(".gitrtc-kernel-label")).to_contain_text("your own kernel")

    # type into the cell in JupyterLab's own editor, then run it with this JupyterLab's kernel
    cell.click()
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.type("print(n + 41)")
    expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"ipykernel\) \| Idle"))).to_be_visible()
    page.keyboard.press("Shift+Enter")
    expect(page.locator(".jp-NotebookPanel .jp-OutputArea-output").first).to_contain_text("42")

    async def seen_by_pycrdt() -> tuple[str, list[Any]]:
        async with YClient(ws_url(info, nb_room, "Carol")) as carol:
            await carol.wait_synced()
            cells = carol.doc.get("cells", type=Array)

            def done() -> bool:
                outputs = cells[0]["outputs"].to_py()
                return str(cells[0]["source"]) == "n = 1\nprint(n + 41)" and any(
                    "42" in "".join(o.get("text", "")) for o in outputs
                )

            await async_wait_until(done, what="JupyterLab's edit and output in the room")
            return str(cells[0]["source"]), cells[0]["outputs"].to_py()

    source, outputs = run_async(seen_by_pycrdt())
    assert source == "n = 1\nprint(n + 41)"
    assert outputs[0]["output_type"] == "stream"

    # gitrtc's own browser client in the same notebook: its cursor shows in JupyterLab with
    # its name, and JupyterLab's shows there with the JupyterLab user's
    web = page.context.browser.new_context().new_page()
    web.set_default_timeout(TIMEOUT_MS)
    web.goto(f"{info['url']}&f=shared.ipynb")
    web.fill("#id-name", "Dana")
    web.click(".identity-form button[type=submit]")
    web_cell = web.locator(".cm-content").first
    expect(web_cell).to_contain_text("print(n + 41)")
    web_cell.click()
    web.keyboard.press("End")
    expect(page.locator(".jp-NotebookPanel .cm-ySelectionInfo", has_text="Dana")).to_have_count(1)
    cell.click()
    expect(web.locator(".cm-ySelectionInfo", has_text="Bob")).to_have_count(1)
    web.context.close()

    # a text file in JupyterLab's file editor, live too
    page.locator(".gitrtc-joined-file", has_text="readme.md").click()
    editor = page.locator(".jp-FileEditor .cm-content").first
    expect(editor).to_have_text("hello")
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("from JupyterLab")

    async def text_seen() -> str:
        async with YClient(ws_url(info, text_room, "Carol")) as carol:
            await carol.wait_synced()
            source = carol.doc.get("source", type=Text)
            await async_wait_until(lambda: "from JupyterLab" in str(source), what="the text edit in the room")
            return str(source)

    assert run_async(text_seen()) == "hello\nfrom JupyterLab"
    # nothing of the session was written into this JupyterLab's own files
    assert not (lab.root / "shared.ipynb").exists() and not (lab.root / "readme.md").exists()

    # the network drops (the session's process is gone): a notice, and the editor stays
    other_session.proc.kill()
    expect(page.get_by_text("Lost the connection to live session")).to_be_visible()
    expect(page.locator(".jp-FileEditor .cm-content").first).to_contain_text("from JupyterLab")
    assert not page.errors, page.errors


def test_bad_links_and_an_ended_session_get_a_clear_message(lab: Lab, page: Any, other_session: RtcProcess) -> None:
    info = other_session.info
    open_lab(page, lab, "bad")
    join_by_url(page, "hello there", name=None)
    expect(page.locator(".jp-Dialog", has_text="Not a session link")).to_be_visible()
    dismiss(page)
    join_by_url(page, info["url"].split("#")[0] + "#t=not-the-token")
    expect(page.locator(".jp-Dialog", has_text="revoked")).to_be_visible()
    dismiss(page)
    join_by_url(page, f"http://127.0.0.1:{lab.port}/#t=abc", name=None)  # not a session at all
    expect(page.locator(".jp-Dialog", has_text="not a gitrtc session")).to_be_visible()
    dismiss(page)

    other = {"session": "x", "epoch": "e", "role": "editor", "state": "live", "files": [], "version": "9.1"}
    with fake_session(other) as url:
        join_by_url(page, url, name=None)  # a session of another gitrtc major version
        expect(page.locator(".jp-Dialog", has_text="runs gitrtc 9.1")).to_be_visible()
        dismiss(page)

    join_by_url(page, info["url"], name=None)  # the name was remembered
    show_panel(page)
    page.locator(".gitrtc-joined-file", has_text="shared.ipynb").click()
    expect(page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first).to_have_text("n = 1")
    done = other_session.stop("-m", "ended while JupyterLab was in it")
    assert done.returncode == 0, done.stderr
    ended = page.locator(".jp-Dialog", has_text="has ended")
    expect(ended).to_be_visible()
    ended.get_by_role("button", name="Save a copy").click()  # explicit: the only way into own files
    dialog_accept(page, "shared-copy.ipynb")
    expect(page.locator(".jp-NotebookPanel")).to_have_count(0)  # no broken editor left behind
    wait_until(lambda: (lab.root / "shared-copy.ipynb").is_file(), what="the copy")
    copy = json.loads((lab.root / "shared-copy.ipynb").read_text())
    assert "".join(copy["cells"][0]["source"]) == "n = 1"
    assert not page.errors, page.errors


def test_a_view_only_link_opens_read_only_in_jupyterlab(lab: Lab, page: Any, other_session: RtcProcess) -> None:
    info = other_session.info
    open_lab(page, lab, "viewer")
    join_by_url(page, info["readonly_url"], name="Vera")
    show_panel(page)
    page.locator(".gitrtc-joined-file", has_text="shared.ipynb").click()
    cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    expect(cell).to_have_text("n = 1")
    expect(page.locator(".gitrtc-kernel-label")).to_contain_text("view only")
    expect(cell).to_have_attribute("aria-readonly", "true")
    cell.click()
    page.keyboard.type("zzz")
    expect(cell).to_have_text("n = 1")  # nothing typed that the session would refuse
    assert not page.errors, page.errors


def test_the_panel_commits_invites_and_kicks(lab: Lab, page: Any) -> None:
    head = git(lab.root, "rev-parse", "HEAD").strip()
    status, body = lab.api("POST", "start", {"paths": ["notes.md"]})
    assert status == 200, body
    bg = Background()
    try:
        info = session_info(lab.root)
        room = run_async(room_of(info, "notes.md"))
        alice = YClient(ws_url(info, room, "Alice", "alice@example.org"))

        async def alice_edits() -> None:
            await alice.connect()
            await alice.wait_synced()
            source = alice.doc.get("source", type=Text)
            source.insert(len(str(source)), "Alice was here\n")
            await alice.flush()

        bg.run(alice_edits())
        open_lab(page, lab, "actions")
        show_panel(page)
        row = page.locator(".gitrtc-participant", has_text="Alice")
        expect(row).to_contain_text("Alice (editor)")

        # Commit…: a commit with the typed message; the session goes on
        page.locator(".gitrtc-commit").click()
        dialog_accept(page, "Checkpoint from the panel")
        done = page.locator(".jp-Dialog", has_text="Committed")
        expect(done).to_contain_text("1 commit on main")
        dialog_accept(page)
        wait_until(lambda: git(lab.root, "rev-list", "--count", f"{head}..HEAD").strip() == "1", what="the commit")
        message = git(lab.root, "log", "-1", "--format=%B")
        assert message.startswith("Checkpoint from the panel")
        assert "Co-authored-by: Alice <alice@example.org>" in message
        assert git(lab.root, "show", "HEAD:notes.md") == "# Notes\nAlice was here\n"
        assert session_info(lab.root)["pid"] == info["pid"]  # still the same, running session
        expect(page.locator(".gitrtc-StatusItem")).to_contain_text("Live")

        # Invite…: a personal link the session accepts
        page.locator(".gitrtc-invite").click()
        dialog_accept(page, "Zed")
        personal = page.locator(".jp-Dialog", has_text="Personal link for Zed")
        expect(personal).to_contain_text("#t=")
        link = re.search(r"https?://\S+#t=[\w-]+", personal.inner_text())
        assert link, personal.inner_text()
        dialog_accept(page)
        zed_token = link.group(0).split("#t=")[1]
        assert zed_token not in (info["token"], info["url"].split("#t=")[1])
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{info['port']}/api/session?token={zed_token}") as r:
            assert r.status == 200

        # Kick: Alice's connection is closed with 4403 and she is gone from the panel
        row.locator(".gitrtc-kick").click()
        dialog_accept(page)  # Remove
        assert bg.run(alice.wait_closed()) == 4403
        expect(page.locator(".gitrtc-participant", has_text="Alice")).to_have_count(0)

        assert not page.errors, page.errors
    finally:
        bg.run(alice.close())
        bg.close()
        end_rtc(lab.root)


@pytest.fixture
def kernel_session(tmp_path: Path) -> Iterator[RtcProcess]:
    """An `rtc start --kernels` session: the owner lets participants run its shared kernel."""
    source = "import os\nprint('runs in', os.getcwd())"
    repo = make_repo(tmp_path / "kernels", {"run.ipynb": notebook(source)})
    rtc = RtcProcess(repo, ["--kernels", "run.ipynb"])
    rtc.wait_ready()
    try:
        yield rtc
    finally:
        rtc.kill()


@pytest.mark.timeout(240)  # two kernels started, a run interrupted: slow on a busy machine
def test_jupyterlab_runs_a_live_notebook_on_the_sessions_shared_kernel(
    lab: Lab, page: Any, kernel_session: RtcProcess
) -> None:
    info = kernel_session.info
    room = run_async(room_of(info, "run.ipynb"))
    open_lab(page, lab, "shared-kernel")
    join_by_url(page, info["url"], name="Bob")
    show_panel(page)
    page.locator(".gitrtc-joined-file", has_text="run.ipynb").click()
    cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    expect(cell).to_contain_text("os.getcwd()")
    choice = page.locator(".gitrtc-kernel-choice")
    expect(choice).to_contain_text("the session’s shared kernel (on Owner Person’s machine)")
    expect(choice).to_have_value("own")  # the joiner's own kernel unless chosen
    choice.select_option("shared")
    expect(page.locator(".gitrtc-kernel-label")).to_have_attribute("title", re.compile("shared kernel"))

    cell.click()
    page.keyboard.press("Shift+Enter")
    # the session's kernel runs in the notebook's folder of the owner's checkout, which no
    # kernel of this JupyterLab (rooted elsewhere) would print
    output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
    expect(output).to_contain_text(f"runs in {kernel_session.repo}")
    expect(page.locator(".gitrtc-shared-status")).to_contain_text("idle")

    async def seen_by_pycrdt() -> list[Any]:
        async with YClient(ws_url(info, room, "Carol")) as carol:
            await carol.wait_synced()
            cells = carol.doc.get("cells", type=Array)
            await async_wait_until(
                lambda: str(kernel_session.repo) in json.dumps(cells[0]["outputs"].to_py()), what="the shared output"
            )
            state = await carol.request("kernel", "state")
            return [cells[0]["outputs"].to_py(), state]

    outputs, state = run_async(seen_by_pycrdt())
    assert outputs[0]["output_type"] == "stream" and outputs[0]["name"] == "stdout"
    ran = state["shared"]["cells"]["c0"]
    assert ran["by"] == "Bob" and ran["state"] == "done"  # attributed to the JupyterLab user

    # a cell that never ends, interrupted from the toolbar: the shared kernel stops it
    second = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").nth(1)  # run-and-advance made it
    second.click()
    page.keyboard.type("import time; print('looping', flush=True); time.sleep(600)")
    page.keyboard.press("Shift+Enter")
    expect(page.locator(".jp-NotebookPanel .jp-Cell").nth(1)).to_contain_text("looping")
    expect(page.locator(".gitrtc-shared-status")).to_contain_text("busy")
    page.locator(".gitrtc-shared-interrupt").click()
    expect(page.locator(".jp-NotebookPanel .jp-Cell").nth(1)).to_contain_text("KeyboardInterrupt")
    expect(page.locator(".gitrtc-shared-status")).to_contain_text("idle")

    # back to its own kernel: the cell runs in this JupyterLab again
    choice.select_option("own")
    expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"ipykernel\) \| Idle"))).to_be_visible()
    cell.click()
    page.keyboard.press("Shift+Enter")
    expect(output).to_contain_text("runs in ")
    expect(output).not_to_contain_text(str(kernel_session.repo))
    assert not page.errors, page.errors


@pytest.mark.timeout(240)  # two JupyterLab servers started and stopped
def test_a_session_shared_from_jupyterlab_is_paused_when_jupyter_stops_and_resumes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The Jupyter server stops (SIGTERM, as Ctrl-C or a hub's culling): the session it
    started pauses, never lost; sharing again from the next server resumes it, same links."""
    from gitrtc.sessionfile import pid_alive

    home = tmp_path_factory.mktemp("jupyter-restart")
    root = make_repo(tmp_path_factory.mktemp("restart") / "repo", {"notes.md": "# Notes\n"})
    labs = [launch_lab(home, root)]
    try:
        status, body = labs[0].api("POST", "start", {"paths": ["notes.md"]})
        assert status == 200, body
        info = session_info(root)
        room = run_async(room_of(info, "notes.md"))

        async def alice_edits() -> None:
            async with YClient(ws_url(info, room, "Alice", "alice@example.org")) as alice:
                await alice.wait_synced()
                source = alice.doc.get("source", type=Text)
                source.insert(len(str(source)), "kept across the restart\n")
                async with YClient(ws_url(info, room, "Witness")) as witness:
                    await witness.wait_synced()
                    seen = witness.doc.get("source", type=Text)
                    await async_wait_until(lambda: "kept" in str(seen), what="the edit stored")

        run_async(alice_edits())
        stop_lab(labs[0])
        assert not pid_alive(info["pid"])  # the server's exit waited for the session to pause
        state = subprocess.run(
            [sys.executable, "-m", "gitrtc", "status", "--json"], cwd=root, capture_output=True, text=True
        )
        assert json.loads(state.stdout)["state"] == "paused", state.stdout + state.stderr
        assert (root / "notes.md").read_text() == "# Notes\nkept across the restart\n"  # written back
        assert git(root, "rev-list", "--count", "HEAD").strip() == "1"  # no commit: paused, not ended

        labs.append(launch_lab(home, root))
        status, body = labs[1].api("GET", "status")
        assert status == 200 and body["running"] is False and body["paused"] is True, body
        status, body = labs[1].api("POST", "start", {"paths": ["notes.md"]})  # Share live… again
        assert status == 200, body
        resumed = session_info(root)
        assert resumed["token"] == info["token"] and resumed["pid"] != info["pid"]  # same links

        async def read_again() -> str:
            room_now = await room_of(resumed, "notes.md")
            async with YClient(ws_url(resumed, room_now, "Bob")) as bob:
                await bob.wait_synced()
                return str(bob.doc.get("source", type=Text))

        assert run_async(read_again()) == "# Notes\nkept across the restart\n"
        status, done = labs[1].api("POST", "stop", {"message": "Across a Jupyter restart"})
        assert status == 200 and done["commit"], done
        assert "Co-authored-by: Alice <alice@example.org>" in git(root, "log", "-1", "--format=%B")
    finally:
        end_rtc(root)
        for server in labs:
            stop_lab(server)


def test_an_ordinary_notebook_still_runs_on_its_kernel(lab: Lab, page: Any) -> None:
    """The extension replaces JupyterLab's cell executor (for the session's shared kernel):
    every other notebook must run exactly as before, on its own kernel."""
    (lab.root / "plain.ipynb").write_text(notebook("print(6 * 7)"))
    try:
        open_lab(page, lab, "plain")
        page.evaluate("() => { void window.jupyterapp.commands.execute('docmanager:open', {path: 'plain.ipynb'}); }")
        cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
        expect(cell).to_have_text("print(6 * 7)")
        expect(page.locator(".gitrtc-kernel-label")).to_have_count(0)  # not a live document
        expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"ipykernel\) \| Idle"))).to_be_visible()
        cell.click()
        page.keyboard.press("Shift+Enter")
        expect(page.locator(".jp-NotebookPanel .jp-OutputArea-output").first).to_have_text("42")
        assert not page.errors, page.errors
    finally:
        (lab.root / "plain.ipynb").unlink()


def test_undo_in_jupyterlab_takes_back_only_its_own_edits(lab: Lab, page: Any, other_session: RtcProcess) -> None:
    """The session's undo behaviour in JupyterLab's editors: Ctrl-Z takes back what this
    JupyterLab typed, never another participant's edit made meanwhile (file and cell)."""
    info = other_session.info
    text_room = run_async(room_of(info, "readme.md"))
    nb_room = run_async(room_of(info, "shared.ipynb"))
    open_lab(page, lab, "undo")
    join_by_url(page, info["url"])
    show_panel(page)
    carol = Background()
    clients: list[YClient] = []

    def round_trip(room: str, file: str, editor: Any, keys: list[str], typed: str, before: str, after: str) -> None:
        """Bob types `typed` (after pressing `keys`) in JupyterLab, Carol inserts a line
        at the start, Bob's Ctrl-Z: the room holds Carol's line and not Bob's typing."""
        client = carol.run(_connect(ws_url(info, room, "Carol")))
        clients.append(client)
        page.locator(".gitrtc-joined-file", has_text=file).click()
        expect(editor).to_contain_text(before.strip())
        editor.click()
        for key in keys:
            page.keyboard.press(key)
        page.keyboard.type(typed)
        carol.run(_await_text(client, after))
        carol.run(_edit_text(client, lambda t: t.insert(0, "# Carol\n")))  # Carol's edit, after Bob's
        expect(editor).to_contain_text("# Carol")
        editor.click()
        page.keyboard.press("Control+z")
        assert carol.run(_await_text(client, "# Carol\n" + before)) == "# Carol\n" + before

    try:
        round_trip(
            text_room,
            "readme.md",
            page.locator(".jp-FileEditor .cm-content").first,
            ["Control+Home", "End"],
            " mine",
            "hello\n",
            "hello mine\n",
        )
        round_trip(
            nb_room,
            "shared.ipynb",
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content").first,
            ["End"],
            "0",
            "n = 1",
            "n = 10",
        )
        assert not page.errors, page.errors
    finally:
        for client in clients:
            carol.run(client.close())
        carol.close()


async def _connect(url: str) -> YClient:
    client = YClient(url)
    await client.__aenter__()
    await client.wait_synced()
    return client


def _text_of(client: YClient) -> Text:
    """The text a client edits: a text file's `source`, or a notebook's first cell's."""
    cells = client.doc.get("cells", type=Array)
    return cells[0]["source"] if len(cells) else client.doc.get("source", type=Text)  # type: ignore[no-any-return]


async def _await_text(client: YClient, want: str) -> str:
    await async_wait_until(lambda: str(_text_of(client)) == want, what=f"the room's text to be {want!r}")
    return str(_text_of(client))


async def _edit_text(client: YClient, change: Any) -> None:
    change(_text_of(client))
    await client.flush()
