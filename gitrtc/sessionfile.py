"""`.git/rtc/session.json`: the running session's public description (mode 0600).

Kept free of heavy imports (plain `os.path` and `json`, not even pathlib or typing):
`rtc stop` runs on this and `ownerapi.py`, and should take no longer than `git commit`.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    StrPath = str | os.PathLike[str]


def find_gitdir(start: StrPath) -> str | None:
    """The git dir of the checkout containing `start` (a linked worktree's own one), found
    the way git does for a plain `.git` folder or `.git` file; None if there is none."""
    folder = os.path.realpath(start)
    while True:
        dot_git = os.path.join(folder, ".git")
        if os.path.isdir(dot_git):
            return dot_git
        if os.path.isfile(dot_git):
            try:
                with open(dot_git, encoding="utf-8") as handle:
                    line = handle.read().strip()
            except (OSError, UnicodeDecodeError):
                return None
            if line.startswith("gitdir:"):
                return os.path.realpath(os.path.join(folder, line[len("gitdir:") :].strip()))
            return None
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def rtc_dir(gitdir: StrPath) -> Path:
    """The folder gitrtc keeps inside the git dir."""
    from pathlib import Path

    return Path(gitdir) / "rtc"


def session_file(gitdir: StrPath) -> str:
    """The `session.json` of the repository (design.md's public interface)."""
    return os.path.join(gitdir, "rtc", "session.json")


def control_socket(gitdir: StrPath) -> str | None:
    """Where the session serves its owner API on a Unix-domain socket (`.git/rtc/control.sock`),
    or None when the path is too long for one (104 bytes on macOS, 108 on Linux): then the
    owner commands use TCP."""
    path = os.path.join(os.path.abspath(gitdir), "rtc", "control.sock")
    return path if len(os.fsencode(path)) < 104 else None


def read_session_file(gitdir: StrPath) -> dict[str, Any] | None:
    """The parsed `session.json`, or None when absent or unreadable."""
    try:
        with open(session_file(gitdir), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_session_file(gitdir: Path, data: dict[str, Any]) -> None:
    """Write `session.json` atomically with mode 0600 (it holds the tokens)."""
    target = session_file(gitdir)
    tmp = target[: -len(".json")] + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def remove_session_file(gitdir: Path) -> None:
    """Remove `session.json` (at the end of a session)."""
    try:
        os.unlink(session_file(gitdir))
    except FileNotFoundError:
        pass
