"""Reading a Yjs update (v1 encoding) without applying it: what it inserts, where, and what it deletes.

pycrdt applies updates but says nothing about what is in them. The server needs to know
before it accepts a client's update whether it embeds values a file cannot hold (binary,
`undefined`, NaN, sub-documents, XML or formatting content), how deep it nests, and
which root types it touches; this module decodes the wire format (lib0's encoding, as
written by Yjs and yrs) into `Struct`s and a delete set, checking every length.

Only what the checks need is kept: for a string its UTF-8 size, for plain values their
nesting depth and whether they are all JSON values, for a shared type its kind.
"""

from __future__ import annotations

import math
import re
import struct
from typing import NamedTuple

from .errors import ProtocolError, RejectedEditError

# Content kinds (the low 5 bits of a struct's info byte).
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC, SKIP = range(11)
#: Shared type kinds of a TYPE content (YArray, YMap, YText; the rest are XML types).
ARRAY, MAP, TEXT = 0, 1, 2

ID = tuple[int, int]


class Struct(NamedTuple):
    """One item of an update: its id range, where it goes, what it holds.

    `parent` is a root type's name, the id of the shared type it is inside, or None when
    it sits next to `origin`/`right` (and so has their parent). `size` is the UTF-8 size
    of a string, the encoded size of other content. `depth` is how deep plain values
    nest (1 for a scalar, 0 for no plain value). `type_ref` is the kind of a TYPE content.
    """

    client: int
    clock: int
    length: int
    kind: int
    parent: str | ID | None
    origin: ID | None
    right: ID | None
    key: str | None
    size: int
    depth: int
    type_ref: int


class Update(NamedTuple):
    """A decoded update: its structs and its delete set (client → [(clock, length)])."""

    structs: list[Struct]
    deletes: dict[int, list[tuple[int, int]]]


class _Reader:
    __slots__ = ("data", "max_depth", "pos")

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth

    def uint(self) -> int:
        data, pos = self.data, self.pos
        byte = data[pos]
        if byte < 0x80:  # the common case: one byte
            self.pos = pos + 1
            return byte
        value = 0
        shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return value
            shift += 7
            if shift > 70:
                raise ProtocolError("malformed update: a number is longer than 64 bits")

    def take(self, length: int) -> bytes:
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError("truncated update: a value runs past its end")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def string(self) -> str:
        try:
            return self.take(self.uint()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"malformed update: a string is not UTF-8 ({exc.reason})") from None

    def skip_string(self) -> bool:
        """Skip a string; whether it is valid UTF-8 (so a JSON string)."""
        raw = self.take(self.uint())
        if raw.isascii():
            return True
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    def signed(self) -> None:
        byte = self.data[self.pos]
        self.pos += 1
        while byte & 0x80:
            byte = self.data[self.pos]
            self.pos += 1

    def any(self, depth: int) -> tuple[int, bool]:
        """Skip one lib0 `any` value: (its nesting depth, whether it is a JSON value)."""
        if depth > self.max_depth:
            return depth, False  # deeper than allowed: stop reading, the check refuses it
        tag = self.data[self.pos]
        self.pos += 1
        if tag in (126, 121, 120):  # null, false, true
            return depth, True
        if tag == 125:  # integer
            self.signed()
            return depth, True
        if tag == 119:  # string
            return depth, self.skip_string()
        if tag == 124:  # float32
            return depth, math.isfinite(struct.unpack(">f", self.take(4))[0])
        if tag == 123:  # float64
            return depth, math.isfinite(struct.unpack(">d", self.take(8))[0])
        if tag == 122:  # bigint
            self.take(8)
            return depth, True
        if tag in (118, 117):  # object, array
            deepest, plain = depth, True
            for _ in range(self.uint()):
                if tag == 118 and not self.skip_string():
                    return deepest, False
                inner, ok = self.any(depth + 1)
                deepest = max(deepest, inner)
                plain = plain and ok
                if not plain:
                    return deepest, False
            return deepest, plain
        if tag == 116:  # Uint8Array
            self.take(self.uint())
            return depth, False
        if tag == 127:  # undefined
            return depth, False
        raise ProtocolError(f"malformed update: unknown value tag {tag}")


_V = rb"([\x80-\xff]{0,9}[\x00-\x7f])"  # one var-uint
#: One client, one struct: a string with an origin and/or a right neighbour (no parent info).
_TYPED = re.compile(
    rb"\x01\x01" + _V + _V + rb"(?:\x84" + _V + _V + rb"|\xc4" + _V + _V + _V + _V + rb"|\x44" + _V + _V + rb")" + _V,
    re.DOTALL,
)
_CLIENTS: dict[bytes, int] = {}  # client ids as encoded → their values (a few per session)


def uint(raw: bytes) -> int:
    """A var-uint's value from its encoded bytes (a regular expression's group)."""
    if len(raw) == 1:
        return raw[0]
    value = 0
    shift = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        shift += 7
    return value


