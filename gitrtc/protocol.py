"""Thin, strict helpers over the y-websocket wire format.

A frame is `[message type][...]`: SYNC (`[0][step1|step2|update][varbytes]`), AWARENESS
(`[1][varbytes]`), AUTH (`[2][0 = permission denied][varstring reason]`) and
QUERY_AWARENESS (`[3]`), plus gitrtc's REQUEST (`[100][varstring JSON]`, see
`gitrtc.requests`). pycrdt's helpers assume well-formed input; this module validates
every length so a malformed frame becomes a `ProtocolError`, never an IndexError deep in
the server.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

from pycrdt import Doc, Snapshot, get_update

from .errors import ProtocolError

EMPTY_UPDATE = b"\x00\x00"
#: The state vector of an empty document (what a new client sends in its step 1).
EMPTY_STATE_VECTOR = b"\x00"


class MessageType(IntEnum):
    """Outer message types of the y-websocket protocol."""

    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3
    #: gitrtc's attributed request/response channel (`gitrtc.requests`); y-protocols
    #: leaves numbers above its own four free, and clients that do not know it ignore it.
    REQUEST = 100


class SyncType(IntEnum):
    """Sub-types of a SYNC message."""

    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


class Message(NamedTuple):
    """One decoded frame: its type, sync sub-type (SYNC only) and payload bytes (a tuple:
    made for every frame, and a frozen dataclass's constructor costs several times more)."""

    type: MessageType
    sync: SyncType | None
    payload: bytes


def write_var_uint(num: int) -> bytes:
    """Encode an unsigned integer as lib0's variable-length uint."""
    out = bytearray()
    while num > 127:
        out.append(0x80 | (num & 0x7F))
        num >>= 7
    out.append(num)
    return bytes(out)


def read_var_uint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a var-uint at `pos`; return (value, next position)."""
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated message: a length runs past the end of the frame")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ProtocolError("malformed message: a length is longer than 64 bits")


def read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """Decode length-prefixed bytes at `pos`; return (bytes, next position)."""
    length, pos = read_var_uint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError("truncated message: the payload is shorter than its length says")
    return data[pos:end], end


#: A sync update frame's first bytes (`parse` reads one with a short payload first).
_SYNC, _UPDATE = MessageType.SYNC, SyncType.UPDATE
_UPDATE_HEAD = bytes((_SYNC, _UPDATE))
_MESSAGE_TYPES = {t.value: t for t in MessageType}  # a dict lookup; Enum(value) is slow
_SYNC_TYPES = {t.value: t for t in SyncType}


def parse(frame: bytes) -> Message:
    """Decode one frame, checking every length; raise `ProtocolError` if malformed."""
    if frame[:2] == _UPDATE_HEAD and len(frame) > 2 and frame[2] < 0x80:  # a keystroke's update
        end = 3 + frame[2]
        if end > len(frame):
            raise ProtocolError("truncated message: the payload is shorter than its length says")
        return Message(_SYNC, _UPDATE, frame[3:end])
    if not frame:
        raise ProtocolError("empty message")
    mtype = _MESSAGE_TYPES.get(frame[0])
    if mtype is None:
        raise ProtocolError(f"unknown message type {frame[0]}")
    if mtype is MessageType.SYNC:
        if len(frame) < 2:
            raise ProtocolError("truncated sync message")
        stype = _SYNC_TYPES.get(frame[1])
        if stype is None:
            raise ProtocolError(f"unknown sync message type {frame[1]}")
        payload, _ = read_var_bytes(frame, 2)
        return Message(mtype, stype, payload)
    if mtype is MessageType.AWARENESS:
        payload, _ = read_var_bytes(frame, 1)
        return Message(mtype, None, payload)
    return Message(mtype, None, frame[1:])


def sync_step1(doc: Doc[Any]) -> bytes:
    """A SYNC step-1 frame carrying `doc`'s state vector."""
    return _sync_frame(SyncType.STEP1, doc.get_state())


def sync_step2(update: bytes) -> bytes:
    """A SYNC step-2 frame carrying `update`."""
    return _sync_frame(SyncType.STEP2, update)


def sync_update(update: bytes) -> bytes:
    """A SYNC update frame carrying `update`."""
    return _sync_frame(SyncType.UPDATE, update)


def awareness_frame(update: bytes) -> bytes:
    """An AWARENESS frame carrying an encoded awareness update."""
    return bytes([MessageType.AWARENESS]) + write_var_uint(len(update)) + update


def request_frame(payload: bytes) -> bytes:
    """A REQUEST frame carrying `payload` (UTF-8 JSON) as var-bytes."""
    return bytes([MessageType.REQUEST]) + write_var_uint(len(payload)) + payload


def permission_denied(reason: str) -> bytes:
    """y-protocols' auth message: permission denied with an ASCII reason."""
    data = reason.encode("ascii")
    return bytes([MessageType.AUTH, 0]) + write_var_uint(len(data)) + data


def _sync_frame(stype: SyncType, payload: bytes) -> bytes:
    return bytes([MessageType.SYNC, stype]) + write_var_uint(len(payload)) + payload


def would_change(doc: Doc[Any], update: bytes) -> bool:
    """True if applying `update` to `doc` would change it (new items or new deletions).

    Used to tell a viewer's harmless messages (the step 2 every client sends on connect,
    repeating what the server already has) from attempted edits, without applying them.
    """
    if update == EMPTY_UPDATE:
        return False
    try:
        missing = get_update(update, doc.get_state())
    except Exception as exc:  # pycrdt raises plain exceptions for undecodable updates
        raise ProtocolError(f"malformed update: {exc}") from exc
    num_clients, pos = read_var_uint(missing, 0)
    if num_clients:
        return True
    deletes = _read_delete_set(missing, pos)[0]
    if not deletes:
        return False
    known = _read_delete_set(Snapshot.from_doc(doc).encode(), 0)[0]
    return not _ranges_covered(deletes, known)


def state_vector(data: bytes) -> dict[int, int]:
    """Decode an encoded state vector: client → the next clock it will use."""
    out: dict[int, int] = {}
    count, pos = read_var_uint(data, 0)
    for _ in range(count):
        client, pos = read_var_uint(data, pos)
        out[client], pos = read_var_uint(data, pos)
    return out


DeleteSet = dict[int, list[tuple[int, int]]]


def _read_delete_set(data: bytes, pos: int) -> tuple[DeleteSet, int]:
    """Decode a v1 delete set: client → [(clock, length)]."""
    result: DeleteSet = {}
    clients, pos = read_var_uint(data, pos)
    for _ in range(clients):
        client, pos = read_var_uint(data, pos)
        ranges, pos = read_var_uint(data, pos)
        items = result.setdefault(client, [])
        for _ in range(ranges):
            clock, pos = read_var_uint(data, pos)
            length, pos = read_var_uint(data, pos)
            items.append((clock, length))
    return result, pos


def _ranges_covered(wanted: DeleteSet, known: DeleteSet) -> bool:
    """True if every deleted range in `wanted` is already deleted in `known`."""
    for client, ranges in wanted.items():
        have = sorted(known.get(client, ()))
        for clock, length in ranges:
            end = clock + length
            for kclock, klength in have:
                if kclock <= clock < kclock + klength:
                    clock = kclock + klength
                    if clock >= end:
                        break
            if clock < end:
                return False
    return True
