"""The API's JSON views of a session: `/api/session` (any role) and `/api/status` (owner)."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..conflicts import describe as describe_conflict
from ..conflicts import open_conflicts
from ..manifest import FileEntry
from ..session import Session
from . import plugins

#: With `?tree=lazy`, past this many files and whole files the listing is left out.
LAZY_ABOVE = 500


def describe(session: Session, role: str, name: str | None = None, lazy: bool = False) -> dict[str, Any]:
    """The public `/api/session` view; `name`: the one the caller's personal token is
    bound to (the page fills it in). `lazy` (the browser's `?tree=lazy`): a session of
    more than `LAZY_ABOVE` files answers `files: []`, `binaries: []`, `lazy: true` and
    `files_count`, and the page lists folders one at a time through `/api/tree`."""
    m = session.manifest
    count = len(m.files) + len(m.binaries)
    if lazy and count > LAZY_ABOVE:
        return {**_describe(session, role, name, listed=False), "lazy": True, "files_count": count}
    return _describe(session, role, name, listed=True)


def _describe(session: Session, role: str, name: str | None, listed: bool) -> dict[str, Any]:
    m = session.manifest
    return {
        "name": name,
        "session": m.session,
        "epoch": m.epoch,
        "role": role,
        "state": session.state,
        "branch": session.info.branch_name,
        "base": m.base,
        "session_room": m.session_room,
        "files": [_describe_file(session, f) for f in m.files] if listed else [],
        "participants": session.participants(),
        "commit": session.result.commit if session.result else None,
        "kernels": session.kernels.describe(),
        "conflicts": _conflicts(session),
        "plugins": plugins.describe(session),
        "folders": m.folders,  # shared folders: files created, renamed, deleted in them are live
        "files_version": m.files_version,  # the session room's `files_version` when this was read
        "not_shared": [{"path": p, "reason": r} for p, r in m.skipped],
        "binaries": session.fileset.binaries.listing() if listed else [],  # whole files: GET/PUT /api/raw?path=
        "version": __version__,  # clients of another major version refuse, and say so
    }


def _conflicts(session: Session) -> list[dict[str, Any]]:
    """The open notebook merge conflicts of the loaded documents (resolve them in the
    browser; `rtc stop` refuses while any is open)."""
    out: list[dict[str, Any]] = []
    for f in session.manifest.files:
        room = session.registry.rooms.get(f.room)
        if f.kind == "notebook" and room is not None:
            out.extend({"path": f.path, **describe_conflict(c)} for c in open_conflicts(room.doc))
    return out


def _describe_file(session: Session, f: FileEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f.path, "kind": f.kind, "room": f.room}
    state = session.bridge.disk.files.get(f.path)
    if state is not None and state.error:
        out["save_error"] = state.error  # write-back fails: every participant should know
    return out


async def status(session: Session) -> dict[str, Any]:
    """The owner's view for `rtc status`: URLs, files with save state and store size."""
    sizes = await session.store.room_sizes()
    states = session.bridge.disk.files
    files = []
    for f in session.manifest.files:
        state = states.get(f.path)
        files.append(
            {
                "path": f.path,
                "kind": f.kind,
                "room": f.room,
                "open": f.room in session.registry.rooms,
                "save": state.label if state else "saved",
                "error": state.error if state else None,
                "store_bytes": sizes.get(f.room, 0),
            }
        )
    return {
        **describe(session, "owner"),
        "url": session.url,
        "readonly_url": session.readonly_url,
        "files": files,
        "skipped": [{"path": p, "reason": r} for p, r in session.manifest.skipped],
        "warnings": [{"path": p, "warning": w} for p, w in session.manifest.warnings],
        "store_bytes": sum(sizes.values()),
        "resumed": session.resumed,
        "events": list(session.events),
        "plugins": plugins.status(session),
        "relays": session.relays(),
    }
