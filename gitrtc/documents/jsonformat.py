"""Format-preserving JSON: parse with source spans, write changed values back like the original.

A shared document only holds *values*; a file also has a *representation* (key order,
indentation, separators, escapes, `5` vs `5.0`, CRLF, trailing newline). `parse` keeps
the source text of every value; `dumps_like` re-serializes a new value so that every
subtree that is semantically unchanged is copied verbatim from the original text and
changed containers reuse their original whitespace. An untouched value therefore
round-trips to the exact original text, and a one-character edit changes one line.

"Semantically unchanged" (`sem_equal`) is JSON equality as Yjs sees it: numbers compare
by value (`5 == 5.0`, since Yjs stores every number as a float), booleans are not numbers.
"""

from __future__ import annotations

import json
import json.decoder
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from json.scanner import NUMBER_RE
from typing import Any

__all__ = [
    "Memo",
    "Node",
    "Parsed",
    "Style",
    "align",
    "dumps_like",
    "dumps_like_bytes",
    "intify",
    "parse",
    "restore",
    "sem_equal",
]

# the C string scanner json itself uses; typeshed does not declare it
scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

_WS = re.compile(r"[ \t\n\r]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NON_ASCII_ESCAPE = re.compile(r"\\u(?!00[0-7])[0-9a-fA-F]{4}")
_CONSTANTS: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
}
_MAX_EXACT_FLOAT_INT = 2**53


@dataclass(slots=True, eq=False)
class Node:
    """One parsed JSON value and where it sits in the source text.

    For containers, `children` are the items (list) or values (object) in source order,
    `pres` the whitespace before each item, `keys`/`raw_keys`/`colons` the object keys as
    values and as written and the text between key and value, `comma` the whitespace
    before a separating comma and `close` the whitespace before the closing bracket.
    """

    value: Any
    start: int
    end: int
    children: list[Node] | None = None
    pres: list[str] | None = None
    keys: list[str] | None = None
    raw_keys: list[str] | None = None
    colons: list[str] | None = None
    index: dict[str, int] | None = None
    comma: str = ""
    close: str = ""


@dataclass(slots=True)
class Style:
    """How the file writes new containers: newline, indent unit (None = one line), etc."""

    newline: str = "\n"
    unit: str | None = " "
    item_ws: str = " "
    colon: str = ": "
    ensure_ascii: bool = False
    sort_keys: bool = True

    def indent(self, depth: int, first: bool = False) -> str:
        """Whitespace before an item at `depth` (or before a closing bracket)."""
        if self.unit is None:
            return "" if first else self.item_ws
        return self.newline + self.unit * depth


@dataclass(slots=True)
class Parsed:
    """A parsed JSON text: the root node plus the text around it and the detected style."""

    text: str
    root: Node
    prefix: str
    suffix: str
    style: Style
    duplicate_keys: bool = False
    big_ints: bool = False
    """Some integer does not fit in 64 bits (Yjs cannot hold it as an integer)."""
    lone_surrogates: bool = False
    """Some string holds an unpaired surrogate (it cannot be encoded as UTF-8)."""

    @property
    def value(self) -> Any:
        return self.root.value


@dataclass(slots=True)
class _State:
    text: str
    duplicate_keys: bool = False
    big_ints: bool = False
    lone_surrogates: bool = False
    sorted_keys: bool = True
    first_next_pre: str | None = None
    first_colon: str | None = None

    def note_layout(self, count: int, pre: str, colon: str | None) -> None:
        """Remember the first colon and the first whitespace before a second item."""
        if self.first_colon is None and colon is not None:
            self.first_colon = colon
        if count == 2 and self.first_next_pre is None:
            self.first_next_pre = pre


