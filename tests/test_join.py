"""`rtc join` mirrors a session into a collaborator's own checkout, both ways."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from .conftest import FILES
from .support import RTC, RtcProcess, YClient, edit, git, make_repo, wait_until
from .test_cli import ws_url


class JoinProcess:
    """`rtc join` as a real process; its output is read by threads, so a wait for a line
    times out with a message instead of blocking on a pipe."""

    def __init__(self, url: str, folder: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [*RTC, "join", url, str(folder), "--name", "Joan", "--email", "joan@example.org", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._looked = 0  # lines before this one were matched by an earlier `wait_for`
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        with stream:
            for line in stream:  # one by one: a waiter sees each line as it arrives
                lines.append(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The next line of output that contains `text`."""

        def found() -> str | None:
            for i in range(self._looked, len(self.out)):
                if text in self.out[i]:
                    self._looked = i + 1
                    return self.out[i]
            if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                raise AssertionError(
                    f"rtc join exited ({self.proc.returncode}) before printing {text!r}: {''.join(self.err)[-2000:]}"
                )
            return None

        return wait_until(found, timeout=timeout, what=f"rtc join to print {text!r}")

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the exit; all of stdout and stderr."""
        self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return "".join(self.out), "".join(self.err)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        self.proc.kill()

    def send_signal(self, signal: int) -> None:
        self.proc.send_signal(signal)


def start_join(url: str, folder: Path, *extra: str) -> JoinProcess:
    return JoinProcess(url, folder, *extra)


def test_join_mirrors_both_ways_and_ends_with_the_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    owner = RtcProcess(repo, ["README.md", "docs"])
    joiner = None
    try:
        info = owner.wait_ready()
        joiner = start_join(info["url"], clone)
        joiner.wait_for("mirroring")
        # a local save in the clone (rename, as editors do) reaches the owner's disk
        tmp = clone / "README.md.tmp"
        tmp.write_text("# Project\n\nHello world.\nFrom Joan's editor.\n")
        os.replace(tmp, clone / "README.md")
        wait_until(lambda: (repo / "README.md").read_text().endswith("From Joan's editor.\n"), what="owner disk")
        # a remote edit reaches the clone's file
        asyncio.run(
            edit(ws_url(owner, "docs/guide.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "Alice: "))
        )
        wait_until(lambda: (clone / "docs/guide.md").read_text().startswith("Alice: Guide"), what="clone disk")
        done = owner.stop("-m", "joined work")
        assert done.returncode == 0, done.stderr
        out, err = joiner.communicate(timeout=30)
        assert joiner.returncode == 0, err
        commit = done.stdout.split()[0]
        assert f"commit {commit[:7]} on main" in out
    finally:
        owner.kill()
        if joiner is not None and joiner.poll() is None:
            joiner.kill()
            joiner.communicate()
    message = git(repo, "log", "-1", "--format=%B")
    assert "Co-authored-by: Joan <joan@example.org>" in message
    assert "Co-authored-by: Alice <alice@example.org>" in message
    for path in ("README.md", "docs/guide.md"):
        assert (clone / path).read_bytes() == git(repo, "show", f"HEAD:{path}").encode()


def test_join_refuses_uncommitted_changes_and_unknown_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    (clone / "README.md").write_text("local work\n")
    stranger = make_repo(tmp_path / "stranger", {"x.md": "x\n"})
    owner = RtcProcess(repo, ["README.md"])
    try:
        info = owner.wait_ready()
        done = subprocess.run([*RTC, "join", info["url"], str(clone)], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "uncommitted changes" in done.stderr
        assert (clone / "README.md").read_text() == "local work\n"
        done = subprocess.run([*RTC, "join", info["url"], str(stranger)], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "git fetch first" in done.stderr
        done = subprocess.run(
            [*RTC, "join", info["url"].split("#")[0] + "#t=wrong", str(clone)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0 and "token" in done.stderr
    finally:
        owner.terminate()
        owner.kill()


def test_join_plain_folder_kill_and_restart_keeps_offline_edits(tmp_path: Path) -> None:
    import json

    from pycrdt import Array

    repo = make_repo(tmp_path / "owner", FILES)
    folder = tmp_path / "plain"  # not a git checkout: just a folder that mirrors the session
    owner = RtcProcess(repo, ["README.md", "analysis.ipynb"])
    joiner = None
    try:
        info = owner.wait_ready()
        joiner = start_join(info["url"], folder)
        joiner.wait_for("mirroring")
        nb_path = folder / "analysis.ipynb"
        nb = json.loads(nb_path.read_text())
        nb["cells"][0]["source"] = ["# Title from Joan\n", "Some text"]
        nb_path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")  # in place

        async def edit_other_cell() -> None:
            async with YClient(ws_url(owner, "analysis.ipynb", "Alice", "alice@example.org")) as c:
                await c.wait_synced()
                c.doc.get("cells", type=Array)[1]["source"].insert(0, "# Alice\n")

        asyncio.run(edit_other_cell())
        wait_until(lambda: "Title from Joan" in (repo / "analysis.ipynb").read_text(), what="local edit to owner")
        wait_until(lambda: "# Alice" in nb_path.read_text(), what="remote edit to the mirror")
        joiner.kill()
        joiner.communicate()
        (folder / "README.md").write_text("# Project\n\nHello world.\nWritten offline.\n")
        asyncio.run(edit(ws_url(owner, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "Online. ")))
        joiner = start_join(info["url"], folder)
        wait_until(
            lambda: (repo / "README.md").read_text() == "Online. # Project\n\nHello world.\nWritten offline.\n",
            what="offline edit merged after restart",
        )
        wait_until(lambda: (folder / "README.md").read_text() == (repo / "README.md").read_text(), what="mirror")
        done = owner.stop("-m", "offline work")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
        assert joiner.returncode == 0
    finally:
        owner.kill()
        if joiner is not None and joiner.poll() is None:
            joiner.kill()
            joiner.communicate()
    committed = json.loads(git(repo, "show", "HEAD:analysis.ipynb"))
    assert "".join(committed["cells"][0]["source"]) == "# Title from Joan\nSome text"
    assert "".join(committed["cells"][1]["source"]).startswith("# Alice\n")
    for path in ("README.md", "analysis.ipynb"):
        assert (folder / path).read_bytes() == git(repo, "show", f"HEAD:{path}").encode()


def test_two_mirrors_and_a_client_edit_the_same_files_at_once(tmp_path: Path) -> None:
    import json

    from pycrdt import Array

    repo = make_repo(tmp_path / "owner", FILES)
    clones = [tmp_path / "c1", tmp_path / "c2"]
    for clone in clones:
        git(tmp_path, "clone", "-q", str(repo), str(clone))
    owner = RtcProcess(repo, ["README.md", "analysis.ipynb"])
    joins: list[JoinProcess] = []
    try:
        info = owner.wait_ready()
        for clone in clones:
            joins.append(start_join(info["url"], clone))
        for proc in joins:
            proc.wait_for("mirroring")
        # clone 1 saves in place, clone 2 via rename, a pycrdt client types: all at once
        (clones[0] / "README.md").write_text("# Project\n\nHello world.\nOne.\n")
        nb_path = clones[1] / "analysis.ipynb"
        nb = json.loads(nb_path.read_text())
        nb["cells"][0]["source"] = ["# Title by Two\n", "Some text"]
        tmp = nb_path.with_name("analysis.ipynb.tmp")
        tmp.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(tmp, nb_path)

        async def client() -> None:
            async with YClient(ws_url(owner, "analysis.ipynb", "Alice", "alice@example.org")) as c:
                await c.wait_synced()
                c.doc.get("cells", type=Array)[1]["source"].insert(0, "# Alice\n")
            await edit(ws_url(owner, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "A. "))

        asyncio.run(client())
        want_readme = "A. # Project\n\nHello world.\nOne.\n"

        def notebook_ok(path: Path) -> bool:
            cells = json.loads(path.read_text())["cells"]
            return (
                "".join(cells[0]["source"]) == "# Title by Two\nSome text"
                and "".join(cells[1]["source"]) == "# Alice\nprint('hi')"
                and len(cells) == 2
            )

        for folder in (repo, *clones):
            wait_until(lambda f=folder: (f / "README.md").read_text() == want_readme, what=f"README in {folder.name}")
            wait_until(lambda f=folder: notebook_ok(f / "analysis.ipynb"), what=f"notebook in {folder.name}")
        done = owner.stop("-m", "three at once")
        assert done.returncode == 0, done.stderr
        for proc in joins:
            proc.communicate(timeout=30)
            assert proc.returncode == 0
    finally:
        owner.kill()
        for proc in joins:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert git(repo, "show", "HEAD:README.md") == want_readme
    for clone in clones:
        for path in ("README.md", "analysis.ipynb"):
            assert (clone / path).read_bytes() == git(repo, "show", f"HEAD:{path}").encode()


def test_bring_changes_merges_uncommitted_local_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    (clone / "README.md").write_text("# Project\n\nHello world.\nUncommitted here.\n")
    owner = RtcProcess(repo, ["README.md"])
    joiner = None
    try:
        info = owner.wait_ready()
        asyncio.run(edit(ws_url(owner, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "Live. ")))
        joiner = start_join(info["url"], clone, "--bring-changes")
        expected = "Live. # Project\n\nHello world.\nUncommitted here.\n"
        wait_until(lambda: (repo / "README.md").read_text() == expected, what="local work in the session")
        wait_until(lambda: (clone / "README.md").read_text() == expected, what="merged file in the clone")
        done = owner.stop("-m", "brought")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
    finally:
        owner.kill()
        if joiner is not None and joiner.poll() is None:
            joiner.kill()
            joiner.communicate()
    assert git(repo, "show", "HEAD:README.md") == expected


def test_join_keeps_edits_made_while_the_server_is_down(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "owner", FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    owner = RtcProcess(repo, ["README.md"])
    joiner = None
    try:
        info = owner.wait_ready()
        joiner = start_join(info["url"], clone)
        joiner.wait_for("mirroring")
        owner.kill()  # the owner's process dies; the join keeps running and retrying
        joiner.wait_for("disconnected")
        expected = "# Project\n\nHello world.\nWritten while the server was down.\n"
        (clone / "README.md").write_text(expected)
        owner = RtcProcess(repo, ["--port", str(info["port"])])  # resumed: same URL and tokens
        owner.wait_ready()
        wait_until(
            lambda: (repo / "README.md").read_text() == expected,
            timeout=40,
            what="the offline edit reaches the resumed session",
        )
        done = owner.stop("-m", "offline edit")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
        assert joiner.returncode == 0
    finally:
        owner.kill()
        if joiner is not None and joiner.poll() is None:
            joiner.kill()
            joiner.communicate()
    assert git(repo, "show", "HEAD:README.md") == expected
    assert "Co-authored-by: Joan <joan@example.org>" in git(repo, "log", "-1", "--format=%B")


@pytest.mark.timeout(300)  # a minute asleep, two starts and a restart: more than the usual bound
def test_laptop_sleeps_a_minute_while_the_server_restarts(tmp_path: Path) -> None:
    import signal as sig

    repo = make_repo(tmp_path / "owner", FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    owner = RtcProcess(repo, ["README.md"])
    joiner = None
    try:
        info = owner.wait_ready()
        joiner = start_join(info["url"], clone)
        joiner.wait_for("mirroring")
        (clone / "README.md").write_text("# Project\n\nHello world.\nBefore sleeping.\n")
        wait_until(lambda: "Before sleeping" in (repo / "README.md").read_text(), what="first edit")
        joiner.send_signal(sig.SIGSTOP)  # the lid closes
        owner.kill()
        owner = RtcProcess(repo, ["--port", str(info["port"])])
        owner.wait_ready()
        asyncio.run(
            edit(ws_url(owner, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "While asleep. "))
        )
        import time

        time.sleep(60)  # the scenario: a client paused for a minute (not a wait for a condition)
        joiner.send_signal(sig.SIGCONT)  # the lid opens
        expected = "While asleep. # Project\n\nHello world.\nBefore sleeping.\n"
        wait_until(lambda: (clone / "README.md").read_text() == expected, timeout=60, what="the woken mirror")
        (clone / "README.md").write_text(expected + "After waking.\n")
        wait_until(
            lambda: (repo / "README.md").read_text() == expected + "After waking.\n",
            timeout=30,
            what="an edit after waking",
        )
        done = owner.stop("-m", "slept")
        assert done.returncode == 0, done.stderr
        joiner.communicate(timeout=30)
    finally:
        owner.kill()
        if joiner is not None and joiner.poll() is None:
            joiner.send_signal(sig.SIGCONT)
            joiner.kill()
            joiner.communicate()
    assert git(repo, "show", "HEAD:README.md") == expected + "After waking.\n"
