"""Talking to the running session of this repository (for `rtc stop` and `rtc status`)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import NoSessionError, RtcError
from ..sessionfile import find_gitdir, pid_alive, read_session_file


def running_session(cwd: Path) -> dict[str, Any]:
    """The live session's `session.json`, or `NoSessionError` (found without loading git
    itself, so `rtc stop` and `rtc status` answer at once)."""
    gitdir = find_gitdir(cwd)
    if gitdir is None:
        from .. import git

        gitdir = git.repo_info(git.open_repo(cwd)).gitdir  # raises the user-facing error
    data = read_session_file(gitdir)
    if not data or not isinstance(data.get("pid"), int) or not pid_alive(data["pid"]):
        raise NoSessionError("no session is running in this repository: start one with rtc start")
    return data


def call(data: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None,
         timeout: float = 120) -> dict[str, Any]:
    """Call the session's owner API; errors become one-line `RtcError`s."""
    url = data.get("control_url") or f"http://127.0.0.1:{data['port']}"
    request = urllib.request.Request(
        url + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {data['owner_token']}", "Content-Type": "application/json"},
    )
    context = ssl._create_unverified_context() if url.startswith("https") else None  # local control channel
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
            detail = body.get("message") or body.get("error") or exc.reason
        except ValueError:
            detail = exc.reason
        raise RtcError(f"the session answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise NoSessionError(f"cannot reach the session at {url}: {exc}") from None
