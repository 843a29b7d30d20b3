"""`rtc` end to end as a user runs it: real processes, real repositories, checked with git."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from pycrdt import Text

from .conftest import FILES
from .support import RTC, RtcProcess, YClient, async_wait_until, edit, git, make_repo


def ws_url(proc: RtcProcess, path: str, name: str, email: str, role: str = "token") -> str:
    room = next(f["room"] for f in _files(proc) if f["path"] == path)
    return f"{proc.ws_base}{room}?token={proc.info[role]}&name={name}&email={email}"


def _files(proc: RtcProcess) -> list[dict]:
    import urllib.request

    req = urllib.request.Request(f"{proc.base}/api/session", headers={"Authorization": f"Bearer {proc.info['token']}"})
    with urllib.request.urlopen(req) as response:
        return json.loads(response.read())["files"]


def test_start_edit_stop_makes_one_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    (repo / "unrelated.txt").write_text("staged work\n")
    git(repo, "add", "unrelated.txt")
    (repo / "src/tool.py").write_text("def f():\n    return 2  # unstaged\n")
    base = git(repo, "rev-parse", "HEAD").strip()
    proc = RtcProcess(repo, ["README.md", "docs"])
    try:
        proc.wait_ready()
        assert stat.S_IMODE(proc.session_file.stat().st_mode) == 0o600
        for key in ("session", "url", "readonly_url", "port", "pid", "token", "readonly_token"):
            assert key in proc.info
        assert proc.info["url"].endswith("/#t=" + proc.info["token"])
        asyncio.run(
            edit(
                ws_url(proc, "README.md", "Alice Doe", "alice@example.org"),
                lambda t: t.insert(len(t), "Alice was here.\n"),
            )
        )
        asyncio.run(edit(ws_url(proc, "docs/guide.md", "Bob", ""), lambda t: t.insert(0, "Bob: ")))
        asyncio.run(
            edit(
                ws_url(proc, "docs/guide.md", "Vera Viewer", "vera@example.org", "readonly_token"),
                lambda t: t.insert(0, "nope"),
            )
        )
        done = proc.stop("-m", "Rework the docs")
    finally:
        proc.kill()
    assert done.returncode == 0, done.stderr
    commit = done.stdout.strip().splitlines()[0]
    assert git(repo, "rev-parse", "HEAD").strip() == commit
    assert git(repo, "rev-parse", "HEAD^").strip() == base
    assert git(repo, "rev-list", "--count", f"{base}..HEAD").strip() == "1"
    changed = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD").split()
    assert sorted(changed) == ["README.md", "docs/guide.md"]
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith("Rework the docs\n")
    assert "Co-authored-by: Alice Doe <alice@example.org>" in message
    assert "Co-authored-by: Bob <bob@users.gitrtc.invalid>" in message
    assert "Vera" not in message and "Owner Person" not in message
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "Owner Person <owner@example.org>"
    assert git(repo, "show", "HEAD:README.md") == "# Project\n\nHello world.\nAlice was here.\n"
    assert git(repo, "show", "HEAD:docs/guide.md").startswith("Bob: Guide")
    status = git(repo, "status", "--porcelain")
    assert "README.md" not in status and "guide.md" not in status
    assert "M  unrelated.txt" in status.splitlines()  # still staged
    assert " M src/tool.py" in status.splitlines()  # still unstaged
    assert not proc.session_file.exists()
    assert not list((repo / ".git/rtc/sessions").glob("*"))


def test_a_session_in_a_linked_worktree_is_stopped_from_a_subfolder(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    tree = tmp_path / "feature-tree"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(tree))
    gitdir = Path(git(tree, "rev-parse", "--absolute-git-dir").strip())
    proc = RtcProcess(tree, ["README.md"], gitdir=gitdir)
    try:
        proc.wait_ready()
        asyncio.run(edit(ws_url(proc, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "W. ")))
        done = subprocess.run(
            [*RTC, "stop", "-m", "from the worktree"], cwd=tree / "docs", capture_output=True, text=True
        )
        proc.proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "feature:README.md").startswith("W. # Project")
    assert git(repo, "log", "-1", "--format=%s", "main").strip() == "initial"  # the main checkout's branch untouched
    assert git(tree, "status", "--porcelain") == ""  # the committed file is clean in the worktree's index


def test_nothing_changed_means_no_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    before = {p: (repo / p).read_bytes() for p in ("README.md", "analysis.ipynb")}
    head = git(repo, "rev-parse", "HEAD").strip()
    proc = RtcProcess(repo, [])
    try:
        proc.wait_ready()
        out, err = proc.terminate(signal.SIGTERM)
    finally:
        proc.kill()
    assert proc.proc.returncode == 0, err
    assert "nothing changed" in out
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert {p: (repo / p).read_bytes() for p in before} == before
    assert git(repo, "status", "--porcelain") == ""


def test_sigterm_commits_with_the_start_message(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md", "-m", "Session message"])
    try:
        proc.wait_ready()
        asyncio.run(edit(ws_url(proc, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "X")))
        out, err = proc.terminate(signal.SIGTERM)
    finally:
        proc.kill()
    assert proc.proc.returncode == 0, err
    assert "1 commit on main" in out
    assert git(repo, "log", "-1", "--format=%s").strip() == "Session message"
    assert git(repo, "show", "HEAD:README.md").startswith("X# Project")


def run_rtc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RTC, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_refusals_each_have_a_one_line_reason(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    done = run_rtc(outside, "start", "--no-open", "--port", "0")
    assert done.returncode != 0 and "not in a git repository" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    repo = make_repo(tmp_path / "r", FILES)
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", repo / "link.txt")
    cases = {
        ("start", "--no-open", "--port", "0", "missing.md"): "no such file",
        ("start", "--no-open", "--port", "0", "../secret.txt"): "outside the repository",
        ("start", "--no-open", "--port", "0", "link.txt"): "outside the repository",
        ("start", "--no-open", "--port", "0", ".git/config"): ".git",
    }
    for args, expected in cases.items():
        done = run_rtc(repo, *args)
        assert done.returncode != 0, args
        assert expected in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr

    git(repo, "checkout", "-q", "--detach")
    done = run_rtc(repo, "start", "--no-open", "--port", "0")
    assert done.returncode != 0 and "detached" in done.stderr
    git(repo, "checkout", "-q", "main")

    unborn = tmp_path / "unborn"
    unborn.mkdir()
    git(unborn, "init", "-q", "-b", "main")
    (unborn / "a.md").write_text("a")
    done = run_rtc(unborn, "start", "--no-open", "--port", "0")
    assert done.returncode != 0 and "no commits yet" in done.stderr

    proc = RtcProcess(repo, ["README.md"])
    try:
        proc.wait_ready()
        done = run_rtc(repo / "docs", "start", "--no-open", "--port", "0")
        assert done.returncode != 0 and "already running" in done.stderr
    finally:
        proc.terminate()
        proc.kill()


def test_unshareable_files_are_listed_and_skipped(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            **FILES,
            "img.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
            "latin1.txt": "caf\xe9".encode("latin-1"),
        },
    )
    proc = RtcProcess(repo, [])
    try:
        proc.wait_ready()
        paths = {f["path"] for f in _files(proc)}
        out, _ = proc.terminate()
    finally:
        proc.kill()
    assert "img.png" not in paths and "latin1.txt" not in paths
    assert "README.md" in paths and "unrelated.txt" in paths
    assert "skipped img.png" in out and "skipped latin1.txt" in out


def test_thousands_of_unshareable_files_are_counted_not_printed(tmp_path: Path) -> None:
    latin1 = {f"data/t{i:02d}.txt": "caf\xe9".encode("latin-1") for i in range(25)}
    repo = make_repo(tmp_path / "r", {**FILES, **latin1})
    proc = RtcProcess(repo, [])
    try:
        proc.wait_ready()
        out, _ = proc.terminate()
    finally:
        proc.kill()
    assert out.count("skipped data/t") == 20, out
    assert "… and 5 more skipped lines" in out, out


def test_stale_session_file_is_replaced_and_stop_without_session_fails(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    rtc = repo / ".git" / "rtc"
    rtc.mkdir(parents=True)
    (rtc / "session.json").write_text(json.dumps({"pid": 999999, "url": "http://x/#t=y", "port": 1}))
    done = run_rtc(repo, "stop")
    assert done.returncode != 0 and "no session is running" in done.stderr
    proc = RtcProcess(repo, ["README.md"])
    try:
        info = proc.wait_ready()
        assert info["pid"] == proc.proc.pid
        status = run_rtc(repo, "status", "--json")
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert data["files"][0]["path"] == "README.md" and data["url"] == info["url"]
    finally:
        proc.terminate()
        proc.kill()


@pytest.mark.parametrize("moved", ["other-file", "same-file-merges", "same-file-conflicts"])
def test_branch_moved_during_session(tmp_path: Path, moved: str) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md"])
    try:
        proc.wait_ready()
        asyncio.run(edit(ws_url(proc, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "Live ")))
        clone = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        git(clone, "config", "user.email", "o@example.org")
        git(clone, "config", "user.name", "O")
        if moved == "other-file":
            (clone / "unrelated.txt").write_text("moved on\n")
        elif moved == "same-file-merges":
            (clone / "README.md").write_text("# Project\n\nHello world.\n\nA footer from the branch.\n")
        else:
            (clone / "README.md").write_text("# Renamed project\n\nHello world.\n")
        git(clone, "commit", "-q", "-am", "moved")
        git(repo, "fetch", "-q", str(clone), "main")
        tip = git(repo, "rev-parse", "FETCH_HEAD").strip()
        git(repo, "update-ref", "refs/heads/main", tip)
        if moved != "same-file-conflicts":
            done = proc.stop("-m", "after move")
            assert done.returncode == 0, done.stderr
            assert git(repo, "rev-parse", "main^").strip() == tip
            if moved == "other-file":
                assert git(repo, "show", "main:README.md").startswith("Live # Project")
                assert git(repo, "show", "main:unrelated.txt") == "moved on\n"
            else:
                merged = "Live # Project\n\nHello world.\n\nA footer from the branch.\n"
                assert git(repo, "show", "main:README.md") == merged
                assert (repo / "README.md").read_text() == merged  # the work tree follows
                assert "README.md" not in git(repo, "status", "--porcelain")
            return
        done = run_rtc(repo, "stop", "-m", "x")
        assert done.returncode != 0
        assert "moved during the session" in done.stderr and "--onto-branch" in done.stderr
        assert git(repo, "rev-parse", "main").strip() == tip
        assert proc.proc.poll() is None  # still serving; the result is kept
        assert list((repo / ".git/rtc/sessions").glob("*/store.sqlite"))
        done = proc.stop("-m", "on the side", "--onto-branch", "session-result")
        assert done.returncode == 0, done.stderr
        assert git(repo, "rev-parse", "main").strip() == tip
        assert git(repo, "show", "session-result:README.md").startswith("Live # Project")
        assert git(repo, "rev-parse", "session-result^").strip() == git(repo, "rev-parse", "main^").strip()
    finally:
        proc.kill()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], {"message": None, "no_commit": False, "onto_branch": None}),
        (["-m", "Fix typos"], {"message": "Fix typos", "no_commit": False, "onto_branch": None}),
        (["-mFix"], {"message": "Fix", "no_commit": False, "onto_branch": None}),
        (["--message=a=b", "--onto-branch", "side"], {"message": "a=b", "no_commit": False, "onto_branch": "side"}),
        (["--message", "--no-commit"], {"message": "--no-commit", "no_commit": False, "onto_branch": None}),
        (["--no-commit"], {"message": None, "no_commit": True, "onto_branch": None}),
        (["--help"], None),
        (["-h"], None),
        (["-m"], None),
        (["--no-commit=1"], None),
        (["extra"], None),
        (["--onto"], None),
    ],
)
def test_plain_stop_forms_take_the_quick_path_and_the_rest_go_to_click(args: list[str], expected: object) -> None:
    from gitrtc.cli.entry import plain_stop_options

    assert plain_stop_options(args) == expected


def test_quick_stop_reports_errors_as_click_does_and_help_still_works(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md"])
    try:
        info = proc.wait_ready()
        helped = run_rtc(repo, "stop", "--help")
        assert helped.returncode == 0 and "--onto-branch" in helped.stdout
        bad = run_rtc(repo, "stop", "--frobnicate")
        assert bad.returncode == 2 and "No such option" in bad.stderr
        # a session.json whose owner token is wrong: the server refuses, one line, and serves on
        forged = dict(info, owner_token="not-the-owner")
        proc.session_file.write_text(json.dumps(forged))
        refused = run_rtc(repo, "stop", "-m", "x")
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.startswith("Error: the session answered 40") and "Traceback" not in refused.stderr
        assert refused.stderr.count("\n") == 1
        assert proc.proc.poll() is None
        proc.session_file.write_text(json.dumps(info))
        asyncio.run(edit(ws_url(proc, "README.md", "Alice", "alice@example.org"), lambda t: t.insert(0, "Hi ")))
        done = run_rtc(repo, "stop", "--message=Greet")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == git(repo, "rev-parse", "HEAD").strip()
        assert git(repo, "log", "-1", "--format=%s").strip() == "Greet"
        assert done.stderr.startswith("✓ 1 commit on main")
    finally:
        proc.terminate()
        proc.kill()


def _session_and_the_same_change_by_hand(tmp_path: Path, repo: Path, shared: list[str], edited: list[str]) -> Path:
    """Share `shared`, have Alice prefix each `edited` file with "X " and `rtc stop`; make
    the same change by hand with `git add -A && git commit` in a copy taken before; the copy."""
    by_hand = tmp_path / "by-hand"
    subprocess.run(["cp", "-a", str(repo), str(by_hand)], check=True)
    proc = RtcProcess(repo, shared)
    try:
        proc.wait_ready()
        for path in edited:
            asyncio.run(edit(ws_url(proc, path, "Alice", "alice@example.org"), lambda t: t.insert(0, "X ")))
        done = proc.stop("-m", "same change")
        assert done.returncode == 0, done.stderr
    finally:
        proc.terminate()
        proc.kill()
    for path in edited:
        target = by_hand / path
        target.write_text("X " + target.read_text())
    git(by_hand, "add", "-A")
    git(by_hand, "commit", "-q", "-m", "same change")
    return by_hand


def test_the_session_commit_has_the_tree_git_add_would_make(tmp_path: Path) -> None:
    """Nested folders, an executable, new files in new folders: only the touched folders
    are rewritten, and the tree is the one `git add -A && git commit` makes."""
    files = {"top.md": "top\n", "a/b/c/deep.md": "deep\n", "a/side.md": "side\n", "tools/run.sh": "echo hi\n"}
    repo = make_repo(tmp_path / "r", files)
    (repo / "tools/run.sh").chmod(0o755)
    git(repo, "commit", "-q", "-am", "executable")
    (repo / "new/dir").mkdir(parents=True)
    (repo / "new/dir/notes.md").write_text("notes\n")
    (repo / "new/dir/go.sh").write_text("echo go\n")
    (repo / "new/dir/go.sh").chmod(0o755)
    edited = ["top.md", "a/b/c/deep.md", "tools/run.sh", "new/dir/notes.md", "new/dir/go.sh"]
    by_hand = _session_and_the_same_change_by_hand(tmp_path, repo, [*edited, "a/side.md"], edited)
    assert git(repo, "rev-parse", "HEAD^{tree}") == git(by_hand, "rev-parse", "HEAD^{tree}")
    assert "100755" in git(repo, "ls-tree", "HEAD", "tools/run.sh")
    assert "100755" in git(repo, "ls-tree", "HEAD", "new/dir/go.sh")
    assert git(repo, "status", "--porcelain") == ""
    git(repo, "fsck", "--strict")


def test_a_commit_of_many_files_is_one_pack_git_reads_like_its_own(tmp_path: Path) -> None:
    """20 edited files: their blobs land in one pack; the tree is what `git add -A` makes,
    `git fsck` and `git gc` accept it, and the next session reads its base through it."""
    files = {f"docs/page{i:02}.md": f"page {i}\n" for i in range(24)}
    files["same/a.md"] = files["same/b.md"] = "twin\n"  # identical edits: one blob
    repo = make_repo(tmp_path / "r", files)
    edited = [f"docs/page{i:02}.md" for i in range(20)] + ["same/a.md", "same/b.md"]
    by_hand = _session_and_the_same_change_by_hand(tmp_path, repo, list(files), edited)
    assert git(repo, "rev-parse", "HEAD^{tree}") == git(by_hand, "rev-parse", "HEAD^{tree}")
    assert len(list((repo / ".git/objects/pack").glob("pack-*.idx"))) == 1
    assert git(repo, "status", "--porcelain") == ""
    git(repo, "fsck", "--strict")
    git(repo, "gc", "-q")
    assert git(repo, "show", "HEAD:docs/page00.md") == "X page 0\n"
    again = RtcProcess(repo, ["docs/page00.md"])  # the next session starts from that commit
    try:
        again.wait_ready()
        asyncio.run(edit(ws_url(again, "docs/page00.md", "Bob", "bob@example.org"), lambda t: t.insert(0, "Y ")))
        assert again.stop("-m", "again").returncode == 0
    finally:
        again.terminate()
        again.kill()
    assert git(repo, "show", "HEAD:docs/page00.md") == "Y X page 0\n"


def test_rtc_stop_answers_with_the_commit_and_connected_clients_are_then_told(tmp_path: Path) -> None:
    """`rtc stop` returns once the commit is on the branch; a client still connected is
    told the session ended (close 4410, the session map says so) right after."""
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md"])

    async def scenario() -> tuple[subprocess.CompletedProcess[str], int | None, str]:
        async with YClient(ws_url(proc, "README.md", "Alice", "alice@example.org")) as client:
            await client.wait_synced()
            client.doc.get("source", type=Text).insert(0, "Stay. ")
            await async_wait_until(
                lambda: (repo / "README.md").read_text().startswith("Stay. "),
                what="the edit at the server (its write-back)",
            )
            done = await asyncio.to_thread(run_rtc, repo, "stop", "-m", "while connected")
            code = await client.wait_closed(timeout=30)
            return done, code, git(repo, "log", "-1", "--format=%s").strip()

    try:
        proc.wait_ready()
        done, code, subject = asyncio.run(scenario())
        proc.proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == git(repo, "rev-parse", "HEAD").strip()
    assert subject == "while connected"
    assert git(repo, "show", "HEAD:README.md").startswith("Stay. ")
    assert code == 4410


def test_rtc_stop_reads_the_answer_to_its_length_without_waiting_for_the_hang_up(tmp_path: Path) -> None:
    """The session answers before it has said goodbye to every client, and may keep the
    connection open meanwhile: `rtc stop` must return on the answer, not on the close."""
    import socket
    import threading

    repo = make_repo(tmp_path / "r", FILES)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    body = json.dumps(
        {
            "commit": "c" * 40,
            "branch": "main",
            "files": ["README.md"],
            "coauthors": [],
            "message": "1 commit on main",
            "ended": True,
        }
    ).encode()
    release = threading.Event()

    def answer_and_hold() -> None:
        conn, _ = server.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            release.wait(120)  # still open: the goodbyes go on

    holder = threading.Thread(target=answer_and_hold, daemon=True)
    holder.start()
    rtc_dir = repo / ".git" / "rtc"
    rtc_dir.mkdir()
    (rtc_dir / "session.json").write_text(
        json.dumps({"pid": os.getpid(), "port": port, "owner_token": "t", "control_url": f"http://127.0.0.1:{port}"})
    )
    try:
        done = subprocess.run(
            [*RTC, "stop", "-m", "x"], cwd=repo, capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        release.set()
        server.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "c" * 40
