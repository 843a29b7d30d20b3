"""Open notebook merge conflicts: recorded in the document, listed, and resolved.

A diverged version (a save on the owner's disk, a save in an `rtc join` folder) is
merged into a live notebook with `merge.notebooks.merge_notebook`; whoever owns the
channel `attach`es the merge to the notebook's codec. Its conflicts are kept in the
notebook doc's `state` map, one key per conflict (`documents.notebook.CONFLICT_PREFIX`),
so they travel with the document to every client (a join's conflicts reach the server
like any edit), survive a resume (the store keeps the doc), and never touch the file.

`resolve` applies a choice (keep `mine` = the document's side, `theirs` = the diverged
version's, or `both`) as an ordinary edit in the caller's transaction and closes the
conflict; the session calls it for the request `conflict.resolve`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pycrdt import Array, Doc, Map, Text

from .documents import Codec
from .documents.notebook import CONFLICT_PREFIX, NotebookCodec
from .documents.notebook_ops import youtput_from_dict
from .documents.text_ops import apply_text
from .errors import DocumentError, RequestError

if TYPE_CHECKING:
    from .merge.notebooks import MergeResult
    from .requests import Call
    from .rooms import Connection

__all__ = ["KEEP", "ConflictService", "NbdimeMerger", "attach", "describe", "merge_later", "open_conflicts", "resolve"]

#: What `merge_later` hands its `edit`: the application of the file to the document.
Apply = Callable[[], bool]

#: The choices `resolve` takes.
KEEP = ("mine", "theirs", "both")


@functools.cache
def _config() -> Any:
    from .merge.notebooks import load_config

    return load_config()


def attach(codec: Codec, source: str) -> None:
    """Make a notebook codec's `apply_file(…, base=…)` merge with nbdime's semantics and
    record the conflicts, labelled as coming from `source` (e.g. "the owner's disk")."""
    if isinstance(codec, NotebookCodec):
        codec.merger = NbdimeMerger(source)


class NbdimeMerger:
    """A notebook codec's merger (`documents.notebook.Merger`): nbdime's merge, conflicts
    stamped with their source. `prepare` computes a merge ahead in a thread; the call
    that follows with the same inputs takes that result instead of merging again."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._ready: tuple[tuple[Any, Any, Any], MergeResult] | None = None

    def __call__(
        self, base: dict[str, Any], current: dict[str, Any], new: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The merged notebook and its conflicts (JSON objects, `cell` an index)."""
        ready, self._ready = self._ready, None
        if ready is not None and ready[0] == (base, current, new):
            result = ready[1]
        else:  # not prepared, or the document changed meanwhile: merge now
            result = _merge(base, current, new)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return result.notebook, [{**c.to_json(), "from": self.source, "at": stamp} for c in result.conflicts]

    async def prepare(self, base: dict[str, Any], current: dict[str, Any], new: dict[str, Any]) -> None:
        """Run the merge of these inputs in a thread (nbdime takes seconds on a large
        notebook: the event loop, and every room, would wait)."""
        result = await asyncio.to_thread(_merge, base, current, new)
        self._ready = ((base, current, new), result)


def _merge(base: dict[str, Any], current: dict[str, Any], new: dict[str, Any]) -> MergeResult:
    from .merge.notebooks import merge_notebook

    return merge_notebook(base, current, new, _config())


async def merge_later(
    codec: Codec, doc: Doc[Any], data: bytes, origin: object, base: bytes | None, edit: Callable[[Apply], bool]
) -> bool:
    """`codec.apply_file(doc, data, origin, base=base)` run through `edit` (e.g. a room's
    attributed edit), with a notebook's nbdime merge first computed in a thread. The
    document may change while the thread runs: then the merge is done again, on the loop,
    with what it holds (never a merge of a stale document). DocumentError as `apply_file`."""
    merger = getattr(codec, "merger", None)
    if base is not None and isinstance(codec, NotebookCodec) and isinstance(merger, NbdimeMerger):
        try:
            inputs = codec.merge_inputs(doc, data, base)
        except DocumentError:
            pass  # apply_file raises it, with the document unchanged
        else:
            await merger.prepare(*inputs)
    return edit(lambda: codec.apply_file(doc, data, origin, base=base))


def open_conflicts(doc: Doc[Any]) -> list[dict[str, Any]]:
    """The open conflicts of a notebook doc, each with its `id`, oldest first."""
    state = doc.get("state", type=Map)
    out = []
    for key, value in state.items():
        if isinstance(key, str) and key.startswith(CONFLICT_PREFIX) and isinstance(value, dict):
            out.append({**value, "id": key[len(CONFLICT_PREFIX) :]})
    return sorted(out, key=lambda c: (str(c.get("at", "")), c["id"]))


def describe(conflict: dict[str, Any]) -> dict[str, Any]:
    """A conflict without its values (for listings): id, cell, kind, from, at."""
    return {k: conflict.get(k) for k in ("id", "cell", "kind", "from", "at")}


def resolve(doc: Doc[Any], conflict_id: str, keep: str) -> None:
    """Apply `keep` (`mine`, `theirs`, `both`) to the conflict and close it. Call inside
    a transaction (the room's attributed edit). `RequestError` if there is no such
    conflict or choice."""
    if keep not in KEEP:
        raise RequestError(f"keep must be one of {', '.join(KEEP)}, not {str(keep)[:20]!r}")
    state = doc.get("state", type=Map)
    key = f"{CONFLICT_PREFIX}{conflict_id}"
    record = state.get(key) if isinstance(conflict_id, str) else None
    if not isinstance(record, dict):
        raise RequestError(f"no open conflict {str(conflict_id)[:40]!r} in this notebook (resolved already?)")
    ymeta, ycells = doc.get("meta", type=Map), doc.get("cells", type=Array)
    kind, mine, theirs = record.get("kind"), record.get("mine"), record.get("theirs")
    ycell = _cell(ycells, record.get("cell"))
    if kind == "inserted":
        drop = {"mine": theirs, "theirs": mine}.get(keep) or []
        for i in reversed(range(len(ycells))):
            if ycells[i].get("id") in drop:
                del ycells[i]
    elif kind == "deleted":
        deleter = "mine" if mine is None else "theirs"
        if keep == deleter and ycell is not None:
            del ycells[_index(ycells, record.get("cell"))]
    elif kind == "metadata" and record.get("cell") is None:
        target = ymeta.get("metadata")
        if isinstance(target, Map) and keep != "mine":
            _set_map(target, (theirs or {}) if keep == "theirs" else {**(theirs or {}), **(mine or {})})
    elif ycell is not None:
        _resolve_field(ycell, str(kind), mine, theirs, keep)
    del state[key]


def _cell(ycells: Array[Any], cell_id: Any) -> Map[Any] | None:
    i = _index(ycells, cell_id)
    return None if i is None else ycells[i]


def _index(ycells: Array[Any], cell_id: Any) -> int | None:
    if not isinstance(cell_id, str):
        return None
    for i, ycell in enumerate(ycells):
        if isinstance(ycell, Map) and ycell.get("id") == cell_id:
            return i
    return None


def _resolve_field(ycell: Map[Any], kind: str, mine: Any, theirs: Any, keep: str) -> None:
    if keep == "mine" and kind != "source":
        return  # the document holds mine already (a source holds both, marked)
    if kind == "source":
        mine, theirs = mine or "", theirs or ""
        both = mine + ("" if not mine or mine.endswith("\n") else "\n") + theirs
        text = {"mine": mine, "theirs": theirs, "both": both}[keep]
        ysource = ycell.get("source")
        if isinstance(ysource, Text):
            apply_text(ysource, text)
        else:
            ycell["source"] = Text(text)
    elif kind == "outputs":
        youtputs = ycell.get("outputs")
        new = list(theirs or []) if keep == "theirs" else list(mine or []) + list(theirs or [])
        if isinstance(youtputs, Array):
            youtputs.clear()
            youtputs.extend([youtput_from_dict(o) for o in new])
        else:
            ycell["outputs"] = Array([youtput_from_dict(o) for o in new])
    elif kind == "metadata":
        ymeta = ycell.get("metadata")
        value = theirs if keep == "theirs" else {**(theirs or {}), **(mine or {})}
        if isinstance(ymeta, Map):
            _set_map(ymeta, value or {})
        else:
            ycell["metadata"] = Map(dict(value or {}))
    elif kind == "attachments" and keep == "both":
        ycell["attachments"] = {**(theirs or {}), **(mine or {})}
    elif keep == "theirs":
        ycell[kind] = theirs


def _set_map(ymap: Map[Any], value: dict[str, Any]) -> None:
    for key in list(ymap.keys()):
        if key not in value:
            del ymap[key]
    for key, item in value.items():
        if ymap.get(key) != item:
            ymap[key] = item


class ConflictService:
    """The request service `conflict`: `list` a notebook's open conflicts, `resolve` one
    (`{"id": …, "keep": "mine" | "theirs" | "both"}`) as the asker's own edit."""

    async def call(self, call: Call) -> Any:
        """Answer one request on a notebook room's channel."""
        room = call.room
        if call.op == "list":
            return {"conflicts": open_conflicts(room.doc)}
        if call.op != "resolve":
            raise RequestError(f"unknown conflict op {call.op[:40]!r}: list or resolve")
        if not call.conn.may_write:
            raise RequestError("viewers cannot resolve conflicts: ask for an edit link")
        conflict_id, keep = call.args.get("id"), call.args.get("keep")
        if not isinstance(conflict_id, str) or not isinstance(keep, str):
            raise RequestError("conflict.resolve needs a string id and keep")
        room.edit(lambda: resolve(room.doc, conflict_id, keep), call.conn.origin)
        return {"resolved": conflict_id, "keep": keep}

    def disconnected(self, conn: Connection) -> None:
        """Nothing belongs to a connection."""

    async def close(self) -> None:
        """Nothing to stop."""
