"""What a participant's update may make of a shared document, checked before it is accepted.

One editor must not be able to jam a session: a document that cannot be written back
(a value that is not JSON, nesting too deep for a JSON writer, a file over the size
limit, a notebook without the structure nbformat requires) stops write-back and the
end commit for everyone. So every update from a client goes through its room's
`DocumentGuard` first:

- the update is decoded (`yupdate`) and refused if it holds content a file cannot hold
  (bytes, `undefined`, NaN, sub-documents, XML or formatting) or nests too deep;
- each of its items is placed in the document (which root, how deep) from an index of
  the items the room already has, so nesting is bounded across updates too and edits
  to roots the file does not render are not credited;
- growth is bounded by the file size limit (cheaply: an upper bound, measured exactly
  only near the limit);
- only a *structural* update (one that adds or removes something other than characters
  of a text: a cell, a metadata value, a key) of a notebook is checked against the
  notebook the document would become, on a scratch copy. Typing never pays for that.

`DocumentGuard.render` is the last line, at write-back and at the end: the bytes a document renders
to are checked (JSON values only, depth, size; for a notebook gitrtc's structure and, if
the file validated when the session began, nbformat's schema), so a document that got
bad some other way is reported and never written or committed as such.
"""

from __future__ import annotations

import logging
import math
import warnings
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, NamedTuple

from pycrdt import Array, Doc, Map, Text

from . import protocol, yupdate
from .documents import MAX_FILE_BYTES, Codec
from .documents.jsonformat import intify
from .documents.nbformat_import import nbformat
from .documents.notebook import NotebookCodec, value_problem
from .documents.notebookcache import NotebookRender, Snapshot
from .errors import DocumentError, ProtocolError, RejectedEditError
from .keystroke import Keystrokes

log = logging.getLogger(__name__)

#: Deepest nesting of containers (maps, arrays, objects, lists) in a shared document;
#: real notebooks stay under 15 (widget state), a JSON writer fails near 1,000.
MAX_DEPTH = 64
#: The root every document has beside its kind's layout (`Codec.roots`): session state
#: (conflicts, kernels, services), a map, never rendered into the file.
STATE_ROOT = "state"

#: The root of an item next to items the index does not know (collected deleted items after
#: a resume, or items never seen: yrs keeps those pending). It is treated as structure, so a
#: notebook is checked whole; new roots cannot hide behind it (a root's first item names it).
_UNKNOWN = "?"


class Place(NamedTuple):
    """Where an item sits: its root type, its nesting level (1 = directly in the root),
    and whether it is structure (anything but characters of a text)."""

    root: str
    level: int
    structural: bool


class ItemIndex:
    """Id ranges of a document's items → their `Place`, per client (adjacent ranges with
    the same place are merged, so a paragraph typed in one go is one entry)."""

    __slots__ = ("_clients", "generation")

    def __init__(self) -> None:
        self._clients: dict[int, tuple[list[int], list[int], list[Place]]] = {}
        #: Bumped when a range is added out of clock order, the one change that can alter
        #: what `find` says of an item already recorded (`keystroke.Expected.place`).
        self.generation = 0

    def find(self, client: int, clock: int) -> Place | None:
        """The place of item (client, clock), if known."""
        ranges = self._clients.get(client)
        if ranges is None:
            return None
        starts, ends, places = ranges
        i = bisect_right(starts, clock) - 1
        if i >= 0 and clock < ends[i]:
            return places[i]
        return None

    def overlapping(self, client: int, clock: int, length: int) -> list[Place]:
        """The places of the items in [clock, clock + length) of `client`."""
        ranges = self._clients.get(client)
        if ranges is None:
            return []
        starts, ends, places = ranges
        i = max(bisect_right(starts, clock) - 1, 0)
        end = clock + length
        out = []
        while i < len(starts) and starts[i] < end:
            if ends[i] > clock:
                out.append(places[i])
            i += 1
        return out

    def add(self, client: int, start: int, end: int, place: Place) -> None:
        """Record that items [start, end) of `client` sit at `place`."""
        ranges = self._clients.get(client)
        if ranges is None:
            self._clients[client] = ([start], [end], [place])
            return
        starts, ends, places = ranges
        if start >= ends[-1]:  # the usual case: a client's clock only grows
            if start == ends[-1] and places[-1] == place:
                ends[-1] = end
                return
            starts.append(start)
            ends.append(end)
            places.append(place)
            return
        i = bisect_right(starts, start)
        if i and ends[i - 1] >= end:
            return  # items sent again: recorded already (an overlap would hide the rest from `find`)
        self.generation += 1
        starts.insert(i, start)
        ends.insert(i, end)
        places.insert(i, place)

    def items(self) -> list[tuple[int, int, int, Place]]:
        """Every (client, start, end, place) recorded."""
        return [(c, s, e, p) for c, (ss, es, ps) in self._clients.items() for s, e, p in zip(ss, es, ps, strict=True)]