def parse(text: str) -> Parsed:
    """Parse JSON text (like `json.loads`, strict strings) keeping every value's source span.

    A leading BOM is accepted and kept as part of the prefix. Raises `json.JSONDecodeError`.
    """
    state = _State(text)
    start = 1 if text.startswith("\ufeff") else 0
    pos = _WS.match(text, start).end()  # type: ignore[union-attr]
    try:
        root = _value(state, pos)
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", text, pos) from None
    end = _WS.match(text, root.end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return Parsed(
        text=text,
        root=root,
        prefix=text[: root.start],
        suffix=text[root.end :],
        style=_detect_style(state, root),
        duplicate_keys=state.duplicate_keys,
        big_ints=state.big_ints,
        lone_surrogates=state.lone_surrogates,
    )


def _ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _value(st: _State, pos: int) -> Node:
    s = st.text
    if pos >= len(s):
        raise json.JSONDecodeError("Expecting value", s, pos)
    c = s[pos]
    value: Any
    if c == '"':
        value, end = scanstring(s, pos + 1, True)
        if s.find("\\u", pos, end) != -1 and _SURROGATE.search(value):
            st.lone_surrogates = True
        return Node(value, pos, end)
    if c == "{":
        return _object(st, pos)
    if c == "[":
        return _array(st, pos)
    m = NUMBER_RE.match(s, pos)
    if m is not None:
        integer, frac, exp = m.groups()
        try:
            value = float(integer + (frac or "") + (exp or "")) if frac or exp else int(integer)
        except ValueError as exc:  # e.g. an integer longer than Python's digit limit
            raise json.JSONDecodeError(f"Bad number: {exc}", s, pos) from None
        if type(value) is int and not -(2**63) <= value < 2**63:
            st.big_ints = True
        return Node(value, pos, m.end())
    for word, const in _CONSTANTS.items():
        if s.startswith(word, pos):
            return Node(const, pos, pos + len(word))
    raise json.JSONDecodeError("Expecting value", s, pos)


def _object(st: _State, start: int) -> Node:
    s = st.text
    value: dict[str, Any] = {}
    node = Node(value, start, start, children=[], pres=[], keys=[], raw_keys=[], colons=[], index={})
    children, pres, keys, raw_keys, colons, index = (
        node.children,
        node.pres,
        node.keys,
        node.raw_keys,
        node.colons,
        node.index,
    )
    assert children is not None and pres is not None and keys is not None and raw_keys is not None
    assert colons is not None and index is not None
    pos = start + 1
    while True:
        after = _ws(s, pos)
        pre, pos = s[pos:after], after
        if not children and s.startswith("}", pos):
            node.close, node.end = pre, pos + 1
            return node
        if not s.startswith('"', pos):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, pos)
        key, kend = scanstring(s, pos + 1, True)
        cpos = _ws(s, kend)
        if not s.startswith(":", cpos):
            raise json.JSONDecodeError("Expecting ':' delimiter", s, cpos)
        vpos = _ws(s, cpos + 1)
        child = _value(st, vpos)
        if key in value:
            st.duplicate_keys = True
        elif keys and key < keys[-1]:
            st.sorted_keys = False
        value[key] = child.value
        index[key] = len(children)
        children.append(child)
        pres.append(pre)
        keys.append(key)
        raw_keys.append(s[pos:kend])
        colons.append(s[kend:vpos])
        st.note_layout(len(children), pre, colons[-1])
        pos, done = _after_item(st, node, child.end, len(children) - 1)
        if done:
            node.end = pos
            return node


def _array(st: _State, start: int) -> Node:
    s = st.text
    value: list[Any] = []
    node = Node(value, start, start, children=[], pres=[])
    children, pres = node.children, node.pres
    assert children is not None and pres is not None
    pos = start + 1
    while True:
        after = _ws(s, pos)
        pre, pos = s[pos:after], after
        if not children and s.startswith("]", pos):
            node.close, node.end = pre, pos + 1
            return node
        child = _value(st, pos)
        value.append(child.value)
        children.append(child)
        pres.append(pre)
        st.note_layout(len(children), pre, None)
        pos, done = _after_item(st, node, child.end, len(children) - 1)
        if done:
            node.end = pos
            return node


def _after_item(st: _State, node: Node, pos: int, item: int) -> tuple[int, bool]:
    """Consume the whitespace and `,` or closing bracket after an item."""
    s = st.text
    after = _ws(s, pos)
    gap = s[pos:after]
    closing = "}" if isinstance(node.value, dict) else "]"
    if s.startswith(",", after):
        if item == 0:
            node.comma = gap
        return after + 1, False
    if s.startswith(closing, after):
        node.close = gap
        return after + 1, True
    raise json.JSONDecodeError(f"Expecting ',' delimiter or '{closing}'", s, after)


