"""Who may do what: capability tokens, personal invites, kicks, and who is connected.

Everyone gets a credential of their own: `rtc invite` makes one for a name, and someone
who comes with a shared link (edit or view) exchanges it for one bound to the name they
give (`join`), so `kick` removes exactly that person.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import BadRequestError, ForbiddenError, RemovedError, UnauthorizedError, UnknownInviteError
from .manifest import Manifest
from .rooms import Connection, Room

#: Personal tokens made for people joining with a shared link, at most (each distinct name
#: is one; the same name joining again gets its token back).
MAX_JOINED = 1000
#: What the page shows a removed person (the close reason of their connections).
REMOVED = "removed by the session owner"


def clean_name(name: str) -> str:
    """A display name as kept: whitespace folded, at most 80 characters."""
    return " ".join(name.split())[:80]


class Access:
    """The session's tokens and invites (kept in the manifest) and its live connections."""

    def __init__(self, manifest: Manifest, save: Callable[[], Awaitable[None]], event: Callable[[str], None]) -> None:
        self.manifest = manifest
        self._save = save
        self._event = event
        #: Every open connection and the room it is in.
        self.connections: dict[Connection, Room] = {}
        #: Names the owner removed: the shared links no longer let them in under that name
        #: (until invited again; kept while this process serves the session).
        self.removed: set[str] = set()
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
        name = clean_name(name)
        if not name:
            raise BadRequestError("an invite needs a name")
        self.removed.discard(name)
        token = secrets.token_urlsafe(24)
        invite: dict[str, Any] = {"name": name, "role": "viewer" if viewer else "editor", "token": token}
        if no_run and not viewer:
            invite["run"] = False  # read by `kernels.service.KernelService.refusal`
        self.manifest.invites.append(invite)
        await self._save()
        self._event(f"invited {name} ({'viewer' if viewer else 'editor'})")
        return token

    async def join(self, token: str | None, name: str) -> tuple[str, str | None]:
        """The credential of someone joining with `token`: a shared link's token is exchanged
        for a personal one bound to `name` (same role; the same name again gets the same
        one back), so a kick is per person; a personal or owner token is kept. Returns
        (token, the name it is bound to, None for the owner)."""
        grant = self.grant_for(token)
        if grant is None or token is None:
            raise UnauthorizedError("missing or wrong token: use the link rtc start printed")
        role, bound = grant
        if bound is not None or role == "owner":
            return token, bound
        name = clean_name(name)
        if not name:
            raise BadRequestError("joining needs a name")
        if name in self.removed:
            raise ForbiddenError(f"{name} was {REMOVED}: ask them for an invite to join again")
        for entry in self.manifest.invites:
            if entry.get("joined") and entry["name"] == name and entry["role"] == role:
                return entry["token"], name
        if sum(1 for i in self.manifest.invites if i.get("joined")) >= MAX_JOINED:
            raise ForbiddenError(f"this session has {MAX_JOINED} people already: ask the owner for an invite")
        personal = secrets.token_urlsafe(24)
        self.manifest.invites.append({"name": name, "role": role, "token": personal, "joined": "link"})
        await self._save()
        return personal, name

    async def kick(self, name: str) -> int:
        """Revoke `name`'s personal tokens (invited or joined with a shared link) at once and
        close their connections, and those of anyone else connected under that name
        without one (a client that never joined); how many closed."""
        name = clean_name(name)
        before = len(self.manifest.invites)
        self.manifest.invites = [i for i in self.manifest.invites if i["name"] != name]
        gone = [
            c
            for c in self.connections
            if c.participant.invite == name
            or (c.participant.invite is None and c.participant.role != "owner" and c.participant.name == name)
        ]
        if len(self.manifest.invites) == before and not gone:
            raise UnknownInviteError(f"nobody named {name!r} is in the session or invited: see rtc status")
        self.removed.add(name)
        if len(self.manifest.invites) != before:
            await self._save()
        await asyncio.gather(*(c.close(RemovedError.close_code, REMOVED) for c in gone))
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
        """Who is connected, with their role and the file they have open now: the `file`
        of their presence in the session room, else the room they joined last (a browser
        keeps every file it opened connected, so its rooms are not where it is)."""
        shared = {f.path for f in self.manifest.files}
        people: dict[str, dict[str, Any]] = {}
        for conn, room in self.connections.items():  # in the order they joined
            p = conn.participant
            entry = people.setdefault(
                f"{p.key}/{p.role}", {"name": p.name, "email": p.email, "role": p.role, "file": None}
            )
            if room.path is not None:
                entry.setdefault("_last", room.path)
                entry["_last"] = room.path
                continue
            for client_id in conn.awareness_ids:
                state = room.awareness.states.get(client_id)
                if isinstance(state, dict) and "file" in state:
                    entry["_presence"] = state["file"] if state["file"] in shared else None
        out = []
        for entry in people.values():
            last = entry.pop("_last", None)
            current = entry.pop("_presence") if "_presence" in entry else last
            entry["file"] = current
            entry["files"] = [current] if current else []  # the panel's and older clients' form
            out.append(entry)
        return out
