"""The plugin API (#20): kinds and services from installed packages, end to end.

The plugins are installed as pip would make `importlib.metadata` see them: a
`.dist-info` with `entry_points.txt` (the example's, read from its pyproject) on the
path of a real `rtc start` (`tests/plugins/install.py`). The clients are real pycrdt
clients; the commit is checked with git.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pycrdt
import pytest

from gitrtc.client import RoomClient
from gitrtc.errors import RequestError

from .plugins import install
from .support import RTC, RtcProcess, YClient, async_wait_until, get_json, git, make_repo, wait_until

CSV = b'name,city,score\r\n"Ann","Paris, FR",1\r\nBob,Oslo,2\r\nCy,"Rome",3\r\nDee,Lima,4\r\n'


def _site(tmp_path: Path, bad: bool = False) -> dict[str, str]:
    site = tmp_path / "site"
    install.install_example(site)
    if bad:
        install.install_bad(site)
    return install.env(site)


def _rtc(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([*RTC, *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def _stored_meta(repo: Path, session: str, key: str) -> Any:
    """A value of the running session's store (read-only, beside the session's writer)."""
    path = repo / ".git" / "rtc" / "sessions" / session / "store.sqlite"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0])


def _git_bytes(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True).stdout


async def _session(proc: RtcProcess) -> dict[str, Any]:
    status, body = await get_json(f"{proc.base}/api/session", proc.info["token"])
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def _url(proc: RtcProcess, info: dict[str, Any], path: str, name: str, token: str = "token") -> str:
    room = next(f["room"] for f in info["files"] if f["path"] == path)
    return f"{proc.ws_base}{room}?token={proc.info[token]}&name={name}&email={name.lower()}@example.org"


def _table(client: RoomClient) -> list[list[str]]:
    rows = client.doc.get("rows", type=pycrdt.Array)
    out = []
    for row in rows:
        cells = {int(k): v for k, v in row.items()}
        out.append([cells.get(i, "") for i in range(max(cells, default=-1) + 1)])
    return out


def test_rtc_plugins_lists_what_is_installed_and_why_one_is_not_loaded(tmp_path: Path) -> None:
    env = _site(tmp_path, bad=True)
    done = _rtc(["plugins", "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    found = {(p["type"], p["name"]): p for p in json.loads(done.stdout)}
    assert found[("kind", "csv")]["error"] is None
    assert found[("kind", "csv")]["dist"] == "gitrtc-csv 0.1.0"
    assert found[("service", "validate")]["error"] is None
    assert found[("kind", "text")]["dist"] == found[("kind", "notebook")]["dist"] == "gitrtc (built-in)"
    assert "needs libfoo" in found[("kind", "broken")]["error"]
    assert "not a gitrtc.plugins.DocumentKind" in found[("kind", "notakind")]["error"]
    table = _rtc(["plugins"], env, tmp_path)
    assert "broken" in table.stdout and "not loaded" in table.stdout


async def test_a_csv_file_is_shared_as_a_table_edited_validated_and_committed(tmp_path: Path) -> None:
    env = _site(tmp_path)
    repo = make_repo(tmp_path / "r", {"data.csv": CSV, "README.md": "# hi\n"})
    proc = RtcProcess(repo, ["data.csv", "README.md"], env=env)
    try:
        proc.wait_ready()
        info = await _session(proc)
        kinds = {f["path"]: f["kind"] for f in info["files"]}
        assert kinds == {"data.csv": "csv", "README.md": "text"}
        view = info["plugins"]["kinds"]["csv"]
        assert view == "/plugins/csv/view.js"
        async with aiohttp.ClientSession() as http, http.get(f"{proc.base}{view}") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/javascript")
            assert "export function mount" in await response.text()
        async with aiohttp.ClientSession() as http, http.get(f"{proc.base}/plugins/csv/..%2Fkind.py") as response:
            assert response.status == 404
        assert info["plugins"]["services"] == [
            {
                "name": "validate",
                "ops": ["check", "last", "trim"],
                "kinds": ["csv"],
                "error": None,
                "panel": "/plugins/validate/panel.js",
            }
        ]

        ann = RoomClient(_url(proc, info, "data.csv", "Ann"))
        bob = RoomClient(_url(proc, info, "data.csv", "Bob"))
        vera = RoomClient(_url(proc, info, "data.csv", "Vera", "readonly_token"))
        events: list[dict[str, Any]] = []
        vera.on_event = events.append
        async with ann, bob, vera:
            for c in (ann, bob, vera):
                await c.wait_synced()
            assert _table(ann)[1] == ["Ann", "Paris, FR", "1"]
            # concurrent edits: Ann a cell of row 2, Bob a cell of row 3 and one of row 2
            ann_rows = ann.doc.get("rows", type=pycrdt.Array)
            bob_rows = bob.doc.get("rows", type=pycrdt.Array)
            ann_rows[2]["2"] = "20"
            bob_rows[3]["1"] = "Roma"
            bob_rows[2]["1"] = "Bergen"
            want = [
                ["name", "city", "score"],
                ["Ann", "Paris, FR", "1"],
                ["Bob", "Bergen", "20"],
                ["Cy", "Roma", "3"],
                ["Dee", "Lima", "4"],
            ]
            for c in (ann, bob, vera):
                await async_wait_until(lambda c=c: _table(c) == want, what="edits to merge")
            # a row with a bad number, then the check: its result reaches every participant
            with ann.doc.transaction():
                ann_rows.append(pycrdt.Map({"0": "Eve", "1": "Kyiv", "2": "n/a"}))
            await ann.flush()  # the edit before the request (they share the socket, not a queue)
            result = await ann.request("validate", "check")
            assert result["ok"] is False
            assert {"row": 6, "column": 3, "problem": "'n/a' is not a number"} in result["problems"]
            seen = await async_wait_until(
                lambda: next((e for e in events if e.get("event") == "validate.result"), None), what="the result"
            )
            assert seen["data"]["problems"] == result["problems"] and seen["data"]["by"] == "Ann"
            assert await vera.request("validate", "last") == result  # kept in the session's state...
            stored = _stored_meta(repo, proc.info["session"], "plugin.validate")  # ...in the session store
            assert stored["data.csv"]["problems"] == result["problems"]
            with pytest.raises(RequestError, match="needs the editor role"):
                await vera.request("validate", "trim")
            with pytest.raises(RequestError, match="works on csv files"):
                readme = RoomClient(_url(proc, info, "README.md", "Ann"))
                async with readme:
                    await readme.wait_synced()
                    await readme.request("validate", "check")
            ann_rows[5]["2"] = "  5 "
            await async_wait_until(lambda: _table(bob)[5] == ["Eve", "Kyiv", "  5 "], what="the padded cell")
            assert await bob.request("validate", "trim") == {"trimmed": 1}  # the service's own edit
            await async_wait_until(lambda: _table(ann)[5] == ["Eve", "Kyiv", "5"], what="the trimmed cell")
            # the kind's own check refuses a cell that is not a column number → text
            async with YClient(_url(proc, info, "data.csv", "Mal")) as mal:
                await mal.wait_synced()
                mal.doc.get("rows", type=pycrdt.Array)[1]["name"] = 7
                await mal.flush()
                refusal = await async_wait_until(lambda: mal.auth_messages, what="the refusal")
                assert b"cells are column numbers" in refusal[0]
            # a viewer's edit is refused
            vera.doc.get("rows", type=pycrdt.Array)[1]["0"] = "hacked"
            await vera.flush()
        expected = CSV.replace(b"Bob,Oslo,2", b"Bob,Bergen,20").replace(b'Cy,"Rome",3', b"Cy,Roma,3")
        expected += b"Eve,Kyiv,5\r\n"
        await async_wait_until(lambda: (repo / "data.csv").read_bytes() == expected, what="the write-back")
        done = proc.stop("-m", "Edit the table")
    finally:
        proc.kill()
    assert done.returncode == 0, done.stderr
    assert _git_bytes(repo, "show", "HEAD:data.csv") == expected
    diff = git(repo, "diff", "HEAD^", "HEAD", "--", "data.csv")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert len(changed) == 5, diff  # 2 rows changed (- and +) and 1 added: untouched rows kept byte for byte
    message = git(repo, "log", "-1", "--format=%B")
    assert "Co-authored-by: Ann <ann@example.org>" in message and "Co-authored-by: Bob <bob@example.org>" in message
    assert "Vera" not in message and "Mal" not in message and "validate" not in message  # the service: nobody


async def test_bad_plugins_never_stop_the_session_and_leave_their_files_untouched(tmp_path: Path) -> None:
    env = _site(tmp_path, bad=True)
    files: dict[str, str | bytes] = {
        "a.raises": "raises\n",
        "b.hangs": "hangs\n",
        "c.invalid": "invalid\n",
        "d.lossy": "lossy\n",
        "e.stalls": "stalls\n",
        "README.md": "# hi\n",
        "data.csv": CSV,
    }
    repo = make_repo(tmp_path / "r", files)
    proc = RtcProcess(repo, sorted(files), env=env)
    try:
        proc.wait_ready()
        info = await _session(proc)
        kinds = {f["path"]: f["kind"] for f in info["files"]}
        # each failing kind's file is shared as text (untouched), the others as theirs
        assert kinds == {
            "a.raises": "text",
            "b.hangs": "text",
            "c.invalid": "text",
            "d.lossy": "text",
            "e.stalls": "stalls",
            "README.md": "text",
            "data.csv": "csv",
        }
        status = json.loads(_rtc(["status", "--json"], {}, repo).stdout)
        warned = " ".join(status["events"]) + json.dumps(status)
        assert "plugin raises: load of a.raises failed: RuntimeError: cannot parse this" in warned
        assert "plugin hangs: load of b.hangs took longer than 0.5 s (hung)" in warned
        assert "plugin invalid: render of c.invalid returned str, not bytes" in warned
        assert "plugin lossy: d.lossy does not render back to its own bytes" in warned
        errors = {p["name"]: p["error"] for p in status["plugins"]}
        assert "needs libfoo" in errors["broken"]
        assert "hung" in errors["hangs"]
        assert "RuntimeError: cannot parse this" in errors["raises"]
        shown = _rtc(["status"], {}, repo).stdout
        assert "plugin kind broken not in use: import failed: ImportError: needs libfoo" in " ".join(shown.split())

        # a kind that hangs writing back: reported, its file untouched, the rest served
        stalls = RoomClient(_url(proc, info, "e.stalls", "Ann"))
        readme = RoomClient(_url(proc, info, "README.md", "Ann"))
        async with stalls, readme:
            await stalls.wait_synced()
            await readme.wait_synced()
            stalls.doc.get("source", type=pycrdt.Text).insert(0, "hang ")
            await stalls.flush()

            async def save_error() -> bool:
                body = await _session(proc)
                return any(f.get("save_error") for f in body["files"] if f["path"] == "e.stalls")

            for _ in range(200):
                if await save_error():
                    break
                await asyncio.sleep(0.05)
            assert await save_error()
            readme.doc.get("source", type=pycrdt.Text).insert(5, "more\n")
            await async_wait_until(lambda: (repo / "README.md").read_text() == "# hi\nmore\n", what="README saved")

            # a service that floods, hangs, raises or returns junk: answered, the session goes on
            flood = RoomClient(_url(proc, info, "README.md", "Bob"))
            async with flood:
                await flood.wait_synced()
                assert await flood.request("flood", "ping") == "pong"
                with pytest.raises(RequestError, match=r"took longer than 0\.5 s"):
                    await flood.request("flood", "nap")
                with pytest.raises(RequestError, match="ZeroDivisionError: oops"):
                    await flood.request("flood", "boom")
                with pytest.raises(RequestError, match="not JSON"):
                    await flood.request("flood", "junk")
                with pytest.raises(RequestError, match="flooded its channel"):
                    await flood.request("flood", "go")
                with pytest.raises(RequestError, match="service flood is stopped: flooded"):
                    await flood.request("flood", "ping")
            status = json.loads(_rtc(["status", "--json"], {}, repo).stdout)
            assert "flooded its channel" in {p["name"]: p["error"] for p in status["plugins"]}["flood"]
            readme.doc.get("source", type=pycrdt.Text).insert(0, "x")
            await async_wait_until(lambda: (repo / "README.md").read_text() == "x# hi\nmore\n", what="still served")
        done = proc.stop("-m", "End")
    finally:
        proc.kill()
    assert done.returncode == 0, done.stderr
    for path in ("a.raises", "b.hangs", "c.invalid", "d.lossy", "e.stalls"):
        assert (repo / path).read_bytes() == (files[path].encode() if isinstance(files[path], str) else files[path])
    changed = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD").split()
    assert changed == ["README.md"]


def test_rtc_join_mirrors_a_csv_file_with_the_plugin_and_refuses_without_it(tmp_path: Path) -> None:
    import os

    env = _site(tmp_path)
    repo = make_repo(tmp_path / "r", {"data.csv": CSV, "README.md": "# hi\n"})
    proc = RtcProcess(repo, ["data.csv", "README.md"], env=env)
    folder = tmp_path / "mirror"
    joiner = None
    try:
        info = proc.wait_ready()
        # without the plugin installed here: refused with what to do, nothing written
        bare = subprocess.run(
            [*RTC, "join", info["url"], str(tmp_path / "bare")], capture_output=True, text=True, timeout=60
        )
        assert bare.returncode != 0
        assert "data.csv is shared as a csv file, and no csv kind is installed here: install" in bare.stderr
        assert not (tmp_path / "bare" / "data.csv").exists()
        # with it: mirrored byte for byte, both ways
        joiner = subprocess.Popen(
            [*RTC, "join", info["url"], str(folder), "--name", "Joan", "--email", "joan@example.org"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        mirrored = folder / "data.csv"
        wait_until(lambda: mirrored.is_file() and mirrored.read_bytes() == CSV, 30, "the mirrored CSV")

        async def edit_cell() -> None:
            body = await _session(proc)
            async with RoomClient(_url(proc, body, "data.csv", "Ann")) as ann:
                await ann.wait_synced()
                ann.doc.get("rows", type=pycrdt.Array)[4]["1"] = "Quito"

        asyncio.run(edit_cell())
        after = CSV.replace(b"Dee,Lima,4", b"Dee,Quito,4")
        wait_until(lambda: mirrored.read_bytes() == after, 30, "Ann's edit in the mirror")
        saved = after.replace(b"Bob,Oslo,2", b"Bob,Oslo,22")
        mirrored.write_bytes(saved)  # Joan saves in her editor
        wait_until(lambda: (repo / "data.csv").read_bytes() == saved, 30, "Joan's save on the owner's disk")
    finally:
        if joiner is not None:
            joiner.terminate()
            joiner.wait(30)
        proc.kill()


async def test_a_csv_save_on_disk_and_a_moved_branch_merge_cell_by_cell(tmp_path: Path) -> None:
    env = _site(tmp_path)
    repo = make_repo(tmp_path / "r", {"data.csv": CSV})
    proc = RtcProcess(repo, ["data.csv"], env=env)
    try:
        proc.wait_ready()
        info = await _session(proc)
        async with RoomClient(_url(proc, info, "data.csv", "Ann")) as ann:
            await ann.wait_synced()
            ann.doc.get("rows", type=pycrdt.Array)[2]["1"] = "Bergen"  # Bob's row, in the session
            await async_wait_until(lambda: b"Bob,Bergen,2" in (repo / "data.csv").read_bytes(), what="write-back")
            # the owner saves the file in another program meanwhile: Dee's row, on disk
            on_disk = (repo / "data.csv").read_bytes().replace(b"Dee,Lima,4", b"Dee,Lima,40")
            (repo / "data.csv").write_bytes(on_disk)
            await async_wait_until(lambda: _table(ann)[4] == ["Dee", "Lima", "40"], what="the save merged in")
            assert _table(ann)[2] == ["Bob", "Bergen", "2"]
        # the branch moves under the session: Ann's row's score, and Bob's row's score (the
        # line the session changed too: git's line merge would conflict, the kind's does not)
        clone = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        git(clone, "config", "user.email", "o@example.org")
        git(clone, "config", "user.name", "O")
        moved = CSV.replace(b'"Ann","Paris, FR",1', b'"Ann","Paris, FR",100').replace(b"Bob,Oslo,2", b"Bob,Oslo,200")
        (clone / "data.csv").write_bytes(moved)
        git(clone, "commit", "-q", "-am", "moved")
        git(repo, "fetch", "-q", str(clone), "main")
        tip = git(repo, "rev-parse", "FETCH_HEAD").strip()
        git(repo, "update-ref", "refs/heads/main", tip)
        done = proc.stop("-m", "after the move")
    finally:
        proc.kill()
    assert done.returncode == 0, done.stderr
    assert git(repo, "rev-parse", "main^").strip() == tip
    want = CSV.replace(b'"Ann","Paris, FR",1', b'"Ann","Paris, FR",100').replace(b"Bob,Oslo,2", b"Bob,Bergen,200")
    assert _git_bytes(repo, "show", "main:data.csv") == want.replace(b"Dee,Lima,4", b"Dee,Lima,40")


def test_a_resumed_session_keeps_each_file_s_kind_when_a_plugin_is_installed_meanwhile(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"data.csv": CSV})
    first = RtcProcess(repo, ["--persistent", "data.csv"])
    try:
        first.wait_ready()
        first.terminate(signal.SIGINT)  # paused: the next start resumes it
    finally:
        first.kill()
    second = RtcProcess(repo, ["--persistent", "data.csv"], env=_site(tmp_path))  # now with gitrtc-csv
    try:
        second.wait_ready()

        async def edit() -> None:
            info = await _session(second)
            assert [f["kind"] for f in info["files"]] == ["text"]  # as it was shared
            async with RoomClient(_url(second, info, "data.csv", "Ann")) as ann:
                await ann.wait_synced()
                ann.doc.get("source", type=pycrdt.Text).insert(0, "#")

        asyncio.run(edit())
        wait_until(lambda: (repo / "data.csv").read_bytes() == b"#" + CSV, 30, "the text edit written back")
        done = second.stop("-m", "resumed")
    finally:
        second.kill()
    assert done.returncode == 0, done.stderr


def test_a_service_s_per_session_state_survives_a_pause_and_resume(tmp_path: Path) -> None:
    """The validate service's `last` result is kept in the session store: a persistent
    session paused (SIGTERM, a restart) and resumed answers it without a new check."""
    env = _site(tmp_path)
    repo = make_repo(tmp_path / "r", {"data.csv": b"a,b\r\n1,2\r\n3\r\n"})  # a short row
    first = RtcProcess(repo, ["--persistent", "data.csv"], env=env)
    try:
        first.wait_ready()

        async def check() -> dict[str, Any]:
            info = await _session(first)
            async with RoomClient(_url(first, info, "data.csv", "Ann")) as ann:
                await ann.wait_synced()
                assert await ann.request("validate", "last") is None  # nothing checked yet
                return await ann.request("validate", "check")  # type: ignore[no-any-return]

        result = asyncio.run(check())
        assert result["ok"] is False and result["problems"]
        out, err = first.terminate(signal.SIGTERM)
        assert "paused" in out, err
    finally:
        first.kill()
    second = RtcProcess(repo, [], env=env)
    try:
        second.wait_ready()

        async def last() -> Any:
            info = await _session(second)
            async with RoomClient(_url(second, info, "data.csv", "Bob")) as bob:
                await bob.wait_synced()
                return await bob.request("validate", "last")

        assert asyncio.run(last()) == result
        done = second.stop("-m", "checked")
    finally:
        second.kill()
    assert done.returncode == 0, done.stderr