class Checked(NamedTuple):
    """A client's update that passed `DocumentGuard.check`: accept it with `DocumentGuard.accept`."""

    items: list[tuple[int, int, int, Place]]  # (client, start, end, place) of its new items
    credit: bool  # it touches a root the file renders
    structural: bool
    growth: int  # an upper bound of the bytes it adds
    #: Typed characters: (client, end clock, right neighbour, place), where the typist's
    #: next keystroke is expected (`keystroke.Keystrokes.expect`).
    typed: tuple[int, int, yupdate.ID | None, Place] | None = None


class DocumentGuard:
    """One shared file's document: checks its clients' updates against the limits (see
    the module docstring) and renders it for write-back, checked."""

    def __init__(self, doc: Doc[Any], codec: Codec, path: str) -> None:
        self.doc = doc
        self.codec = codec
        self.path = path
        self.kind = codec.kind
        self.max_bytes: int = getattr(codec, "max_bytes", MAX_FILE_BYTES)
        # the kind's layout, from its codec: edits outside the rendered roots (the `state`
        # map) change nothing in the commit and earn no credit; other roots are refused
        self.rendered_roots = codec.rendered_roots
        self.known_roots = frozenset(codec.roots) | {STATE_ROOT}
        #: Roots that are maps (their items are keyed); the others are arrays or texts.
        self.map_roots = frozenset(n for n, t in codec.roots.items() if issubclass(t, Map)) | {STATE_ROOT}
        #: A plugin kind's check of the document a structural update would make (`KindCodec.validate`).
        self.validate: Callable[[Doc[Any], bytes], str | None] | None = getattr(codec, "validate", None)
        #: A notebook that validated when the session began must keep validating.
        self.strict = bool(getattr(codec, "schema_valid", False))
        self.index = ItemIndex()
        #: The hot path's shortcuts (see `keystroke`).
        self.keystrokes = Keystrokes()
        #: Counts structural changes, so the write-back check runs only after one.
        self.version = 0
        self._checked_version = -1
        self._failed: tuple[int, str] | None = None  # (version, error) of the last check that failed
        self._size_bound: int | None = None  # exact size at the last measure + growth since
        #: A notebook's write-back renders only what changed (`documents.notebookcache`).
        self.renderer = NotebookRender(doc, codec) if isinstance(codec, NotebookCodec) else None

    def learn(self, update: bytes) -> None:
        """Index a trusted update (a disk load or merge, the replayed log)."""
        try:
            decoded = yupdate.decode(update, 1 << 30)
        except (RejectedEditError, ProtocolError) as exc:  # the server made it: say so, keep going
            log.warning("a server-side update of a %s document could not be indexed: %s", self.kind, exc)
            return
        try:
            items, structural = self._place(decoded)
        except RejectedEditError as exc:
            log.warning("a server-side update of a %s document could not be indexed: %s", self.kind, exc)
            return
        for item in items:
            self.index.add(*item)
        if self._size_bound is not None:
            self._size_bound += len(update)  # an upper bound: re-measured only near the limit
        if structural or decoded.deletes:
            self.version += 1

    def check(self, update: bytes) -> Checked:
        """Decide on a client's update before it is applied; `RejectedEditError` (with the
        reason for the client) if it must be refused, `ProtocolError` if it is malformed.

        The typist's next keystroke (recognised by its first bytes, `keystroke`) is decided
        here, inline: it is most of what W1 sends, and each call on this path showed."""
        try:
            hit = self.keystrokes.match(update)
        except (IndexError, UnicodeDecodeError):
            hit = None  # the full check says what is wrong with it
        if hit is not None:
            expected, length, size = hit
            index = self.index
            client, clock = expected.client, expected.clock
            # the place of (client, clock - 1), the run this continues: remembered unless the
            # index changed out of order since
            place = expected.place if expected.generation == index.generation else index.find(client, clock - 1)
            if isinstance(place, Place) and not place.structural and place.root in self.known_roots:
                bound = self._size_bound
                if bound is None or bound + size > self.max_bytes:
                    self._check_size(size)
                end = clock + length
                credit = place.root in self.rendered_roots
                # tuple.__new__: a NamedTuple's own __new__ is a Python function, one more call
                return tuple.__new__(
                    Checked, ([(client, clock, end, place)], credit, False, size, (client, end, expected.right, place))
                )
            return self.check_fully(update)
        typed = self._typed(update)
        if typed is not None:
            return typed
        deleted = self._deleted(update)
        if deleted is not None:
            return deleted
        return self.check_fully(update)

    def check_fully(self, update: bytes) -> Checked:
        """`check` without its shortcuts: the whole update decoded and placed (the
        shortcuts must decide exactly as this does; tests compare them)."""
        decoded = yupdate.decode(update, MAX_DEPTH)
        items, structural = self._place(decoded)
        credit = False
        for _client, _start, _end, place in items:
            if place.root not in self.known_roots and place.root != _UNKNOWN:
                raise RejectedEditError(f"a root type {place.root[:40]!r} that a {self.kind} document does not have")
            if place.root in self.rendered_roots:
                credit = True
        growth = sum(s.size for s in decoded.structs)
        for client, ranges in decoded.deletes.items():
            for clock, length in ranges:
                for place in self.index.overlapping(client, clock, length):
                    structural = structural or place.structural
                    credit = credit or place.root in self.rendered_roots
        if growth:
            self._check_size(growth)
        if structural and self.kind == "notebook":
            problem = self._notebook_problem(self._would_be(update))
            if problem:
                raise RejectedEditError(problem)
        elif structural and self.validate is not None:
            problem = self.validate(self.doc, update)
            if problem:
                raise RejectedEditError(problem)
        return Checked(items, credit, structural, growth)

    def _typed(self, update: bytes) -> Checked | None:
        """Characters typed next to characters the room knows (not where a typist left off:
        `check` takes those) need no more than a look-up and the size check; None for
        anything else. Recognised by a regular expression (`yupdate.typed_characters`)."""
        try:
            typed = yupdate.typed_characters(update)
            if typed is None:
                return None
            client, clock, length, origin, right, size = typed
            place = None
            for near in (origin, right):
                if near is not None:
                    place = self.index.find(*near)
                    if place is not None:
                        break
        except (IndexError, UnicodeDecodeError):
            return None  # `decode` says what is wrong with it
        if place is None or place.structural or place.root not in self.known_roots:
            return None
        self._check_size(size)
        end = clock + length
        credit = place.root in self.rendered_roots
        return Checked([(client, clock, end, place)], credit, False, size, (client, end, right, place))

    def _deleted(self, update: bytes) -> Checked | None:
        """The other half of typing: one range deleted (backspace) needs only the places
        of what it deletes; None for anything else, or when a notebook's structure goes."""
        deleted = self.keystrokes.deleted(update)
        if deleted is None:
            return None
        structural = credit = False
        for place in self.index.overlapping(*deleted):
            structural = structural or place.structural
            credit = credit or place.root in self.rendered_roots
        if structural and self.kind == "notebook":
            return None  # the full check looks at the notebook it would become
        return Checked([], credit, structural, 0)

    def accept(self, checked: Checked) -> None:
        """The checked update was applied: remember its items and growth."""
        index = self.index
        for client, start, end, place in checked.items:
            index.add(client, start, end, place)
        if self._size_bound is not None:
            self._size_bound += checked.growth
        if checked.structural:
            self.version += 1
        typed = checked.typed
        if typed is not None:
            self.keystrokes.expect(*typed, index.generation)

    def render(self) -> bytes:
        """The file bytes of the document for write-back and the commit, checked:
        `DocumentError` (one line: what is wrong, that the file is kept in the store)
        if they must not be written."""
        return self.render_later()()

    def render_later(self) -> Callable[[], bytes]:
        """`render` in two steps, for write-back: the document's value is taken now (on the
        event loop, where the document lives) and the returned function checks and formats
        it, touching no document, so it may run in a thread: a large notebook's formatting
        (~20 ms per MB) then does not hold the loop that forwards everyone's keystrokes.
        The function raises `DocumentError` as `render` does."""
        codec: Any = self.codec
        if self._failed is not None and self._failed[0] == self.version:
            raise DocumentError(self._failed[1])  # nothing structural changed since: no need to look again
        version = self.version
        if self.kind != "notebook":
            later = getattr(codec, "dump_later", None)  # a plugin kind: its render off the loop too
            if later is not None:
                job: Callable[[], bytes] = later(self.doc)
                return lambda: self._bounded(job())
            try:
                data = codec.dump(self.doc)
            except (RecursionError, TypeError, ValueError) as exc:  # what the check before should have caught
                raise self._unrenderable(exc) from exc
            return lambda: self._bounded(data)
        renderer = self.renderer
        try:
            snap = renderer.snapshot() if renderer is not None else None
            value = snap.value if snap is not None else codec.file_value(self.doc)
        except (RecursionError, TypeError, ValueError) as exc:
            raise self._unrenderable(exc, version) from exc
        check = version != self._checked_version
        return lambda: self._finish_notebook(value, version, check, snap)

    def _finish_notebook(self, value: dict[str, Any], version: int, check: bool, snap: Snapshot | None) -> bytes:
        """(any thread) The checked file bytes of a notebook value taken at `version`
        (through the renderer when `snap` is its snapshot: the same bytes, for less)."""
        codec: Any = self.codec
        renderer = self.renderer
        try:
            if not check:
                problem = None
            elif snap is not None and renderer is not None:
                problem = renderer.problem(snap, self._file_problem)
            else:
                problem = self._file_problem(value)
            if problem:
                data = b""
            else:
                data = renderer.dump(snap) if snap is not None and renderer is not None else codec.dump_value(value)
        except (RecursionError, TypeError, ValueError) as exc:
            raise self._unrenderable(exc, version) from exc
        if problem:
            error = f"{self.path}: {problem}: not written, kept in the session store"
            self._failed = (version, error)  # only a structural change can mend it
            raise DocumentError(error)
        # bookkeeping by version: a late thread can only make a newer version be checked again
        self._failed = None
        self._checked_version = version
        return self._bounded(data)

    def _unrenderable(self, exc: Exception, version: int | None = None) -> DocumentError:
        log.error("rendering %s failed", self.path, exc_info=exc)
        error = (
            f"{self.path}: cannot be rendered ({type(exc).__name__}: {str(exc)[:100]}): "
            "not written, kept in the session store"
        )
        if version is not None:  # a notebook: only a structural change can mend it
            self._failed = (version, error)
        return DocumentError(error)

    def _bounded(self, data: bytes) -> bytes:
        if len(data) > self.max_bytes:
            raise DocumentError(
                f"{self.path}: {len(data)} bytes is over the {self.max_bytes}-byte limit for "
                "shared files: not written, kept in the session store"
            )
        return data

    def _notebook_problem(self, doc: Doc[Any]) -> str | None:
        """Why a would-be notebook `doc` may not be accepted (None if it may)."""
        codec: Any = self.codec
        try:
            problem = layout_problem(doc)
            if problem:
                return problem
            value = codec.file_value(doc)
        except RecursionError:
            return f"a value nested deeper than {MAX_DEPTH} levels"
        except Exception as exc:  # shared types where the layout has others: refused, and logged
            log.info("a would-be %s cannot be read as a notebook", self.path, exc_info=True)
            return f"the notebook could not be read back ({type(exc).__name__})"
        return self._value_problem(value, nbformat_schema=False)

    def _file_problem(self, value: Any) -> str | None:
        """Why a notebook value must not be written (None if it may): the check at write-back."""
        return self._value_problem(value, nbformat_schema=self.strict)

    def _value_problem(self, value: Any, nbformat_schema: bool) -> str | None:
        problem = json_problem(value, allow_nan=not self.strict) or value_problem(value, floats=True)
        if problem is None and self.strict:
            problem = required_keys_problem(value)
        if problem is None and nbformat_schema:
            problem = nbformat_problem(value)
        return problem

    def _measure(self) -> int:
        """The document's rendered size in bytes now (or, if it cannot be rendered, its
        encoded size)."""
        try:
            return len(self.codec.dump(self.doc))
        except Exception:  # a document that got bad another way: write-back reports it
            log.debug("measuring %s by its encoded size", self.path, exc_info=True)
            return len(self.doc.get_update())

    def _check_size(self, growth: int) -> None:
        if self._size_bound is None or self._size_bound + growth > self.max_bytes:
            self._size_bound = self._measure()  # exact, and only near the limit
        if self._size_bound + growth > self.max_bytes:
            raise RejectedEditError(f"the file would grow past the {self.max_bytes}-byte limit for shared files")

    def _would_be(self, update: bytes) -> Doc[Any]:
        scratch: Doc[Any] = Doc()
        scratch.apply_update(self.doc.get_update())
        scratch.apply_update(update)
        return scratch

    def _place(self, decoded: yupdate.Update) -> tuple[list[tuple[int, int, int, Place]], bool]:
        """Place every struct of `decoded`: its new items and whether any is structure.
        `RejectedEditError` if one nests too deep."""
        new = ItemIndex()
        waiting = decoded.structs
        structural = False
        while waiting:
            later = []
            for s in waiting:
                place = self._place_one(s, new)
                if place is None:
                    later.append(s)
                    continue
                structural = structural or place.structural
                new.add(s.client, s.clock, s.clock + s.length, place)
            if len(later) == len(waiting):  # next to items the index does not know
                self._refuse_pending(later, new)
                for s in later:
                    new.add(s.client, s.clock, s.clock + s.length, Place(_UNKNOWN, 1, True))
                return new.items(), True
            waiting = later
        return new.items(), structural

    def _refuse_pending(self, structs: list[yupdate.Struct], new: ItemIndex) -> None:
        """`RejectedEditError` if an item refers to one the document does not have (yrs would
        keep it pending forever: it follows an edit that was refused, or never sent)."""
        have = protocol.state_vector(self.doc.get_state())
        for s in structs:
            for ref in (s.origin, s.right, s.parent if isinstance(s.parent, tuple) else None):
                if ref is not None and ref[1] >= have.get(ref[0], 0) and new.find(*ref) is None:
                    raise RejectedEditError(
                        "it builds on an edit the server does not have (one it refused?): "
                        "reload to get the shared version"
                    )

    def _place_one(self, s: yupdate.Struct, new: ItemIndex) -> Place | None:
        parent = s.parent
        if isinstance(parent, str):
            if parent in self.known_roots and (s.key is not None) != (parent in self.map_roots):
                raise RejectedEditError(f"an item of the root {parent[:40]!r} as if it were of another type")
            root, level = parent, 1
        elif parent is not None:
            found = new.find(*parent) or self.index.find(*parent)
            if found is None:
                return None
            root, level = found.root, found.level + 1
        else:
            found = None
            for near in (s.origin, s.right):  # the format has a parent when it has neither
                if near is not None:
                    found = new.find(*near) or self.index.find(*near)
                    if found is not None:
                        break
            if found is None:
                return None
            root, level = found.root, found.level
        deepest = level + (1 if s.kind == yupdate.TYPE else s.depth)
        if deepest > MAX_DEPTH:
            raise RejectedEditError(f"a value nested deeper than {MAX_DEPTH} levels")
        structural = s.kind != yupdate.STRING and s.kind != yupdate.DELETED
        return Place(root, level, structural)


