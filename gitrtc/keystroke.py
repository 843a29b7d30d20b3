"""The update check's hot path: recognise a keystroke's update from its first bytes.

A participant typing sends one small update per keystroke, and W1 (one writer) is made
of little else: characters typed into a text, and characters deleted. Decoding each one
in Python (`yupdate.decode`) cost more than applying it, so `validation.DocumentGuard`
asks this module first and falls back to the full check for anything it does not
recognise. Performance trick, one seam: everything here is an exact shortcut of the full
path (tests/test_keystroke.py checks it against the full path on the corpus' traces),
measured by benchmarks/receive.py.

- `Keystrokes.expect` remembers, for a run of characters just accepted, the bytes the
  same typist's next keystroke starts with (its id follows the run's, its origin is the
  run's last character, its right neighbour is the run's). `Keystrokes.match` then
  checks a prefix and a length instead of decoding varints.
- `Keystrokes.deleted` reads the update of one deletion (one client, one range), what
  backspace sends.
"""

from __future__ import annotations

import re

from . import yupdate

ID = yupdate.ID

#: How many typists' next keystrokes are remembered (most recent first).
MAX_TYPISTS = 8


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def encode_uint(value: int) -> bytes:
    """lib0's var-uint encoding of `value` (branches for the short ones: this runs per keystroke)."""
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Expected:
    """One typist's next keystroke; updated in place while they type on (this runs per keystroke).

    `place` is where the run it continues sits in the guard's `ItemIndex`, remembered from
    the accepted keystroke: valid while the index's `generation` is the one noted here (only
    an item added out of clock order, never the usual append, can change what the index
    says of an item already in it)."""

    __slots__ = (
        "after_clock",
        "client",
        "clock",
        "clock_bytes",
        "generation",
        "head",
        "place",
        "prefix",
        "right",
        "tail",
    )

    def __init__(self, client: int, right: ID | None) -> None:
        encoded = encode_uint(client)
        self.client = client
        self.right = right
        self.head = b"\x01\x01" + encoded  # then the clock
        self.after_clock = (b"\x84" if right is None else b"\xc4") + encoded  # then the origin's clock
        self.tail = b"" if right is None else encode_uint(right[0]) + encode_uint(right[1])
        self.clock = -1
        self.clock_bytes = b""  # encode_uint(clock)
        self.prefix = b""  # everything up to the string's length
        self.place: object = None
        self.generation = -1


class Keystrokes:
    """The next keystroke of the last few typists, predicted from their last one."""

    __slots__ = ("_expected", "deletions", "hits")

    def __init__(self) -> None:
        self._expected: dict[int, Expected] = {}  # client → its next keystroke
        #: How many updates `match` and `deleted` recognised (tests check the shortcuts are taken).
        self.hits = 0
        self.deletions = 0

    def expect(self, client: int, end: int, right: ID | None, place: object, generation: int) -> None:
        """Characters of `client` ending at clock `end` (exclusive) were accepted at `place`
        (the index being at `generation`), with `right` as their right neighbour: expect the
        same typist to go on typing there."""
        old = self._expected.get(client)
        if old is None or old.right != right:
            expected = self._expected
            if old is None and len(expected) >= MAX_TYPISTS:
                del expected[next(iter(expected))]  # the first remembered
            old = expected[client] = Expected(client, right)
        # the origin's clock is end - 1: usually the clock this typist's last keystroke started at
        origin = old.clock_bytes if old.clock == end - 1 else encode_uint(end - 1)
        if 0x80 <= end < 0x200000:  # encode_uint(end), inline: this runs per keystroke
            low = end & 0x7F | 0x80
            clock = bytes((low, end >> 7)) if end < 0x4000 else bytes((low, end >> 7 & 0x7F | 0x80, end >> 14))
        else:
            clock = encode_uint(end)
        old.clock_bytes = clock
        old.clock = end
        old.prefix = old.head + clock + old.after_clock + origin + old.tail
        old.place = place
        old.generation = generation

    def match(self, update: bytes) -> tuple[Expected, int, int] | None:
        """(the expected keystroke, its length in UTF-16 units, its UTF-8 size) if `update` is
        one: one struct of characters (fewer than 128 bytes) typed where its typist left off,
        no deletions; else None. `UnicodeDecodeError` if its text is not UTF-8, `IndexError`
        if it ends inside the prefix."""
        for expected in self._expected.values():
            prefix = expected.prefix
            if update.startswith(prefix):
                start = len(prefix)
                size = update[start]  # IndexError past the end: not a keystroke
                if size >= 0x80 or len(update) != start + size + 2 or update[-1] != 0:
                    return None
                text = update[start + 1 : -1]
                length = size if text.isascii() else len(text.decode("utf-8").encode("utf-16-le")) // 2
                self.hits += 1
                return expected, length, size
        return None

    def deleted(self, update: bytes) -> tuple[int, int, int] | None:
        """(client, clock, length) if `update` deletes one range of one client's items and
        does nothing else (what backspace sends); else None."""
        m = _DELETED.fullmatch(update)
        if m is None:
            return None
        self.deletions += 1
        return yupdate.uint(m[1]), yupdate.uint(m[2]), yupdate.uint(m[3])


_V = rb"([\x80-\xff]{0,9}[\x00-\x7f])"  # one var-uint
#: No structs; a delete set of one client with one range.
_DELETED = re.compile(rb"\x00\x01" + _V + rb"\x01" + _V + _V, re.DOTALL)
