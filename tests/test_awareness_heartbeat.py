"""A repeated presence (`awareness.Heartbeat`: the same state, a new clock) skips the parse
and the checks, and the room decides exactly as the full path does: the same refusals, the
same frames to everyone, the same states, clocks and owners. Real rooms, real pycrdt
awareness, in-memory transports."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pycrdt import Doc

from gitrtc import awareness, protocol
from gitrtc.errors import ProtocolError
from gitrtc.origins import Participant
from gitrtc.rooms import Connection, Room

from .support import MemoryTransport

SERVER_ID = 424242
#: (name, role) of each connection: two of one person (a reconnect takes ids over), another
#: editor, a viewer.
PEOPLE = [("ann", "editor"), ("ann", "editor"), ("bob", "editor"), ("val", "viewer")]
STATES: list[Any] = [
    {"user": {"name": "Ann", "color": "#30bced"}},
    {"user": {"name": "Ann", "color": "#30bced"}, "file": "a.md"},
    {"user": {"name": "Ann", "color": "red; background: url(x)"}},  # refused: not a hex colour
    {"user": {"name": "Ann", "role": "owner"}},  # refused: a role nobody here may claim
    {"user": {"name": "x" * 200}},  # refused: too long a name
    None,  # the client is gone
]


def entry(client_id: int, clock: int, state: Any) -> bytes:
    raw = b"" if state is None else json.dumps(state, separators=(",", ":")).encode()
    return protocol.write_var_uint(client_id) + protocol.write_var_uint(clock) + protocol.write_var_uint(len(raw)) + raw


def frame(entries: list[tuple[int, int, Any]]) -> bytes:
    payload = protocol.write_var_uint(len(entries)) + b"".join(entry(*e) for e in entries)
    return protocol.awareness_frame(payload)


def outcome(frames: list[tuple[int, bytes]], full: bool) -> dict[str, Any]:
    """What a room makes of `frames` (sender index, frame); `full`: no heartbeat shortcut."""

    async def run() -> dict[str, Any]:
        room = Room("r", "a.md", "text", Doc(client_id=SERVER_ID), None)
        conns = [Connection(MemoryTransport(), Participant(n, "", r)) for n, r in PEOPLE]
        for conn in conns:
            await room.join(conn)
        errors: list[str | None] = []
        for sender, data in frames:
            conn = conns[sender]
            if full:
                conn.heartbeat = None
            try:
                await room.receive(conn, data)
                errors.append(None)
            except ProtocolError as exc:
                errors.append(str(exc))
            room._flush_posted()
        meta = room.awareness.meta
        return {
            "errors": errors,
            "sent": [c.transport.sent for c in conns],  # type: ignore[attr-defined]
            "states": room.awareness.states,
            "clocks": {cid: m["clock"] for cid, m in meta.items()},
            "owners": {cid: conns.index(c) for cid, c in room.awareness_owners.items()},
        }

    return asyncio.run(run())


# weighted towards what can be accepted, and to ann's two tabs, which may take each other's ids
ids = st.sampled_from([1, 1, 2, 1 << 40, SERVER_ID])
clocks = st.integers(min_value=0, max_value=300)
states = st.sampled_from([0, 0, 0, 1, 1, 2, 3, 4, 5])
one_entry = st.tuples(ids, clocks, states).map(lambda e: [e])
entries = st.one_of(one_entry, one_entry, st.lists(st.tuples(ids, clocks, states), min_size=0, max_size=3))
messages = st.tuples(st.sampled_from([0, 0, 1, 1, 2, 3]), entries)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(messages, st.integers(0, 1000)), min_size=1, max_size=30))
@example([(0, [(1, 0, 0)]), (1, [(1, 0, 0)]), 0])  # a tab's heartbeat after its other tab took the id
def test_heartbeats_decide_as_the_full_path(script: list[tuple[int, list[tuple[int, int, int]]] | int]) -> None:
    """A script of messages and repeats (an int: an earlier message sent again by its sender,
    each entry's clock moved on), through a room with the shortcut and one without."""
    frames: list[tuple[int, bytes]] = []
    sent: list[tuple[int, list[tuple[int, int, int]]]] = []
    for step, op in enumerate(script):
        if isinstance(op, int):
            if not sent:
                continue
            sender, es = sent[op % len(sent)]
            es = [(cid, clock + 100 + step, s) for cid, clock, s in es]
        else:
            sender, es = op
            sent.append(op)
        frames.append((sender, frame([(cid, clock, STATES[s]) for cid, clock, s in es])))
    assert outcome(frames, full=False) == outcome(frames, full=True)


def test_a_heartbeat_is_recognised_and_anything_else_is_not() -> None:
    state = {"user": {"name": "Ann", "color": "#30bced"}}
    first = frame([(7, 1, state)])[2:]  # the payload: past the type and its one-byte length
    entries = awareness.parse(first)
    beat = awareness.heartbeat(first, entries)
    assert beat is not None and beat.client_id == 7
    for clock in (2, 127, 128, 300, 1 << 40, (1 << 63) - 1):
        assert awareness.repeats(b"\x01" + entry(7, clock, state), beat)
    other_state = {"user": {"name": "Ann", "color": "#30bcee"}}
    for payload in (
        b"\x01" + entry(8, 2, state),  # another client id
        b"\x01" + entry(7, 2, other_state),  # another state
        b"\x01" + entry(7, 2, None),  # gone
        b"\x02" + entry(7, 2, state) + entry(8, 2, state),  # two entries
        b"\x01\x07\x80" + entry(7, 2, state)[2:],  # a clock that does not end
        b"\x01\x07" + b"\x80" * 10 + b"\x01" + entry(7, 2, state)[2:],  # an 11-byte clock
    ):
        assert not awareness.repeats(payload, beat), payload
    assert awareness.heartbeat(b"\x01" + entry(7, 1, None), awareness.parse(b"\x01" + entry(7, 1, None))) is None


def test_an_id_taken_over_meanwhile_goes_through_the_full_check() -> None:
    state = STATES[0]
    frames = [
        (0, frame([(5, 1, state)])),  # ann's first tab introduces 5
        (1, frame([(5, 2, state)])),  # ann's reconnect takes 5 over
        (0, frame([(5, 3, state)])),  # the first tab's heartbeat: the same person takes it back
        (2, frame([(5, 4, state)])),  # bob: never his
        (2, frame([(5, 5, state)])),
    ]
    got = outcome(frames, full=False)
    assert got == outcome(frames, full=True)
    assert got["owners"] == {5: 0}
    assert got["clocks"][5] == 3
    denied = protocol.permission_denied("awareness: not your client id")
    assert got["sent"][2][-2:] == [denied, denied]
