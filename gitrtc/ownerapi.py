"""The owner API's client: how `rtc stop`, `status`, `commit`, `invite` and `kick` reach
this repository's running session.

The one seam for the quick path of `rtc stop`, which should take no longer than `git
commit`. The session serves its API on a Unix-domain socket in `.git/rtc/` (0600 in a 0700
folder: only this user can connect; the owner token is checked as well), so no address,
TLS or host-name lookup is involved. One HTTP/1.1 request over the public `socket` module
and the plain `json` module, read to its Content-Length. Nothing heavier: click, rich,
aiohttp, asyncio, pygit2 (unless git must explain an error), `http.client` and `urllib`
(which load the email package, more than the commit itself costs) stay unloaded;
`tests/test_ownerapi.py` fails if one of them comes back.

When the socket cannot be used (a path too long for AF_UNIX, a file system without
sockets), requests go over TCP to `control_url`; with TLS, the session's own certificate is
the only one trusted and must name the session's host.
"""

from __future__ import annotations

import json
import os
import socket

from .errors import CommitError, NoSessionError, RtcError, SessionPausedError
from .sessionfile import find_gitdir, pid_alive, read_session_file
from .words import plural

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from io import BufferedReader
    from typing import Any

    from .sessionfile import StrPath

MAX_HEAD_LINE = 65536


def running_session(cwd: StrPath) -> dict[str, Any]:
    """The live session's `session.json`, or `NoSessionError` (found by walking up to `.git`
    without loading git itself, so `rtc stop` and `rtc status` answer at once)."""
    found: StrPath | None = find_gitdir(cwd)
    if found is None:
        from pathlib import Path

        from . import git

        found = git.repo_info(git.open_repo(Path(cwd))).gitdir  # raises the user-facing error
    gitdir: StrPath = found
    data = read_session_file(gitdir)
    if not data or not isinstance(data.get("pid"), int) or not pid_alive(data["pid"]):
        from .unfinished import unfinished_sessions  # only when no session answers

        if unfinished_sessions(gitdir):
            raise SessionPausedError(
                "the session of this repository is paused (nothing serves it): "
                "rtc start resumes it, rtc stop ends it with its commit"
            )
        raise NoSessionError("no session is running in this repository: start one with rtc start")
    return data


def call(
    data: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Call the session's owner API (`data` is its `session.json`); the answer's JSON.

    Errors become one-line `RtcError`s: `NoSessionError` when the session cannot be reached.
    """
    where = data.get("socket") or _control_url(data)
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Authorization: Bearer {data.get('owner_token', '')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    try:
        with _connect(data, timeout) as sock:
            sock.sendall(head.encode("latin-1") + payload)
            with sock.makefile("rb") as stream:
                status, reason, answer = _read_answer(stream)
    except OSError as exc:  # refused, timed out, a certificate that does not verify, cut short
        raise NoSessionError(f"cannot reach the session at {where}: {exc}") from None
    if status >= 400:
        try:
            found = json.loads(answer)
            detail = found.get("message") or found.get("error") or reason
        except (ValueError, AttributeError):
            detail = reason
        raise RtcError(f"the session answered {status}: {detail}")
    try:
        result = json.loads(answer)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise RtcError(f"the session at {where} answered something that is not a JSON object: restart it")
    return result


def _connect(data: dict[str, Any], timeout: float) -> socket.socket:
    """A socket connected to the session: its Unix socket, else TCP (TLS when it serves TLS)."""
    if data.get("socket"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(data["socket"])
        except BaseException:
            sock.close()
            raise
        return sock
    scheme, _, netloc = _control_url(data).partition("://")
    host, _, port = netloc.rstrip("/").rpartition(":")
    if not port.isdigit():
        raise ConnectionError("session.json has no usable control_url: restart the session")
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    if scheme != "https":
        return sock
    try:
        return _tls_context(data).wrap_socket(sock, server_hostname=_session_host(data, host))
    except BaseException:
        sock.close()
        raise


def _control_url(data: dict[str, Any]) -> str:
    """The session's TCP address for owner requests (`http(s)://host:port`)."""
    return str(data.get("control_url") or f"http://127.0.0.1:{data.get('port')}")


def _tls_context(data: dict[str, Any]) -> ssl.SSLContext:
    """A TLS context that trusts the session's own certificate (`certfile`) and nothing else."""
    import ssl

    certfile = data.get("certfile")
    if not certfile:
        raise ssl.SSLError("session.json names no certificate to check the session's against: restart it")
    context = ssl.create_default_context(cafile=certfile)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a CA-issued leaf is trusted as itself
    return context


def _session_host(data: dict[str, Any], connected: str) -> str:
    """The host the certificate must name: the one in the session's URL (the owner may
    reach a wildcard bind on loopback, but the certificate is for the public name)."""
    netloc = str(data.get("url", "")).partition("://")[2].partition("/")[0]
    if netloc.startswith("["):  # an IPv6 address
        host = netloc[1:].partition("]")[0]
    else:
        host = netloc.rpartition(":")[0] or netloc
    return host or connected.strip("[]")


def _read_answer(stream: BufferedReader) -> tuple[int, str, bytes]:
    """Status, reason and body of one HTTP/1.1 answer, read to its Content-Length: the
    session may keep the connection open a moment after answering (its goodbyes)."""
    status_line = stream.readline(MAX_HEAD_LINE).decode("latin-1")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise ConnectionError(
            f"not an HTTP answer: {status_line[:40]!r}" if status_line else "the connection closed before an answer"
        )
    headers: dict[str, str] = {}
    while True:
        line = stream.readline(MAX_HEAD_LINE)
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionError("the connection closed inside the answer's head")
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise ConnectionError("a chunked answer (the owner API answers with a length)")
    length = headers.get("content-length", "")
    if not length.isdigit():
        return int(fields[1]), fields[2].strip() if len(fields) > 2 else "", stream.read()
    body = stream.read(int(length))
    if len(body) < int(length):
        raise ConnectionError("the answer was cut short")
    return int(fields[1]), fields[2].strip() if len(fields) > 2 else "", body


def stop_session(
    message: str | None, no_commit: bool, onto_branch: str | None, take_current: bool = False
) -> tuple[str | None, str]:
    """End this repository's session: (the commit id or None, a summary line). A running
    one is asked to end; a paused one (nothing serves it) is ended here, without serving."""
    try:
        data = running_session(os.getcwd())
    except SessionPausedError:
        from .unfinished import end  # the session machinery: only when nothing serves the session

        done = end(os.getcwd(), message, not no_commit, onto_branch, take_current)
        result: dict[str, Any] = {
            "commit": done.commit,
            "branch": done.branch,
            "files": done.files,
            "coauthors": done.coauthors,
            "message": done.message,
            "ended": done.ended,
        }
    else:
        result = call(
            data,
            "POST",
            "/api/stop",
            {"message": message, "commit": not no_commit, "onto_branch": onto_branch, "take_current": take_current},
        )
    if not result.get("ended", True):
        raise CommitError(result.get("message") or result.get("error") or "the commit failed")
    if result.get("commit"):
        counts = f"{plural(len(result['coauthors']), 'co-author')}, {plural(len(result['files']), 'file')}"
        return result["commit"], f"✓ 1 commit on {result['branch']}  ({counts})"
    return None, f"✓ session ended: {result.get('message')}"