# --- checking what a document renders to ------------------------------------------------


def layout_problem(doc: Doc[Any]) -> str | None:
    """Why a notebook document does not have the `YNotebook` layout editors rely on (cells
    are maps, a cell's source is a text, its metadata a map, a code cell's outputs an
    array), or None: a cell of another shape would break every participant's view of it."""
    for i, cell in enumerate(doc.get("cells", type=Array)):
        if not isinstance(cell, Map):
            return f"cell {i} is not a shared map"
        if not isinstance(cell.get("source"), Text):
            return f"cell {i}: its source is not a shared text"
        if not isinstance(cell.get("metadata"), Map):
            return f"cell {i}: its metadata is not a shared map"
        if cell.get("cell_type") == "code" and not isinstance(cell.get("outputs"), Array):
            return f"cell {i}: a code cell's outputs are not a shared array"
    return None


def json_problem(value: Any, max_depth: int = MAX_DEPTH, allow_nan: bool = False) -> str | None:
    """Why `value` is not a JSON value within `max_depth` levels (None if it is one);
    `allow_nan`: NaN and infinities pass (a file that had them when the session began)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"a value nested deeper than {max_depth} levels"
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    return f"a key that is not a string ({type(key).__name__})"
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, float):
            if not allow_nan and not math.isfinite(item):
                return "a number that JSON cannot hold (NaN or infinity)"
        elif item is not None and not isinstance(item, (str, int, bool)):
            return f"a value that is not JSON ({type(item).__name__})"
    return None


#: The keys nbformat 4's schema requires of a cell, by cell type, and of an output, by type.
CELL_KEYS = {
    "code": ("metadata", "source", "outputs", "execution_count"),
    "markdown": ("metadata", "source"),
    "raw": ("metadata", "source"),
}
OUTPUT_KEYS = {
    "stream": ("name", "text"),
    "display_data": ("data", "metadata"),
    "execute_result": ("data", "metadata", "execution_count"),
    "error": ("ename", "evalue", "traceback"),
}


def required_keys_problem(nb: dict[str, Any]) -> str | None:
    """The first key nbformat 4 requires that a notebook value lacks (a fast subset of the
    schema, for every structural edit; the whole schema is checked at write-back)."""
    for key in ("metadata", "nbformat_minor"):
        if key not in nb:
            return f"the notebook has no {key}"
    for i, cell in enumerate(nb["cells"]):
        cell_type = cell.get("cell_type")
        if cell_type not in CELL_KEYS:
            return f"cell {i}: cell_type {str(cell_type)[:20]!r} is not code, markdown or raw"
        for key in CELL_KEYS[cell_type]:
            if key not in cell:
                return f"cell {i}: a {cell_type} cell needs {key}"
        for output in cell.get("outputs", ()) if cell_type == "code" else ():
            kind = output.get("output_type")
            if kind not in OUTPUT_KEYS:
                return f"cell {i}: an output of unknown type {str(kind)[:20]!r}"
            for key in OUTPUT_KEYS[kind]:
                if key not in output:
                    return f"cell {i}: an output of type {kind!r} needs {key}"
    return None


def nbformat_problem(nb: dict[str, Any]) -> str | None:
    """nbformat's first complaint about a notebook value (None if it validates)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nbformat.validate(intify(nb))  # a copy (validate() repairs in place), with Yjs' floats as ints
        except nbformat.ValidationError as exc:
            return "does not validate as nbformat 4: " + str(getattr(exc, "message", exc)).splitlines()[0][:200]
    return None
