"""The plugin API, version 1: what a document kind and a service give gitrtc.

A *document kind* (entry point group `gitrtc.documents`) says which files it takes and
turns their bytes into a shared pycrdt document and back, losslessly; a *service*
(entry point group `gitrtc.services`) answers typed requests on a room's request
channel. Both are plain classes; gitrtc instantiates each once per process. Stable in
API version 1: every name in `__all__` of `gitrtc.plugins` with its documented
signature (see docs/plugins.md for what may still change).
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pycrdt

if TYPE_CHECKING:
    from ..documents import Codec
    from .services import ServiceCall

#: The API version this gitrtc speaks; a plugin declaring another is not loaded.
API_VERSION = 1

Role = Literal["viewer", "editor", "owner"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "editor": 1, "owner": 2}


@dataclass(frozen=True, slots=True)
class KindLimits:
    """What gitrtc allows one call of a kind (capped by gitrtc: at most 10 s a call)."""

    #: Seconds a `load`, `render`, `merge3` or `update` may take before the kind is
    #: taken for hung (it is then not called again in this process).
    seconds: float = 5.0
    #: Largest file the kind takes (gitrtc's own limit applies too).
    max_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Change:
    """Where a client's update changed a document (see `DocumentKind.validate_changes`).

    `root` is the root's name and `path` the keys and indexes from it down to the shared
    type that changed (`()`: the root itself). For an array or text, `inserted` holds the
    indexes of what the update inserted there (as they are after it); for a map, `keys`
    the keys it set or removed."""

    root: str
    path: tuple[str | int, ...] = ()
    inserted: tuple[int, ...] = ()
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Merged:
    """A three-way merge's result: the bytes, and whether they hold a conflict."""

    data: bytes
    conflict: bool = False


class DocumentKind(ABC):
    """A kind of shared file (subclass it; the class is the entry point's target).

    Required: `name`, `roots`, `load`, `render`. A kind must be lossless: `render` of
    a document `load` just filled is `data` byte for byte (gitrtc checks this when it
    opens a file, and shares the file as plain text with a warning if not), and a small
    edit must render as a small diff (`render` gets the bytes the document was loaded
    from, `original`, to write untouched parts exactly as they were).
    """

    api: ClassVar[int] = API_VERSION
    #: The kind's name: `kind` in `/api/session`, ASCII `[a-z][a-z0-9_-]*`.
    name: ClassVar[str]
    #: Which files: shell patterns matched against the path and its file name
    #: (case-insensitive); empty means `sniff` alone decides.
    patterns: ClassVar[tuple[str, ...]] = ()
    #: Root types of the document and their pycrdt type (`pycrdt.Text`, `Array`, `Map`):
    #: a client may write these and no others.
    roots: ClassVar[Mapping[str, type]]
    #: Roots rendered into the file (edits to others earn no co-author credit); all by default.
    rendered_roots: ClassVar[frozenset[str] | None] = None
    #: A folder of the plugin package with the browser view (`view.js`, an ES module
    #: exporting `mount`); served by the session under `/plugins/NAME/`.
    static: ClassVar[Path | None] = None
    limits: ClassVar[KindLimits] = KindLimits()

    def takes(self, path: str, data: bytes) -> bool:
        """Whether this kind shares `path` (patterns, then `sniff`)."""
        if self.patterns and not matches(path, self.patterns):
            return False
        return self.sniff(path, data)

    def sniff(self, path: str, data: bytes) -> bool:
        """Whether the bytes are this kind's (called when the patterns match); True by default."""
        return True

    @abstractmethod
    def load(self, data: bytes, doc: pycrdt.Doc[Any]) -> None:
        """Fill the EMPTY `doc` from the file's bytes (`ValueError` if they are not this kind's)."""

    @abstractmethod
    def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
        """The file bytes `doc` stands for; `original` is what it was loaded from."""

    def update(self, doc: pycrdt.Doc[Any], data: bytes, original: bytes) -> None:
        """Make `doc` stand for `data` with minimal operations (a save made on disk);
        the default empties the roots and loads again (correct, not minimal)."""
        for name, kind in self.roots.items():
            root = doc.get(name, type=kind)
            if isinstance(root, pycrdt.Map):
                root.clear()
            else:
                del root[:]
        self.load(data, doc)

    def merge3(self, base: bytes, ours: bytes, theirs: bytes) -> Merged:
        """Three-way merge of file bytes (a save on disk, `rtc join`, a moved branch).
        The default: git's line merge."""
        from ..merge.files import merge_text

        done = merge_text(base, ours, theirs)
        return Merged(done.data, done.conflicts)

    def validate(self, doc: pycrdt.Doc[Any]) -> str | None:
        """Why the document a client's structural update would make must be refused
        (one line), or None. Called on a copy; the default accepts everything."""
        return None

    def validate_changes(self, doc: pycrdt.Doc[Any], changes: Sequence[Change]) -> str | None:
        """`validate`, told where the update changed `doc` (`Change`s), so that a kind can
        look at those places only: a cell edit of a large table need not check the whole
        table. The default checks the whole document (`validate`)."""
        return self.validate(doc)

    def codec(self, path: str, data: bytes, max_bytes: int) -> Codec:
        """The per-file codec gitrtc uses; the default drives this kind's functions in
        its own thread with timeouts (`KindCodec`). Built-in kinds return their own."""
        from .codec import KindCodec

        return KindCodec(self, path, data, max_bytes)


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a service: its handler and the least role that may call it."""

    handler: Callable[[ServiceCall], Awaitable[Any]]
    role: Role = "editor"


class Service(ABC):
    """A back-end service on the rooms' request channel (subclass it).

    `ops()` maps op names to `Op`s. A handler gets a `ServiceCall` (who asks, which
    file, the args; `edit`, `push`, `broadcast`, per-session `state`) and returns
    JSON-able data or raises `RequestError` (from `gitrtc.errors`) to refuse with one line.
    Handlers run on the session's event loop: never block (use `call.run_sync`).
    """

    api: ClassVar[int] = API_VERSION
    #: The `service` name clients ask for.
    name: ClassVar[str]
    #: Kinds of file whose rooms it serves (None: every shared file).
    kinds: ClassVar[frozenset[str] | None] = None
    #: Folder with the browser panel (`panel.js`, exporting `mount`), if any.
    static: ClassVar[Path | None] = None
    #: Seconds one handler may take before the asker gets a timeout answer.
    seconds: ClassVar[float] = 10.0
    #: Messages it may push per second (bursts of 10x); beyond, it is stopped as flooding.
    pushes_per_second: ClassVar[float] = 50.0

    @abstractmethod
    def ops(self) -> Mapping[str, Op]:
        """The service's operations."""

    def disconnected(self, connection: object) -> None:  # noqa: B027 (optional hook)
        """A connection left (free what belonged to it)."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """The session is ending."""


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether `path` or its file name matches one of the shell `patterns` (case-insensitive)."""
    low = path.lower()
    name = low.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(low, p.lower()) or fnmatch.fnmatchcase(name, p.lower()) for p in patterns)
