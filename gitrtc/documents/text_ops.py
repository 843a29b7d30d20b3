"""Turn a new text into the fewest edits of a shared `pycrdt.Text`.

Applying a file change as a diff (not "clear and insert everything") keeps concurrent
edits by others and their cursors. The diff is computed on code points, then converted
to the UTF-8 byte offsets pycrdt's `Text` uses (`len(Text("é📊")) == 6`).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from difflib import SequenceMatcher
from itertools import accumulate

import pycrdt

__all__ = ["apply_text", "rebase_edits", "rebase_text", "rebased", "text_edits"]

#: Above this many code points (both sides of a changed region together) a character
#: diff (difflib, quadratic in the worst case) is not attempted; lines, then words first.
CHAR_DIFF_LIMIT = 2_000
#: Above this many tokens (lines or words, both sides together) a level is skipped.
TOKEN_DIFF_LIMIT = 4_000_000
#: Code points (or tokens) one diff may put through difflib in all; beyond, blocks are
#: replaced whole. Bounds the time of a diff of two very different big texts (~1-2 s).
DIFFLIB_BUDGET = 100_000
#: A region of more tokens than this that shares under 10% of them is replaced whole.
MOSTLY_DIFFERENT_MIN = 50_000
#: Nested anchor splits at one level before moving on to the next (a safety bound).
MAX_DEPTH = 32

Edit = tuple[int, int, str]
"""Replace `old[start:end]` (code points) by the string."""


def text_edits(old: str, new: str) -> list[Edit]:
    """The edits (ascending, non-overlapping, on `old`'s code points) that turn `old` into `new`."""
    return _Differ().diff(old, new, 0, 0)


def apply_text(ytext: pycrdt.Text, new: str) -> bool:
    """Edit `ytext` so that it reads `new`, with minimal inserts/deletes; True if it changed.

    Runs inside the caller's transaction if there is one (give it your origin there).
    """
    old = str(ytext)
    return _apply_edits(ytext, old, text_edits(old, new))


def rebase_text(ytext: pycrdt.Text, base: str, new: str) -> bool:
    """Bring the change `base` → `new` into `ytext`, keeping what `ytext` changed since `base`.

    A three-way merge done the CRDT way: where both sides changed the same region, both
    changes are kept (nothing is lost, nothing is marked). True if `ytext` changed.
    """
    current = str(ytext)
    return _apply_edits(ytext, current, rebase_edits(base, current, new))


def rebased(base: str, current: str, new: str) -> str:
    """`current` with the change `base` → `new` carried over, as `rebase_text` would leave it."""
    out = []
    cp = 0
    for start, end, text in rebase_edits(base, current, new):
        out.append(current[cp:start])
        out.append(text)
        cp = end
    out.append(current[cp:])
    return "".join(out)


def rebase_edits(base: str, current: str, new: str) -> list[Edit]:
    """Edits on `current` that carry over the change `base` → `new`.

    `new`'s edits are mapped through `current`'s: text that `current` still has from
    `base` is deleted where `new` deleted it; inserted text goes where `new` put it, after
    `current`'s own replacement when both touched the same place.
    """
    if current == new:
        return []  # the change is already here (a file we wrote, read back): never twice
    ours = text_edits(base, current)
    edits: list[Edit] = []
    for start, end, text in text_edits(base, new):
        pieces = _kept_pieces(start, end, ours)
        at = _map_point(start, ours)
        if pieces and pieces[0][0] == at:
            edits.append((pieces[0][0], pieces[0][1], text))
            pieces = pieces[1:]
        elif text:
            edits.append((at, at, text))
        edits.extend((a, b, "") for a, b in pieces)
    return edits


def _map_point(p: int, ours: list[Edit]) -> int:
    """Where position `p` of the base text is in the current text."""
    shift = 0
    for start, end, text in ours:
        if end < p or (end == p and start < end) or start == end == p:
            shift += len(text) - (end - start)  # entirely before p (or inserted right at p)
        elif start < p < end:
            return start + shift + len(text)  # inside text we replaced: after our replacement
        else:
            break
    return p + shift


def _kept_pieces(start: int, end: int, ours: list[Edit]) -> list[tuple[int, int]]:
    """The parts of base[start:end] the current text still has, as current-text ranges.

    Our insertions inside the range split it: what we inserted there is ours to keep.
    """
    pieces: list[tuple[int, int]] = []
    cursor = start
    for our_start, our_end, _ in ours:
        if our_end < cursor or (our_end == cursor and our_start < our_end):
            continue
        if our_start >= end:
            break
        if our_start > cursor:
            pieces.append((cursor, our_start))
        cursor = max(cursor, our_end)
    if cursor < end:
        pieces.append((cursor, end))
    return [(_map_point(a, ours), _map_point(a, ours) + b - a) for a, b in pieces]


def _apply_edits(ytext: pycrdt.Text, old: str, edits: list[Edit]) -> bool:
    """Apply code-point edits on `old` (the Text's content) as UTF-8 byte-offset operations."""
    if not edits:
        return False
    byte_edits: list[tuple[int, int, str]] = []
    cp = byte = 0
    for start, end, text in edits:
        byte += _utf8_len(old[cp:start])
        bstart = byte
        byte += _utf8_len(old[start:end])
        byte_edits.append((bstart, byte, text))
        cp = end
    with ytext.doc.transaction():
        for bstart, bend, text in reversed(byte_edits):
            if bend > bstart:
                del ytext[bstart:bend]
            if text:
                ytext.insert(bstart, text)
    return True


def _utf8_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8"))


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection on slices (fast for long strings)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid : len(a) - lo] == b[len(b) - mid : len(b) - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class _Differ:
    """One diff computation, with a bounded amount of difflib (quadratic) work."""

    def __init__(self) -> None:
        self.budget = DIFFLIB_BUDGET

    def diff(self, a: str, b: str, base: int, level: int, depth: int = 0) -> list[Edit]:
        """Edits on `a` (at offset `base`): trim common ends, then diff by lines, words, characters.

        Lines and words are aligned patience-style on tokens that occur once on each
        side (O(n log n) on any size), difflib only when there are none and the region
        is small; the gaps between anchors recurse. Only small regions get a character
        diff. When the budget is spent, what is left is replaced as a block.
        """
        if a == b:
            return []
        prefix = _common_prefix(a, b)
        suffix = _common_suffix(a, b, min(len(a), len(b)) - prefix)
        a, b, base = a[prefix : len(a) - suffix], b[prefix : len(b) - suffix], base + prefix
        if not a or not b:
            return [(base, base + len(a), b)]
        if len(a) + len(b) <= CHAR_DIFF_LIMIT:
            if not self._spend(len(a) + len(b)):
                return [(base, base + len(a), b)]
            return _opcodes(SequenceMatcher(None, a, b, autojunk=False), b, base)
        if depth > MAX_DEPTH:
            level, depth = level + 1, 0
        while level < len(_TOKENIZERS):
            tokens_a, tokens_b = _TOKENIZERS[level](a), _TOKENIZERS[level](b)
            size = len(tokens_a) + len(tokens_b)
            if size <= TOKEN_DIFF_LIMIT and size > 2:
                anchors = _unique_anchors(tokens_a, tokens_b)
                if size > MOSTLY_DIFFERENT_MIN and len(anchors) * 20 < size:
                    break  # big and barely anything in common: not worth diffing
                if not anchors and size <= CHAR_DIFF_LIMIT and self._spend(size):
                    anchors = _difflib_anchors(tokens_a, tokens_b)
                if anchors:
                    return self._between(a, b, tokens_a, tokens_b, anchors, base, level, depth)
            level, depth = level + 1, 0
        return [(base, base + len(a), b)]

    def _spend(self, work: int) -> bool:
        if work > self.budget:
            self.budget = 0
            return False
        self.budget -= work
        return True

    def _between(
        self,
        a: str,
        b: str,
        tokens_a: list[str],
        tokens_b: list[str],
        anchors: list[tuple[int, int]],
        base: int,
        level: int,
        depth: int,
    ) -> list[Edit]:
        """Diff the gaps between anchors (pairs of equal tokens, increasing on both sides)."""
        offsets_a, offsets_b = _offsets(tokens_a), _offsets(tokens_b)
        edits: list[Edit] = []
        i0 = j0 = 0
        for i, j in [*anchors, (len(tokens_a), len(tokens_b))]:
            gap_a = a[offsets_a[i0] : offsets_a[i]]
            gap_b = b[offsets_b[j0] : offsets_b[j]]
            edits.extend(self.diff(gap_a, gap_b, base + offsets_a[i0], level, depth + 1))
            i0, j0 = i + 1, j + 1
        return edits


def _difflib_anchors(tokens_a: list[str], tokens_b: list[str]) -> list[tuple[int, int]]:
    blocks = SequenceMatcher(None, tokens_a, tokens_b, autojunk=False).get_matching_blocks()
    return [(i + k, j + k) for i, j, n in blocks for k in range(n)]


def _unique_anchors(tokens_a: list[str], tokens_b: list[str]) -> list[tuple[int, int]]:
    """The longest increasing run of (i, j) pairs of tokens that occur once in each side."""
    count_a, count_b = Counter(tokens_a), Counter(tokens_b)
    where_b = {t: j for j, t in enumerate(tokens_b) if count_b[t] == 1}
    pairs = [(i, where_b[t]) for i, t in enumerate(tokens_a) if count_a[t] == 1 and t in where_b]
    # patience sorting: longest increasing subsequence of j, with back-pointers
    tails: list[int] = []
    tail_j: list[int] = []
    back: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect_left(tail_j, j)
        back[k] = tails[pos - 1] if pos else -1
        if pos == len(tails):
            tails.append(k)
            tail_j.append(j)
        else:
            tails[pos], tail_j[pos] = k, j
    run: list[tuple[int, int]] = []
    k = tails[-1] if tails else -1
    while k != -1:
        run.append(pairs[k])
        k = back[k]
    return run[::-1]


_WORDS = re.compile(r"\w+|\s+|[^\w\s]+")
_TOKENIZERS = (
    lambda text: text.splitlines(keepends=True),
    lambda text: _WORDS.findall(text),
)


def _opcodes(matcher: SequenceMatcher[str], b: str, base: int) -> list[Edit]:
    return [(base + i1, base + i2, b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _offsets(tokens: list[str]) -> list[int]:
    return list(accumulate(map(len, tokens), initial=0))