def _client(raw: bytes) -> int:
    value = _CLIENTS.get(raw)
    if value is None:
        if len(_CLIENTS) > 10_000:
            _CLIENTS.clear()
        value = _CLIENTS[raw] = uint(raw)
    return value


def typed_characters(update: bytes) -> tuple[int, int, int, ID | None, ID | None, int] | None:
    """The hot path's shortcut: if `update` is one run of characters typed next to existing
    ones (one struct of one client, no deletions: what a keystroke sends), its (client,
    clock, length, origin, right, UTF-8 size); else None (use `decode`). A regular
    expression finds the fields: a loop over the bytes cost more than the rest of a keystroke.
    `UnicodeDecodeError` if the text is not UTF-8."""
    m = _TYPED.match(update)
    if m is None:
        return None
    size = uint(m[11])
    end = m.end() + size
    if end + 1 != len(update) or update[end] != 0:  # then an empty delete set, and nothing more
        return None
    text = update[m.end() : end]
    length = size if text.isascii() else len(text.decode("utf-8").encode("utf-16-le")) // 2
    client, clock = _client(m[1]), uint(m[2])
    if m[3] is not None:
        return client, clock, length, (_client(m[3]), uint(m[4])), None, size
    if m[5] is not None:
        return client, clock, length, (_client(m[5]), uint(m[6])), (_client(m[7]), uint(m[8])), size
    return client, clock, length, None, (_client(m[9]), uint(m[10])), size


def decode(update: bytes, max_depth: int) -> Update:
    """Decode a v1 update: `ProtocolError` if it is malformed, `RejectedEditError` (with
    the reason) if it holds content a file cannot hold or values nested deeper than
    `max_depth`."""
    reader = _Reader(update, max_depth)
    try:
        return _decode(reader)
    except IndexError:
        raise ProtocolError("truncated update") from None
    except (struct.error, RecursionError) as exc:
        raise ProtocolError(f"malformed update: {exc}") from None


def _decode(r: _Reader) -> Update:
    structs: list[Struct] = []
    for _ in range(r.uint()):
        count = r.uint()
        client = r.uint()
        clock = r.uint()
        for _ in range(count):
            info = r.data[r.pos]
            r.pos += 1
            kind = info & 0x1F
            if kind == GC or kind == SKIP:
                clock += r.uint()
                continue
            origin = (r.uint(), r.uint()) if info & 0x80 else None
            right = (r.uint(), r.uint()) if info & 0x40 else None
            parent: str | ID | None = None
            key = None
            if not info & 0xC0:
                parent = r.string() if r.uint() == 1 else (r.uint(), r.uint())
                if info & 0x20:
                    key = r.string()
            start = r.pos
            length, depth, type_ref, size = 1, 0, -1, -1
            if kind == STRING:
                size = length = r.uint()
                text = r.take(size)
                if not text.isascii():
                    length = _utf16_length(text)
            elif kind == ANY:
                length = r.uint()
                for _ in range(length):
                    inner, ok = r.any(1)
                    if not ok:
                        raise RejectedEditError(_why_not_plain(inner, r.max_depth))
                    depth = max(depth, inner)
            elif kind == DELETED:
                length = r.uint()
            elif kind == TYPE:
                type_ref = r.uint()
                if type_ref not in (ARRAY, MAP, TEXT):
                    raise RejectedEditError("an XML shared type: documents hold only maps, arrays and text")
            else:
                raise RejectedEditError(_FORBIDDEN.get(kind) or f"unknown content kind {kind}")
            if size < 0:
                size = r.pos - start
            structs.append(Struct(client, clock, length, kind, parent, origin, right, key, size, depth, type_ref))
            clock += length
    deletes: dict[int, list[tuple[int, int]]] = {}
    if r.pos < len(r.data):
        for _ in range(r.uint()):
            client = r.uint()
            ranges = deletes.setdefault(client, [])
            for _ in range(r.uint()):
                ranges.append((r.uint(), r.uint()))
    return Update(structs, deletes)


_FORBIDDEN = {
    BINARY: "binary content: documents hold only JSON values",
    JSON: "legacy JSON content: documents hold only JSON values",
    EMBED: "an embedded object: documents hold only JSON values and text",
    FORMAT: "rich-text formatting: documents hold only plain text",
    DOC: "a sub-document: documents hold only JSON values and text",
}


def _why_not_plain(depth: int, max_depth: int) -> str:
    if depth > max_depth:
        return f"a value nested deeper than {max_depth} levels"
    return "a value that is not JSON (bytes, undefined, NaN, infinity or text that is not UTF-8)"


def _utf16_length(text: bytes) -> int:
    """Yjs' length of a string (UTF-16 code units); `RejectedEditError` if it is not UTF-8."""
    try:
        return len(text.decode("utf-8").encode("utf-16-le")) // 2
    except UnicodeDecodeError:
        raise RejectedEditError("text that is not valid UTF-8") from None