def _detect_style(st: _State, root: Node) -> Style:
    style = Style(sort_keys=st.sorted_keys)
    if st.text.isascii():
        style.ensure_ascii = _NON_ASCII_ESCAPE.search(st.text) is not None
    if st.first_colon is not None:
        style.colon = st.first_colon
    first = root.pres[0] if root.pres else None
    if first is not None and "\n" in first:
        style.newline = "\r\n" if "\r\n" in first else "\n"
        style.unit = first.rsplit("\n", 1)[1]
    elif first is not None:
        style.unit = None
        style.item_ws = st.first_next_pre if st.first_next_pre is not None else " "
    return style


# --- semantic equality -------------------------------------------------------------


def sem_equal(a: Any, b: Any) -> bool:
    """JSON equality as a Yjs round trip sees it: `5 == 5.0`, `True != 1`, NaN equals NaN."""
    ta, tb = type(a), type(b)
    if ta is str or a is None:
        return ta is tb and a == b
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if ta in (int, float):
        if tb not in (int, float):
            return False
        if ta is int and tb is float and abs(a) > _MAX_EXACT_FLOAT_INT:
            return bool(float(a) == b)
        if tb is int and ta is float and abs(b) > _MAX_EXACT_FLOAT_INT:
            return bool(a == float(b))
        return bool(a == b) or (a != a and b != b)
    if ta is dict:
        if tb is not dict or len(a) != len(b):
            return False
        for key, value in a.items():
            if key not in b or not sem_equal(value, b[key]):
                return False
        return True
    if ta is list:
        return tb is list and len(a) == len(b) and all(map(sem_equal, a, b))
    return bool(a == b)


def _canonical(value: Any) -> str:
    """A hashable key that is equal for `sem_equal` values (integral floats as ints)."""
    return json.dumps(intify(value), sort_keys=True, ensure_ascii=True)


