"""The owner commands' seam (`ownerapi.py`): the control socket, verified TLS, and a quick
`rtc stop` that keeps the heavy modules unloaded. Real sessions, real `rtc` processes."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp

from .conftest import FILES
from .support import RTC, RtcProcess, edit, git, make_cert, make_repo

# What the quick `rtc stop` must never load: the command line's libraries, the server's,
# git's bindings (only an error explains itself with them), TLS on the Unix socket, and the
# HTTP clients that load the email package.
HEAVY = {
    "click",
    "rich",
    "aiohttp",
    "asyncio",
    "pygit2",
    "pycrdt",
    "nbformat",
    "ssl",
    "http",
    "email",
    "urllib",
    "concurrent",
    "multiprocessing",
}


def run_rtc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RTC, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def edit_readme(proc: RtcProcess, text: str) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{proc.base}/api/session", headers={"Authorization": f"Bearer {proc.info['token']}"}
    )
    with urllib.request.urlopen(request) as answer:
        room = next(f["room"] for f in json.loads(answer.read())["files"] if f["path"] == "README.md")
    url = f"{proc.ws_base}{room}?token={proc.info['token']}&name=Alice&email=alice@example.org"
    asyncio.run(edit(url, lambda t: t.insert(0, text)))


async def status_over_socket(path: str, token: str | None) -> int:
    """`GET /api/status` on the control socket with a real HTTP client; the status code."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as http:
        async with http.get("http://localhost/api/status", headers=headers) as answer:
            return answer.status


def test_the_quick_stop_goes_through_the_socket_and_loads_nothing_heavy(tmp_path: Path) -> None:
    """`rtc stop -m MSG` commits over the control socket (TCP is made unreachable) and the
    process never imports what would make it slower than `git commit`."""
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md"])
    try:
        info = proc.wait_ready()
        edit_readme(proc, "Quick. ")
        # session.json is information: point its TCP address at a closed port
        proc.session_file.write_text(json.dumps(dict(info, control_url="http://127.0.0.1:9", port=9)))
        done = subprocess.run(  # the console script's own entry point, its imports listed
            [
                sys.executable,
                "-X",
                "importtime",
                "-c",
                "from gitrtc.cli.entry import main; main()",
                "stop",
                "-m",
                "quick",
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        proc.proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert done.stdout.strip() == git(repo, "rev-parse", "HEAD").strip()
    assert git(repo, "show", "HEAD:README.md").startswith("Quick. ")
    loaded = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "gitrtc.ownerapi" in loaded
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}
    assert not Path(info["socket"]).exists()  # removed at the end


def test_the_control_socket_is_the_owners_alone(tmp_path: Path) -> None:
    """0600 in a 0700 folder, and the owner token is still required on it."""
    repo = make_repo(tmp_path / "r", FILES)
    proc = RtcProcess(repo, ["README.md"])
    try:
        info = proc.wait_ready()
        path = Path(info["socket"])
        assert path == repo / ".git" / "rtc" / "control.sock"
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for key in ("session", "url", "readonly_url", "port", "pid", "token", "readonly_token"):
            assert key in info  # the documented fields stay
        assert asyncio.run(status_over_socket(str(path), None)) == 401
        assert asyncio.run(status_over_socket(str(path), info["token"])) == 403
        assert asyncio.run(status_over_socket(str(path), info["owner_token"])) == 200
        status = run_rtc(repo, "status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["state"] == "live", status.stderr
        assert proc.stop("--no-commit").returncode == 0
    finally:
        proc.kill()
    assert not path.exists()


def test_a_path_too_long_for_a_socket_falls_back_to_tcp(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / ("deep-" * 20) / "r", FILES)
    proc = RtcProcess(repo, ["README.md"])
    try:
        info = proc.wait_ready()
        assert "socket" not in info
        edit_readme(proc, "Long. ")
        done = proc.stop("-m", "over tcp")
    finally:
        proc.kill()
    assert done.returncode == 0, done.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == "over tcp"


def test_owner_commands_over_tls_trust_the_sessions_certificate_only(tmp_path: Path) -> None:
    """Without the socket, the owner commands use TCP; over TLS they verify the session's
    own certificate: another certificate for the same address is refused in one line."""
    repo = make_repo(tmp_path / "r", FILES)
    cert, key = make_cert(tmp_path, "session")
    other, _ = make_cert(tmp_path, "impostor")
    proc = RtcProcess(repo, ["README.md", "--certfile", str(cert), "--keyfile", str(key)])
    try:
        info = proc.wait_ready()
        assert info["control_url"].startswith("https://") and info["certfile"] == str(cert.resolve())
        over_tcp = {k: v for k, v in info.items() if k != "socket"}
        proc.session_file.write_text(json.dumps(dict(over_tcp, certfile=str(other))))
        refused = run_rtc(repo, "status")
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: cannot reach the session at https://127.0.0.1:")
        assert "certificate verify failed" in refused.stderr and refused.stderr.count("\n") == 1
        proc.session_file.write_text(json.dumps(over_tcp))
        assert run_rtc(repo, "status").returncode == 0
        done = proc.stop("--no-commit")  # the quick path, over TLS
    finally:
        proc.kill()
    assert done.returncode == 0 and "session ended" in done.stderr, done.stderr
