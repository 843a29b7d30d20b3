"""Talking to the running session of this repository (`rtc stop`, `status`, `commit`, …).

Kept to the standard library's lightest parts (no click, no urllib, no pygit2 unless git
must explain an error, not even the `json` and `socket` packages, whose `enum` and `re`
imports took half of `rtc stop`'s time): `rtc stop` runs through here without the full
command line.
"""

from __future__ import annotations

import _socket
import os

from ..errors import CommitError, NoSessionError, RtcError
from ..lightjson import dumps, loads
from ..sessionfile import find_gitdir, pid_alive, read_session_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..sessionfile import StrPath


def running_session(cwd: StrPath) -> dict[str, Any]:
    """The live session's `session.json`, or `NoSessionError` (found without loading git
    itself, so `rtc stop` and `rtc status` answer at once)."""
    gitdir = find_gitdir(cwd)
    if gitdir is None:
        from pathlib import Path

        from .. import git

        gitdir = git.repo_info(git.open_repo(Path(cwd))).gitdir  # raises the user-facing error
    data = read_session_file(gitdir)
    if not data or not isinstance(data.get("pid"), int) or not pid_alive(data["pid"]):
        raise NoSessionError("no session is running in this repository: start one with rtc start")
    return data


def call(data: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None,
         timeout: float = 120) -> dict[str, Any]:
    """Call the session's owner API; errors become one-line `RtcError`s."""
    url = data.get("control_url") or f"http://127.0.0.1:{data['port']}"
    payload = dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {data['owner_token']}", "Content-Type": "application/json"}
    try:
        if url.startswith("https"):
            status, reason, answer = _call_tls(url + path, method, payload, headers, timeout)
        else:
            status, reason, answer = _call_plain(url, method, path, payload, headers, timeout)
    except OSError as exc:
        raise NoSessionError(f"cannot reach the session at {url}: {exc}") from None
    if status >= 400:
        try:
            detail = loads(answer)
            detail = detail.get("message") or detail.get("error") or reason
        except (ValueError, AttributeError):
            detail = reason
        raise RtcError(f"the session answered {status}: {detail}")
    try:
        return loads(answer)
    except ValueError:
        raise RtcError(f"the session at {url} answered something that is not JSON: restart it") from None


def _call_plain(url: str, method: str, path: str, payload: bytes | None, headers: dict[str, str],
                timeout: float) -> tuple[int, str, bytes]:
    """One HTTP/1.1 request on loopback, its answer read to its Content-Length (the
    session may keep the connection open a moment after answering).

    By hand over a socket rather than `http.client`: that module loads the email package,
    which doubles the start-up of `rtc stop`.
    """
    netloc = url.split("://", 1)[1].rstrip("/")  # host:port, an IPv6 host in brackets
    host, _, port_text = netloc.rpartition(":")
    host, port = host.strip("[]") or "127.0.0.1", int(port_text)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {netloc}", "Connection: close",
             f"Content-Length: {len(payload or b'')}", *(f"{k}: {v}" for k, v in headers.items())]
    sock = _connect(host, port, timeout)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (payload or b""))
        received = b""
        length: int | None = None  # aiohttp answers JSON with a length, never chunked
        while True:
            chunk = sock.recv(65536)
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep and length is None:
                status, reason, found = _head(head)
                length = int(found["content-length"]) if found.get("content-length", "").isdigit() else -1
            if not chunk or (length is not None and 0 <= length <= len(body)):
                break  # the whole answer: the session may still be saying goodbye to its clients
    finally:
        sock.close()
    if not sep:
        raise ConnectionError("the connection closed before a complete answer")
    if length is not None and length >= 0:
        if len(body) < length:
            raise ConnectionError("the answer was cut short")
        body = body[:length]
    return status, reason, body


def _head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """Status, reason and lower-cased header fields of an HTTP/1.1 answer's head."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[1].isdigit():
        raise ConnectionError(f"not an HTTP answer: {status_line[:40]!r}")
    found = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(fields[1]), fields[2] if len(fields) > 2 else "", found


def _connect(host: str, port: int, timeout: float) -> _socket.socket:
    """A connected TCP socket to the first address of `host` that answers."""
    error: OSError = ConnectionError(f"no address for {host}")
    name = host.encode() if host.isascii() else host  # a str would load the idna codec (and re)
    for family, kind, proto, _, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


def _call_tls(url: str, method: str, payload: bytes | None, headers: dict[str, str],
              timeout: float) -> tuple[int, str, bytes]:
    """A request to a session served over TLS (its certificate is not checked: the URL
    and token come from this repository's own `session.json`)."""
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, method=method, data=payload, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl._create_unverified_context()) as answer:
            return answer.status, answer.reason, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, str(exc.reason), exc.read()
    except urllib.error.URLError as exc:
        raise ConnectionError(str(exc.reason)) from None


def stop_session(message: str | None, no_commit: bool, onto_branch: str | None) -> tuple[str | None, str]:
    """End this repository's running session: (the commit id or None, a summary line)."""
    data = running_session(os.getcwd())
    result = call(data, "POST", "/api/stop",
                  {"message": message, "commit": not no_commit, "onto_branch": onto_branch})
    if not result.get("ended", True):
        raise CommitError(result.get("message") or result.get("error") or "the commit failed")
    if result.get("commit"):
        return result["commit"], (f"✓ 1 commit on {result['branch']}  ({len(result['coauthors'])} co-authors, "
                                  f"{len(result['files'])} files)")
    return None, f"✓ session ended: {result.get('message')}"
