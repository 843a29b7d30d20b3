"""Who may do what: capability tokens, personal invites, kicks, and who is connected."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import BadRequestError, RemovedError, UnknownInviteError
from .manifest import Manifest
from .rooms import Connection, Room


class Access:
    """The session's tokens and invites (kept in the manifest) and its live connections."""

    def __init__(self, manifest: Manifest, save: Callable[[], Awaitable[None]],
                 event: Callable[[str], None]) -> None:
        self.manifest = manifest
        self._save = save
        self._event = event
        #: Every open connection and the room it is in.
        self.connections: dict[Connection, Room] = {}
        #: Called with each connection that left (the session's request channel hooks in).
        self.on_left: Callable[[Connection], None] = lambda conn: None

    def grant_for(self, token: str | None) -> tuple[str, str | None] | None:
        """(role, invite name) a token grants; every token is compared, in constant time."""
        if not token:
            return None
        found: tuple[str, str | None] | None = None
        for role, expected in self.manifest.tokens.items():
            if hmac.compare_digest(token.encode(), expected.encode()):
                found = (role, None)
        for invite in self.manifest.invites:
            if hmac.compare_digest(token.encode(), invite["token"].encode()):
                found = (invite["role"], invite["name"])
        return found

    def role_for(self, token: str | None) -> str | None:
        """The role a token grants (see `grant_for`)."""
        grant = self.grant_for(token)
        return grant[0] if grant else None

    async def invite(self, name: str, viewer: bool, no_run: bool = False) -> str:
        """A new personal link token for `name` (editor, or viewer; `no_run`: an editor who
        may not run code)."""
        name = " ".join(name.split())[:80]
        if not name:
            raise BadRequestError("an invite needs a name")
        token = secrets.token_urlsafe(24)
        invite: dict[str, Any] = {"name": name, "role": "viewer" if viewer else "editor", "token": token}
        if no_run and not viewer:
            invite["run"] = False  # read by `kernels.service.KernelService.refusal`
        self.manifest.invites.append(invite)
        await self._save()
        self._event(f"invited {name} ({'viewer' if viewer else 'editor'})")
        return token

    async def kick(self, name: str) -> int:
        """Revoke `name`'s links at once and close their connections; how many closed."""
        before = len(self.manifest.invites)
        self.manifest.invites = [i for i in self.manifest.invites if i["name"] != name]
        if len(self.manifest.invites) == before:
            raise UnknownInviteError(f"nobody named {name!r} was invited: see rtc status")
        await self._save()
        gone = [c for c in self.connections if c.participant.invite == name]
        await asyncio.gather(*(c.close(RemovedError.close_code, "removed from the session") for c in gone))
        self._event(f"removed {name}: {len(gone)} connection(s) closed")
        return len(gone)

    def joined(self, conn: Connection, room: Room) -> None:
        """Note that `conn` is in `room` (it is forgotten when it closes)."""
        self.connections[conn] = room
        conn.on_close = lambda: self.left(conn)

    def left(self, conn: Connection) -> None:
        """Forget a connection (its presence is removed for the others)."""
        room = self.connections.pop(conn, None)
        if room is not None:
            room.leave(conn)
            self.on_left(conn)

    def participants(self) -> list[dict[str, Any]]:
        """Who is connected, with their role and the files they have open."""
        people: dict[str, dict[str, Any]] = {}
        for conn, room in self.connections.items():
            p = conn.participant
            entry = people.setdefault(
                f"{p.key}/{p.role}", {"name": p.name, "email": p.email, "role": p.role, "files": []}
            )
            if room.path is not None and room.path not in entry["files"]:
                entry["files"].append(room.path)
        return list(people.values())
