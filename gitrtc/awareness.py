"""Presence (y-protocols awareness) from clients, checked before a room applies or forwards it.

Awareness is relayed to everyone in a room and replayed to every joiner, so an unchecked
client could flood the others (10,000 made-up client ids in one message), pose as another
participant (update or remove someone else's client id), claim a role it does not have,
or smuggle CSS into every other browser through `user.color`. A connection owns the
client ids it introduced; an update is refused as a whole (the room answers
permission-denied and neither applies nor forwards it) when it touches an id owned by
another connection or by the server, introduces more than `MAX_IDS_PER_CONNECTION` ids,
or carries a state that is too large or has invalid `user` fields. The message rate is
limited by the WebSocket reader (`server/ratelimit.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import protocol
from .errors import ProtocolError

#: Distinct client ids one connection may introduce (a browser tab or `rtc join` uses one).
MAX_IDS_PER_CONNECTION = 4
#: Bytes of one client's state as JSON (a name, a colour, a file path, a cursor).
MAX_STATE_BYTES = 8 * 1024
#: Characters of `user.name` (the browser's name field takes 80).
MAX_NAME = 80
#: A colour that is safe to put into CSS: hex digits only (`#rgb`, `#rgba`, `#rrggbb`, or
#: `#rrggbbaa`, which the browser client uses for the light variant).
COLOR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})\Z")
#: The roles a connection of each role may claim in `user.role` (an owner's browser shows
#: itself as an editor in file rooms).
CLAIMABLE = {
    "owner": frozenset({"owner", "editor", "viewer"}),
    "editor": frozenset({"editor", "viewer"}),
    "viewer": frozenset({"viewer"}),
}
#: `user` fields whose value is a colour.
COLOR_FIELDS = ("color", "colorLight")


@dataclass(frozen=True)
class Entry:
    """One client's entry of an awareness update (`state` None: the client is gone, or
    its state was too large to read)."""

    client_id: int
    clock: int
    state: dict[str, Any] | None
    size: int


def parse(payload: bytes) -> list[Entry]:
    """The entries of an awareness update; `ProtocolError` if it is not well formed."""
    count, pos = protocol.read_var_uint(payload, 0)
    if count > 10_000:
        raise ProtocolError("malformed awareness update: too many entries")
    entries = []
    for _ in range(count):
        client_id, pos = protocol.read_var_uint(payload, pos)
        clock, pos = protocol.read_var_uint(payload, pos)
        raw, pos = protocol.read_var_bytes(payload, pos)
        if len(raw) > MAX_STATE_BYTES:
            entries.append(Entry(client_id, clock, None, len(raw)))
            continue
        try:
            state = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ProtocolError(f"malformed awareness update: {exc}") from exc
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("malformed awareness update: a state must be a JSON object or null")
        entries.append(Entry(client_id, clock, state, len(raw)))
    return entries


def refusal(
    entries: list[Entry],
    role: str,
    own: Collection[int],
    owned_by_others: Collection[int],
    server_id: int,
) -> str | None:
    """Why a connection of `role` that introduced `own` may not send `entries`, or None.

    `owned_by_others` are the ids other connections of the room introduced.
    """
    ids = {e.client_id for e in entries}
    if server_id in ids or ids & set(owned_by_others):
        return "awareness: not your client id"
    if len(ids | set(own)) > MAX_IDS_PER_CONNECTION:
        return "awareness: too many client ids"
    for entry in entries:
        if entry.size > MAX_STATE_BYTES:
            return f"awareness: a state may have at most {MAX_STATE_BYTES} bytes"
        if entry.state is not None:
            problem = state_problem(entry.state, role)
            if problem:
                return f"awareness: {problem}"
    return None


def state_problem(state: dict[str, Any], role: str) -> str | None:
    """What is wrong with one client's state for a connection of `role`, or None.

    The fields the browser client reads (`user`, `file`, `place`, `cursor`) must have
    their shapes: a number where a path is expected breaks every page's list of people.
    """
    problem = _place_problem(state) or _cursor_problem(state.get("cursor"))
    if problem:
        return problem
    user = state.get("user")
    if user is None:
        return None
    if not isinstance(user, dict):
        return "user must be an object"
    for field in ("name", "sid"):
        value = user.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME):
            return f"user.{field} must be a string of at most {MAX_NAME} characters"
    for field in COLOR_FIELDS:
        value = user.get(field)
        if value is not None and (not isinstance(value, str) or not COLOR.match(value)):
            return f"user.{field} must be a hex colour such as #rrggbb"
    claimed = user.get("role")
    if claimed is not None and claimed not in CLAIMABLE.get(role, ()):
        return f"a {role} cannot claim the role {str(claimed)[:20]!r}"
    return None


def _place_problem(state: dict[str, Any]) -> str | None:
    """`file` a path or null; `place` null or `{file, cell?, line?}`."""
    if not _optional(state.get("file"), str):
        return "file must be a string or null"
    place = state.get("place")
    if place is None:
        return None
    if (
        not isinstance(place, dict)
        or not _optional(place.get("file"), str)
        or not _optional(place.get("cell"), str)
        or not _optional(place.get("line"), int)
    ):
        return "place must be {file, cell, line} with a string, a string and an integer"
    return None


def _cursor_problem(cursor: object) -> str | None:
    """`cursor` null or `{anchor, head}`, each a Yjs relative position as JSON or null."""
    if cursor is None:
        return None
    if not isinstance(cursor, dict) or not all(_relative_position(cursor.get(k)) for k in ("anchor", "head")):
        return "cursor must be {anchor, head} of Yjs relative positions"
    return None


def _relative_position(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, dict):
        return False
    return (
        _optional(value.get("tname"), str)
        and _optional(value.get("assoc"), int)
        and _item_id(value.get("type"))
        and _item_id(value.get("item"))
    )


def _item_id(value: object) -> bool:
    """A Yjs item id as JSON (`{client, clock}`) or null."""
    if value is None:
        return True
    return isinstance(value, dict) and isinstance(value.get("client"), int) and isinstance(value.get("clock"), int)


def _optional(value: object, kind: type) -> bool:
    """`value` is null or of `kind` (a bool is not an int here)."""
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


class Heartbeat(NamedTuple):
    """A connection's last accepted presence, as bytes: one entry for `client_id` with a
    state. y-websocket clients send the same state again every 15 s (W3: every 3 s) with
    only the clock moved; such a repeat is `repeats` it and needs neither `parse` nor
    `refusal`. Performance trick, one seam: the room takes it only while the connection
    still owns `client_id`, and then `refusal` cannot decide otherwise than it did (same
    bytes, same role, the id neither someone else's nor new); tests/test_awareness_heartbeat.py
    compares it with the full path."""

    client_id: int
    #: The update up to its clock (the entry count, 1, and the client id).
    prefix: bytes
    #: The update after its clock (the state's length and bytes).
    tail: bytes


def heartbeat(payload: bytes, entries: list[Entry]) -> Heartbeat | None:
    """What a repeat of `payload` (accepted, its `entries` parsed) looks like; None unless
    it is one entry with a state."""
    if len(entries) != 1 or entries[0].state is None:
        return None
    _, pos = protocol.read_var_uint(payload, 0)
    _, clock_at = protocol.read_var_uint(payload, pos)
    _, tail_at = protocol.read_var_uint(payload, clock_at)
    return Heartbeat(entries[0].client_id, payload[:clock_at], payload[tail_at:])


def repeats(payload: bytes, beat: Heartbeat) -> bool:
    """Whether `payload` is `beat`'s entry again with any clock: its prefix, a well-formed
    var-uint (lib0's are prefix-free, so the split is the parser's), its tail."""
    prefix, tail = beat.prefix, beat.tail
    if not (payload.startswith(prefix) and payload.endswith(tail)):
        return False
    clock = payload[len(prefix) : len(payload) - len(tail)]
    size = len(clock)
    if size == 1:
        return clock[0] < 0x80
    if size == 0 or size > 9 or clock[-1] >= 0x80:
        return False
    return all(byte >= 0x80 for byte in clock[:-1])
