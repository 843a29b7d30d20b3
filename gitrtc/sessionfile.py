"""`.git/rtc/session.json`: the running session's public description (mode 0600).

Kept free of heavy imports: `rtc stop` and `rtc status` only need this and git.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def find_gitdir(start: Path) -> Path | None:
    """The git dir of the checkout containing `start` (a linked worktree's own one), found
    the way git does for a plain `.git` folder or `.git` file; None if there is none."""
    here = start.resolve()
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            try:
                line = dot_git.read_text().strip()
            except OSError:
                return None
            if line.startswith("gitdir:"):
                return (folder / line[len("gitdir:"):].strip()).resolve()
            return None
    return None


def rtc_dir(gitdir: Path) -> Path:
    """The folder gitrtc keeps inside the git dir."""
    return gitdir / "rtc"


def session_file(gitdir: Path) -> Path:
    """The `session.json` of the repository (design.md's public interface)."""
    return rtc_dir(gitdir) / "session.json"


def read_session_file(gitdir: Path) -> dict[str, Any] | None:
    """The parsed `session.json`, or None when absent or unreadable."""
    try:
        return json.loads(session_file(gitdir).read_text())
    except (OSError, ValueError):
        return None


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
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def remove_session_file(gitdir: Path) -> None:
    """Remove `session.json` (at the end of a session)."""
    try:
        session_file(gitdir).unlink()
    except FileNotFoundError:
        pass
