"""The session manifest: identity, epoch, tokens, base commit and the shared files.

It is stored in the session store, so a resumed session keeps its id, URLs, tokens
and room names. Room names carry the epoch: `EPOCH.HASH` for a file, `EPOCH.session`
for the session's metadata room. A client holding state from another epoch is refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field, fields
from typing import Any

ROOM_NAME = re.compile(r"^[A-Za-z0-9._~:-]+(?:/[A-Za-z0-9._~:-]+)*$")
EPOCH = re.compile(r"^[A-Za-z0-9_-]{8}$")
ROLES = ("owner", "editor", "viewer")
MANIFEST_KEY = "manifest"  # the store's meta key of the manifest (less its files)
FILES_KEY = "manifest.files"  # the shared files, as `Store.get_meta` reads them from its `files` table
COMMIT_KEY = "manifest.commit"  # …and of what each commit updates, written alone then
COMMIT_FIELDS = ("base", "baseline", "last_commit", "added", "removed")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One shared file: repository-relative path, document kind and room name."""

    path: str
    kind: str
    room: str


@dataclass(slots=True)
class Manifest:
    """Everything that identifies a session and survives a restart."""

    session: str
    epoch: str
    branch: str
    base: str
    tokens: dict[str, str]  # role -> token
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, warning)
    persistent: bool = False
    created: float = 0.0
    port: int | None = None  # the port it served on, reused on resume so links keep working
    invites: list[dict[str, Any]] = field(default_factory=list)  # {name, role, token, run?: false}
    baseline: dict[str, str] = field(default_factory=dict)  # room -> digest at the last commit
    address: str | None = None  # `scheme://host:port` it last served at: a paused session's links
    last_commit: str | None = None  # the session's latest `rtc commit` ("nothing changed since …")
    # -- the live file set (`fileset.py`) --
    folders: list[str] = field(default_factory=list)  # shared folders, watched ("" = the whole work tree)
    rooms: dict[str, str] = field(default_factory=dict)  # path -> room, for files not in `path`'s hash room
    added: list[str] = field(default_factory=list)  # rooms of files that joined since the last commit
    removed: list[str] = field(default_factory=list)  # paths that left the session since the last commit
    files_version: int = 0  # bumped at each change of the file list (clients follow it)
    binaries: dict[str, str] = field(default_factory=dict)  # whole-file shares: path -> digest at start ("" = new)

    @classmethod
    def new(cls, branch: str, base: str, persistent: bool, created: float) -> Manifest:
        """A fresh session: new id, epoch and tokens."""
        return cls(
            session=secrets.token_hex(8),
            epoch=secrets.token_urlsafe(6),
            branch=branch,
            base=base,
            tokens={role: secrets.token_urlsafe(24) for role in ROLES},
            persistent=persistent,
            created=created,
        )

    @property
    def session_room(self) -> str:
        """The room holding the session's shared metadata."""
        return f"{self.epoch}.session"

    def room_for(self, path: str) -> str:
        """The room name of a path in this epoch (a file that joined or moved during the
        session keeps the room it was given: see `rooms`)."""
        moved = self.rooms.get(path)
        if moved is not None:
            return moved
        return f"{self.epoch}.{hashlib.sha256(path.encode()).hexdigest()[:16]}"

    def to_json(self, with_files: bool = True) -> dict[str, Any]:
        """A JSON-able dict (by hand: `asdict` deep-copies, slow for 1,000 files)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if with_files or f.name != "files"}
        if with_files:
            data["files"] = [{"path": f.path, "kind": f.kind, "room": f.room} for f in self.files]
        return data

    def to_meta(self, commit_only: bool = False) -> dict[str, Any]:
        """The store's meta entries: the manifest without its files, or after a commit only
        what a commit changes. The files are rows of the store's `files` table, written
        one by one as files join, move and leave (`Store.add_file` …): a change in a
        100,000-file session rewrites a few hundred bytes, not 8 MB of JSON."""
        after_commit = {name: getattr(self, name) for name in COMMIT_FIELDS}
        if commit_only:
            return {COMMIT_KEY: after_commit}
        return {MANIFEST_KEY: self.to_json(with_files=False), COMMIT_KEY: after_commit}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Manifest:
        """Rebuild from the store's meta entries (`to_meta`, and the files under
        `FILES_KEY`; a store written before keeps them in the manifest itself);
        `KeyError` if there is none."""
        data = dict(meta[MANIFEST_KEY])
        data.update(meta.get(COMMIT_KEY) or {})
        if "files" not in data:
            data["files"] = meta.get(FILES_KEY) or []
            manifest = cls.from_json(data)
            for f in manifest.files:  # a file whose row was written but not the manifest (a kill between)
                if f.path not in manifest.rooms and manifest.room_for(f.path) != f.room:
                    manifest.rooms[f.path] = f.room
            return manifest
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Rebuild from `to_json` output."""
        data = dict(data)
        data["files"] = [FileEntry(**f) for f in data.get("files", [])]
        data["skipped"] = [tuple(s) for s in data.get("skipped", [])]
        data["warnings"] = [tuple(w) for w in data.get("warnings", [])]
        return cls(**data)
