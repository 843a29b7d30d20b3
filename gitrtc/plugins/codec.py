"""`KindCodec`: a plugin's `DocumentKind` as gitrtc's per-file `documents.Codec`.

Every call into the plugin runs in its sandbox thread (time limit, exceptions made one
line) on a scratch document, never on a live room's: the room's document is only
changed on the event loop, by applying the scratch document's update. What the plugin
returns is checked (bytes, within the size limit), and when a file is opened the round
trip is checked too: the untouched document must render to the file's bytes exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pycrdt

from ..errors import DocumentError, NotShareableError, PluginError
from .api import Change, DocumentKind
from .sandbox import Sandbox

_EMPTY_UPDATE = b"\x00\x00"  # a Yjs v1 update with no structs and no deletions
_SANDBOXES: dict[str, Sandbox] = {}


def sandbox_for(kind: str) -> Sandbox:
    """The one sandbox of plugin `kind` in this process."""
    box = _SANDBOXES.get(kind)
    if box is None:
        box = _SANDBOXES[kind] = Sandbox(kind)
    return box


def broken_plugins() -> dict[str, str]:
    """Plugins that failed while in use (hung): name → why."""
    return {name: box.broken for name, box in _SANDBOXES.items() if box.broken is not None}


class KindCodec:
    """One shared file of a plugin kind (see the module docstring)."""

    def __init__(self, kind: DocumentKind, path: str, data: bytes, max_bytes: int) -> None:
        """Load the file into a scratch document and check that it renders back exactly;
        `PluginError` (one line) if the plugin fails at either."""
        self.plugin = kind
        self.kind = kind.name
        self.path = path
        self.max_bytes = min(max_bytes, kind.limits.max_bytes)
        self.warnings: list[str] = []
        self.roots = kind.roots
        self.rendered_roots = kind.rendered_roots if kind.rendered_roots is not None else frozenset(kind.roots)
        self._box = sandbox_for(kind.name)
        if len(data) > self.max_bytes:
            too_big = f"{len(data)} bytes is over the {self.max_bytes}-byte limit for shared files"
            raise NotShareableError(f"{path}: {too_big}")
        self._original = data
        #: The plugin's own copy of the live document for `validate`, and the state
        #: vector it holds (None: no copy to trust, the next check makes one).
        self._shadow: pycrdt.Doc[Any] | None = None
        self._shadow_state: bytes | None = None
        self._loaded = self._load(data)
        back = self._render(self._loaded, data)
        if back != data:
            raise PluginError(f"plugin {kind.name}: {path} does not render back to its own bytes (not lossless)")

    def _call(self, fn: Any, what: str) -> Any:
        return self._box.run(fn, self.plugin.limits.seconds, f"{what} of {self.path}")

    def _load(self, data: bytes) -> bytes:
        """The update of a scratch document the plugin filled from `data`."""

        def job() -> bytes:
            scratch: pycrdt.Doc[Any] = pycrdt.Doc()
            self.plugin.load(data, scratch)
            return scratch.get_update()

        update: bytes = self._call(job, "load")
        return update

    def _render(self, update: bytes, original: bytes) -> bytes:
        def job() -> object:
            scratch: pycrdt.Doc[Any] = pycrdt.Doc()
            scratch.apply_update(update)
            return self.plugin.render(scratch, original)

        data = self._call(job, "render")
        if not isinstance(data, bytes):
            raise PluginError(f"plugin {self.kind}: render of {self.path} returned {type(data).__name__}, not bytes")
        if len(data) > self.max_bytes:
            raise DocumentError(
                f"{self.path}: {len(data)} bytes is over the {self.max_bytes}-byte limit for "
                "shared files: not written, kept in the session store"
            )
        return data

    # --- documents.Codec --------------------------------------------------------------

    def load_into(self, doc: pycrdt.Doc[Any], origin: object) -> None:
        """Fill an empty room document with the file (the scratch load made at open)."""
        with doc.transaction(origin=origin):
            doc.apply_update(self._loaded)

    def dump(self, doc: pycrdt.Doc[Any]) -> bytes:
        """The file bytes the document stands for (the plugin's `render`, checked)."""
        return self._render(doc.get_update(), self._original)

    def dump_later(self, doc: pycrdt.Doc[Any]) -> Callable[[], bytes]:
        """`dump` with the plugin's render left to the returned function (the document is
        taken now): write-back runs it in a disk thread, so a plugin that hangs holds that
        thread for its time limit, never the event loop (`DocumentGuard.render_later`)."""
        update, original = doc.get_update(), self._original
        return lambda: self._render(update, original)

    def apply_file(self, doc: pycrdt.Doc[Any], data: bytes, origin: object, base: bytes | None = None) -> bool:
        """A new version of the file: merged three-way with `base` (the plugin's `merge3`;
        a conflict changes nothing), then applied through the plugin's `update`."""
        target = data
        current = self.dump(doc)
        if base is not None:
            merged = self._call(lambda: self.plugin.merge3(base, current, data), "merge3")
            if merged.conflict:
                raise DocumentError(f"{self.path}: the save conflicts with the session's edits (kept as it is)")
            if not isinstance(merged.data, bytes):
                raise PluginError(f"plugin {self.kind}: merge3 of {self.path} returned no bytes")
            target = merged.data
        if target == current:  # nothing to bring in (e.g. our own write-back read again)
            self._original = target
            return False
        state = doc.get_update()
        original = self._original

        def job() -> bytes:
            scratch: pycrdt.Doc[Any] = pycrdt.Doc()
            scratch.apply_update(state)
            before = scratch.get_state()
            self.plugin.update(scratch, target, original)
            return scratch.get_update(before)

        diff: bytes = self._call(job, "update")
        if self._render(self._with(state, diff), target) != target:
            raise PluginError(f"plugin {self.kind}: {self.path} after update does not render as the saved file")
        changed = diff != _EMPTY_UPDATE
        if changed:
            with doc.transaction(origin=origin):
                doc.apply_update(diff)
        self._original = target
        return changed

    @staticmethod
    def _with(state: bytes, diff: bytes) -> bytes:
        scratch: pycrdt.Doc[Any] = pycrdt.Doc()
        scratch.apply_update(state)
        scratch.apply_update(diff)
        return scratch.get_update()

    def validate(self, doc: pycrdt.Doc[Any], update: bytes) -> str | None:
        """The plugin's check of the document a client's structural `update` would make
        of the live `doc`: why it must be refused (one line), or None.

        The plugin checks a copy of the document kept in its own thread (`_shadow`),
        caught up with the live one by a diff from the state it last saw: what gitrtc
        copies per check is the change, not the document (a cell edit of a large table).
        After a refusal the copy, which then holds the refused update, is dropped."""
        since = self._shadow_state
        diff = doc.get_update() if since is None else doc.get_update(since)

        def job() -> str | None:
            if since is None or self._shadow is None:
                self._shadow = pycrdt.Doc()
            shadow = self._shadow
            shadow.apply_update(diff)
            changes = _apply_watched(shadow, self.plugin.roots, update)
            self._shadow_state = shadow.get_state()
            return self.plugin.validate_changes(shadow, changes)

        self._shadow_state = None  # a copy the check did not finish with is never trusted
        try:
            problem = self._call(job, "validate")
        except PluginError as exc:
            self._shadow_state = None
            return str(exc)
        if isinstance(problem, str) and problem:
            self._shadow_state = None
            return problem
        return None


def _apply_watched(doc: pycrdt.Doc[Any], roots: Mapping[str, type], update: bytes) -> list[Change]:
    """Apply `update` to `doc` and say where it changed it (`api.Change`)."""
    changes: list[Change] = []
    subscriptions = []
    for name, kind in roots.items():
        root = doc.get(name, type=kind)

        subscriptions.append((root, root.observe_deep(_collector(name, changes))))
    try:
        doc.apply_update(update)
    finally:
        for root, subscription in subscriptions:
            root.unobserve(subscription)
    return changes


def _collector(root: str, changes: list[Change]) -> Callable[..., None]:
    """A deep observer of `root` adding its events' `Change`s to `changes`."""

    def seen(events: list[Any], *_transaction: object) -> None:
        changes.extend(_change(root, event) for event in events)

    return seen


def _change(root: str, event: Any) -> Change:
    path = tuple(event.path)
    keys = getattr(event, "keys", None)
    if isinstance(keys, dict):
        return Change(root, path, keys=tuple(keys))
    inserted: list[int] = []
    at = 0
    for op in getattr(event, "delta", None) or ():
        if "retain" in op:
            at += op["retain"]
        elif "insert" in op:
            size = len(op["insert"])
            inserted.extend(range(at, at + size))
            at += size
    return Change(root, path, inserted=tuple(inserted))