def intify(value: Any) -> Any:
    """A copy of a JSON value with integral floats (as Yjs returns numbers) turned into ints."""
    if type(value) is float and value.is_integer() and abs(value) <= _MAX_EXACT_FLOAT_INT:
        return int(value)
    if isinstance(value, dict):
        return {k: intify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [intify(v) for v in value]
    return value


def align(old: list[Any], new: list[Any], canonical: Callable[[Any], str] | None = None) -> list[int | None]:
    """For each item of `new`, the index of the `old` item it continues (or None).

    Equal lengths pair by position; otherwise equal items are matched in order
    (difflib on canonical forms; `canonical` may be a cached `_canonical`) and the rest
    of each replaced block pairs by position.
    """
    if len(old) == len(new):
        return list(range(len(new)))
    if not old or not new:
        return [None] * len(new)  # what the matcher finds (nothing), without canonical forms of megabytes
    canon = canonical or _canonical
    pairs: list[int | None] = [None] * len(new)
    matcher = SequenceMatcher(None, [canon(v) for v in old], [canon(v) for v in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("equal", "replace"):
            for k in range(min(i2 - i1, j2 - j1)):
                pairs[j1 + k] = i1 + k
    return pairs


# --- restore and re-serialize --------------------------------------------------------


def restore(original: Any, new: Any) -> Any:
    """`new` with the original's representation wherever it is semantically unchanged.

    Unchanged subtrees are the original objects; dicts keep the original key order with
    new keys appended (sorted: Yjs maps have no order); list items are aligned (`align`); integral floats become ints
    unless the original had a float there.
    """
    if sem_equal(original, new):
        return original
    if type(new) is dict:
        old = original if type(original) is dict else {}
        keys = [k for k in old if k in new] + sorted(k for k in new if k not in old)
        return {k: restore(old.get(k, _MISSING), new[k]) for k in keys}
    if type(new) is list:
        old_list = original if type(original) is list else []
        return [
            restore(old_list[i] if i is not None else _MISSING, v)
            for i, v in zip(align(old_list, new), new, strict=True)
        ]
    if type(new) is float and new.is_integer() and type(original) is not float and abs(new) <= _MAX_EXACT_FLOAT_INT:
        return int(new)
    return new


_MISSING: Any = object()


def dumps_like(parsed: Parsed, value: Any) -> str:
    """Serialize `value` the way `parsed` was written, reusing its text for unchanged parts."""
    out: list[Any] = [parsed.prefix]
    _emit(parsed, parsed.root, value, 1, None, out)
    out.append(parsed.suffix)
    return "".join(out)


def dumps_like_bytes(parsed: Parsed, value: Any, memo: Memo) -> bytes:
    """`dumps_like(parsed, value).encode("utf-8")`, reusing the bytes written by the previous
    call with `memo` (of the same `parsed`) for containers that are the same Python objects
    again: the bytes are the same as without it, and are copied once, not once per level."""
    out: list[Any] = [parsed.prefix]
    try:
        _emit(parsed, parsed.root, value, 1, memo, out)
    finally:
        memo.turn()
    out.append(parsed.suffix)
    return _joined(out)


def _joined(pieces: list[Any]) -> bytes:
    """Text pieces (str) and pieces already encoded (bytes) as one UTF-8 byte string."""
    return b"".join(piece if type(piece) is bytes else piece.encode("utf-8") for piece in pieces)


class Memo:
    """What `dumps_like_bytes` found for containers at some depths (e.g. a notebook's cells
    and their outputs) in its previous call, by the identity of the new value and of the
    original node it was paired with: a caller that passes the very same objects for the
    unchanged parts of a value (`documents.notebookcache`) pays only for what changed.

    Sound because a value's text depends only on (parsed, node, value, depth): the memo
    keeps both objects alive (so their ids are not reused) and belongs to one `Parsed`.
    Values given to `dumps_like_bytes` with a memo must never be mutated afterwards.
    """

    __slots__ = ("_below", "_depths", "_new", "_old", "misses")

    def __init__(self, depths: frozenset[int]) -> None:
        self._depths = depths
        self._below = max(depths)
        # (kind, id(value), id(node)) → (value, node, result); `_new` holds what the current
        # call used, `_old` the previous call's: entries not used for a whole call are dropped
        self._old: dict[tuple[int, int, int], tuple[Any, Any, Any]] = {}
        self._new: dict[tuple[int, int, int], tuple[Any, Any, Any]] = {}
        #: Containers at the memo's depths written afresh so far (what tests count).
        self.misses = 0

    def turn(self) -> None:
        """End of one call: forget what it did not use."""
        self._old, self._new = self._new, {}

    def _get(self, kind: int, value: Any, node: Any) -> Any:
        key = (kind, id(value), id(node))
        hit = self._new.get(key) or self._old.get(key)
        if hit is not None and hit[0] is value and hit[1] is node:
            self._new[key] = hit
            return hit[2]
        return None

    def _put(self, kind: int, value: Any, node: Any, result: Any) -> None:
        self._new[(kind, id(value), id(node))] = (value, node, result)

    def canonical(self, value: Any) -> str:
        """`_canonical`, cached for containers."""
        if type(value) is not dict and type(value) is not list:
            return _canonical(value)
        text = self._get(0, value, None)
        if text is None:
            text = _canonical(value)
            self._put(0, value, None, text)
        return text  # type: ignore[no-any-return]

    def same(self, node: Node, new: Any, depth: int) -> bool:
        """`sem_equal(node.value, new)`, cached at the memo's depths and walked above them
        through the nodes (so a cached answer below can be found)."""
        if depth in self._depths and (type(new) is dict or type(new) is list):
            hit = self._get(1, new, node)
            if hit is None:
                hit = sem_equal(node.value, new)
                self._put(1, new, node, hit)
            return hit  # type: ignore[no-any-return]
        old = node.value
        if depth >= self._below or node.children is None:
            return sem_equal(old, new)
        if node.keys is not None:  # an object: sem_equal's loop, over the nodes
            if type(new) is not dict or len(old) != len(new):
                return False
            assert node.index is not None
            for key, i in node.index.items():
                if key not in new or not self.same(node.children[i], new[key], depth + 1):
                    return False
            return True
        if type(new) is not list or len(old) != len(new):
            return False
        return all(self.same(child, item, depth + 1) for child, item in zip(node.children, new, strict=True))

    def emit(self, p: Parsed, node: Node | None, new: Any, depth: int) -> tuple[bytes, ...]:
        """What `_emit` writes for `new`, as encoded pieces (cached; joined only once, into
        the whole file: a cell that changes at every call is not copied twice)."""
        pieces = self._get(2, new, node)
        if pieces is None:
            self.misses += 1
            fresh: list[Any] = []
            _emit_fresh(p, node, new, depth, self, fresh)
            pieces = tuple(piece if type(piece) is bytes else piece.encode("utf-8") for piece in fresh)
            self._put(2, new, node, pieces)
        return pieces  # type: ignore[no-any-return]


def _emit(p: Parsed, node: Node | None, new: Any, depth: int, memo: Memo | None, out: list[Any]) -> None:
    """Append the text of `new` (paired with the original `node`) to `out`."""
    if memo is not None and depth in memo._depths and (type(new) is dict or type(new) is list):
        out.extend(memo.emit(p, node, new, depth))
    else:
        _emit_fresh(p, node, new, depth, memo, out)


def _emit_fresh(p: Parsed, node: Node | None, new: Any, depth: int, memo: Memo | None, out: list[Any]) -> None:
    if node is not None and (sem_equal(node.value, new) if memo is None else memo.same(node, new, depth)):
        out.append(p.text[node.start : node.end])
    elif type(new) is dict:
        _emit_dict(p, node if node is not None and node.keys is not None else None, new, depth, memo, out)
    elif type(new) is list:
        is_list = node is not None and node.children is not None and node.keys is None
        _emit_list(p, node if is_list else None, new, depth, memo, out)
    else:
        out.append(_scalar(p.style, node, new))


def _layout(p: Parsed, old: Node | None, depth: int) -> tuple[str, str, str, str]:
    """Whitespace for a changed container: first item, later items, before comma, close."""
    st = p.style
    if old is None or not old.pres:
        return st.indent(depth, first=True), st.indent(depth), "", st.indent(depth - 1, first=True)
    first = old.pres[0]
    later = old.pres[1] if len(old.pres) > 1 else (first if "\n" in first else st.indent(depth))
    return first, later, old.comma, old.close


def _emit_dict(p: Parsed, old: Node | None, new: dict[str, Any], depth: int, memo: Memo | None, out: list[Any]) -> None:
    if not new:
        out.append("{}")
        return
    if old is not None:
        assert old.index is not None and old.keys is not None
        kept = [k for i, k in enumerate(old.keys) if k in new and old.index[k] == i]
        added = sorted(k for k in new if k not in old.index)  # Yjs maps have no key order
        order = sorted(kept + added) if p.style.sort_keys else kept + added
    else:
        order = sorted(new)
    first, later, comma, close = _layout(p, old, depth)
    default_colon = old.colons[0] if old is not None and old.colons else p.style.colon
    out.append("{")
    for n, key in enumerate(order):
        i = old.index.get(key) if old is not None else None  # type: ignore[union-attr]
        if i is not None:
            raw_key, colon, child = old.raw_keys[i], old.colons[i], old.children[i]  # type: ignore[union-attr,index]
        else:
            raw_key = json.dumps(key, ensure_ascii=p.style.ensure_ascii)
            colon, child = default_colon, None
        out.append((first if n == 0 else comma + "," + later) + raw_key + colon)
        _emit(p, child, new[key], depth + 1, memo, out)
    out.append(close + "}")


def _emit_list(p: Parsed, old: Node | None, new: list[Any], depth: int, memo: Memo | None, out: list[Any]) -> None:
    if not new:
        out.append("[]")
        return
    first, later, comma, close = _layout(p, old, depth)
    children = old.children if old is not None and old.children is not None else []
    canonical = memo.canonical if memo is not None else None
    pairs = align(old.value, new, canonical) if old is not None else [None] * len(new)
    out.append("[")
    for n, (i, item) in enumerate(zip(pairs, new, strict=True)):
        out.append(first if n == 0 else comma + "," + later)
        _emit(p, children[i] if i is not None else None, item, depth + 1, memo, out)
    out.append(close + "]")


def _scalar(style: Style, node: Node | None, new: Any) -> str:
    if new is None or type(new) is bool or type(new) is str:
        return json.dumps(new, ensure_ascii=style.ensure_ascii)
    if type(new) is int:
        return str(new)
    if type(new) is float:
        was_float = node is not None and type(node.value) is float
        if new.is_integer() and not was_float and abs(new) <= _MAX_EXACT_FLOAT_INT:
            return str(int(new))
        return json.dumps(new)
    raise TypeError(f"not a JSON value: {type(new).__name__}")
