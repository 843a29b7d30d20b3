"""An unfinished session that nothing serves: a paused `--persistent` one, or one whose
process died. What `rtc status` shows of it, and how `rtc stop` ends it with its commit
without serving it first.

Finding one is light (plain `os`; the quick `rtc stop` asks); reading its manifest opens
the store read-only with `sqlite3`; ending it loads the session machinery (`launch`).
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .ending import EndResult
    from .sessionfile import StrPath


def unfinished_sessions(gitdir: StrPath) -> list[str]:
    """Stores of sessions that did not end (newest first)."""
    root = os.path.join(gitdir, "rtc", "sessions")
    try:
        names = os.listdir(root)
    except OSError:
        return []
    stores = [os.path.join(root, name, "store.sqlite") for name in names]
    return sorted((p for p in stores if os.path.isfile(p)), key=os.path.getmtime, reverse=True)


def describe(gitdir: StrPath) -> dict[str, Any] | None:
    """`rtc status`'s view of the newest unfinished session (None if there is none):
    `state` "paused" (a persistent session) or "unfinished" (its process died), its links
    as it last served them, its files and how to go on."""
    import sqlite3

    from .manifest import FILES_KEY, Manifest
    from .store import files_meta

    stores = unfinished_sessions(gitdir)
    if not stores:
        return None
    try:
        db = sqlite3.connect(f"file:{stores[0]}?mode=ro", uri=True)
        try:
            meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
            meta[FILES_KEY] = files_meta(db)
        finally:
            db.close()
        manifest = Manifest.from_meta(meta)
    except (sqlite3.Error, KeyError, TypeError, ValueError) as exc:
        return {"state": "unreadable", "store": stores[0], "error": str(exc)}
    tokens = manifest.tokens
    address = manifest.address or (f"http://127.0.0.1:{manifest.port}" if manifest.port else None)
    return {
        "state": "paused" if manifest.persistent else "unfinished",
        "session": manifest.session,
        "branch": manifest.branch.removeprefix("refs/heads/"),
        "persistent": manifest.persistent,
        "url": f"{address}/#t={tokens['editor']}" if address else None,
        "readonly_url": f"{address}/#t={tokens['viewer']}" if address else None,
        "port": manifest.port,
        "files": [{"path": f.path, "kind": f.kind} for f in manifest.files],
        "last_commit": manifest.last_commit,
        "store": stores[0],
    }


def end(
    cwd: StrPath, message: str | None, commit: bool, onto_branch: str | None, take_current: bool = False
) -> EndResult:
    """End the unfinished session of the repository at `cwd` with its commit, without
    serving it: take the lock, open it as `rtc start` resumes it, end it, drop its store."""
    from pathlib import Path

    from . import eventloop
    from .launch import Plan, prepare

    async def run() -> EndResult:
        async with await prepare(Plan(cwd=Path(cwd), paths=[], resume_only=True)) as session:
            return await session.end(message, commit=commit, onto_branch=onto_branch, take_current=take_current)

    return eventloop.run(run())
