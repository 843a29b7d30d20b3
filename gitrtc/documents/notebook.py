"""Notebook files (nbformat 4) ⇄ the `YNotebook` layout of jupyter_ydoc / @jupyter/ydoc.

The doc holds the notebook's values (root `meta` Map: nbformat, nbformat_minor, metadata
Map and any unknown top-level key; root `cells` Array of cell Maps, see
`notebook_ops.ycell_from_dict`). The file's representation is kept by the codec:
`dump` serializes the doc's values through the original text (`jsonformat.dumps_like`),
so an untouched doc gives the original bytes and an edit changes only its own lines.
Multiline fields keep their list-of-lines or single-string form per field.

Every cell in the doc has an id. A file cell without a usable one (nbformat < 4.5,
missing, duplicate, not a string) gets a synthetic id derived from a hash of the file
bytes and the cell index, so re-parsing the same bytes next to a doc restored from the
session log finds the same ids. Synthetic ids are never written to the file; the file's
own value (or its absence) is. Client-made ids are written only for nbformat >= 4.5.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import secrets
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pycrdt

from ..errors import DocumentError, NotShareableError
from . import notebook_ops
from .jsonformat import Parsed, dumps_like, parse
from .nbformat_import import nbformat
from .text import decode_text

__all__ = ["CONFLICT_PREFIX", "Merger", "NotebookCodec", "is_synthetic_id", "notebook_problem", "value_problem"]

#: A three-way notebook merge for `NotebookCodec.apply_file`: (base, current, new) →
#: (the notebook the doc becomes, its open conflicts as JSON objects whose `cell` is an
#: index into that notebook and, for `inserted` ones, `mine`/`theirs` lists of indices).
Merger = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], tuple[dict[str, Any], list[dict[str, Any]]]]
#: Key prefix of an open conflict in a notebook doc's `state` map (one key per conflict,
#: so concurrent ones never overwrite each other; `cell` there is the doc's cell id).
CONFLICT_PREFIX = "conflict:"

_SYNTHETIC = re.compile(r"^rtc-[0-9a-f]{16}-[0-9]+$")
_MISSING: Any = object()
_CELL_TYPES = ("code", "markdown", "raw")
_SPLIT_MIMES = ("application/javascript", "image/svg+xml")
_I64 = 2**63


def is_synthetic_id(cell_id: object) -> bool:
    """Whether a cell id was made up by gitrtc (and so is never written to a file)."""
    return isinstance(cell_id, str) and _SYNTHETIC.match(cell_id) is not None


@dataclass(slots=True)
class _Reference:
    """The file the doc is written like: its parsed text and how doc cells map onto it."""

    parsed: Parsed
    by_id: dict[str, dict[str, Any]]
    synthetic: dict[str, Any]
    lists: bool
    warnings: list[str] = field(default_factory=list)
    schema_valid: bool = True

    @property
    def value(self) -> dict[str, Any]:
        return self.parsed.value  # type: ignore[no-any-return]


class NotebookCodec:
    """An nbformat-4 notebook as a `YNotebook` document, written back losslessly."""

    kind: Literal["notebook"] = "notebook"
    #: jupyter_ydoc's `YNotebook` layout: the root types a client may write, all rendered.
    roots: ClassVar[Mapping[str, type]] = {"meta": pycrdt.Map, "cells": pycrdt.Array}
    rendered_roots: ClassVar[frozenset[str]] = frozenset({"meta", "cells"})

    def __init__(self, path: str, data: bytes, max_bytes: int) -> None:
        """Parse and check the notebook; NotShareableError (one line) if it is not one we can share."""
        self.path = path
        self.max_bytes = max_bytes
        parsed = _parse_notebook(path, decode_text(path, data, max_bytes))
        self._ids = _load_ids(parsed.value["cells"], hashlib.sha256(data).hexdigest()[:16])
        self._ref = _reference(path, parsed, self._ids)
        self.warnings: list[str] = list(self._ref.warnings)
        #: The file validated against nbformat's schema and held no NaN when the session
        #: began: what the session writes must too (see `validation.DocumentGuard`).
        self.schema_valid = self._ref.schema_valid and not _has_nan(parsed.value)
        #: The three-way merge `apply_file` uses with a base (set by whoever owns the
        #: channel, see `gitrtc.conflicts`); None: `notebook_ops.three_way`.
        self.merger: Merger | None = None

    # --- file → doc ---------------------------------------------------------------

    def load_into(self, doc: pycrdt.Doc[Any], origin: object) -> None:
        """Fill an empty doc with the notebook, in one transaction with `origin`."""
        ymeta, ycells = _roots(doc)
        if len(ymeta) or len(ycells):
            raise ValueError(f"{self.path}: load_into needs an empty document")
        value = _yjs_safe(self._ref.parsed)
        with doc.transaction(origin=origin):
            for key, item in value.items():
                if key == "metadata":
                    ymeta[key] = pycrdt.Map(item)
                elif key != "cells":
                    ymeta[key] = item
            if "metadata" not in value:
                ymeta["metadata"] = pycrdt.Map()
            ycells.extend(
                [notebook_ops.ycell_from_dict(cell, cid) for cell, cid in zip(value["cells"], self._ids, strict=True)]
            )

    # --- doc → file ---------------------------------------------------------------

    def dump(self, doc: pycrdt.Doc[Any]) -> bytes:
        """The notebook file bytes the doc stands for (original bytes if untouched)."""
        return self.dump_value(self.file_value(doc))

    def dump_value(self, value: dict[str, Any]) -> bytes:
        """The file bytes of a notebook value from `file_value` (written like the file)."""
        return dumps_like(self._ref.parsed, value).encode("utf-8")

    def file_value(self, doc: pycrdt.Doc[Any]) -> dict[str, Any]:
        """The notebook as the JSON value `dump` writes: file ids, the file's multiline forms,
        numbers as Yjs holds them (floats; `dump` writes ints where the file had ints)."""
        ymeta, ycells = _roots(doc)
        meta = ymeta.to_py() or {}
        nb = self.file_top(meta)
        ids_allowed = _version(meta) >= (4, 5)
        nb["cells"] = [self._file_cell(cell, ids_allowed) for cell in ycells.to_py() or []]
        return nb

    def file_top(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The top level of `file_value` (its cells are set after), from the `meta` root's value."""
        nb: dict[str, Any] = {}
        for key, value in meta.items():
            if key == "metadata" and value == {} and "metadata" not in self._ref.value:
                continue
            nb[key] = value
        return nb

    def _file_cell(self, cell: dict[str, Any], ids_allowed: bool) -> dict[str, Any]:
        ref = self._ref
        cid = cell.get("id")
        ref_cell = ref.by_id.get(cid) if isinstance(cid, str) else None
        refget = ref_cell.get if ref_cell is not None else (lambda key, default=None: default)
        out: dict[str, Any] = {}
        for key, value in cell.items():
            if key == "execution_state":
                continue
            if key == "id":
                value = self._file_id(cid, ref_cell, ids_allowed)
                if value is _MISSING:
                    continue
            elif key == "cell_type" and value == "raw" and refget("cell_type", "raw") not in _CELL_TYPES:
                value = refget("cell_type")  # a type editors do not know travels as a raw cell
            elif key == "source":
                value = _lines_like(refget("source", _MISSING), value, ref.lists)
            elif key == "outputs" and isinstance(value, list):
                ref_outputs = refget("outputs")
                ref_outputs = ref_outputs if isinstance(ref_outputs, list) else []
                value = [
                    _output_like(ref_outputs[i] if i < len(ref_outputs) else None, output, ref.lists)
                    for i, output in enumerate(value)
                ]
            elif key == "attachments" and isinstance(value, dict):
                ref_att = refget("attachments")
                ref_att = ref_att if isinstance(ref_att, dict) else {}
                value = {name: _bundle_like(ref_att.get(name), bundle, ref.lists) for name, bundle in value.items()}
            out[key] = value
        if ref_cell is not None and ref_cell.get("cell_type") == out.get("cell_type"):
            # layout fields the file's cell did not have: leave them out while empty (a cell
            # whose type changed takes its new type's fields: a code cell always has outputs)
            for key, empty in (("source", ""), ("metadata", {}), ("outputs", []), ("execution_count", None)):
                if key not in ref_cell and key in cell and cell[key] == empty:
                    del out[key]
        return out

    def _file_id(self, cid: Any, ref_cell: dict[str, Any] | None, ids_allowed: bool) -> Any:
        if cid in self._ref.synthetic:
            return self._ref.synthetic[cid]
        if not isinstance(cid, str) or is_synthetic_id(cid):
            return _MISSING
        if ids_allowed or (ref_cell is not None and "id" in ref_cell):
            return cid
        return _MISSING

    # --- a new version of the file ------------------------------------------------

    def apply_file(self, doc: pycrdt.Doc[Any], data: bytes, origin: object, base: bytes | None = None) -> bool:
        """Apply a new version of the file as minimal YNotebook operations; True if the doc changed.

        Without `base` the doc becomes the new file. With `base` (the file as the doc last
        agreed with it, e.g. the bytes last written) only the change base → data is
        brought in (nbdime three-way merge; a cell source both changed keeps both edits,
        other conflicts go to the file): edits the doc got since are kept. DocumentError
        (one line, doc unchanged) if the bytes are not a notebook we can share. Afterwards
        the doc is written like the new file.
        """
        parsed = self._parse_new(data)
        current = self.file_value(doc)
        target = _yjs_safe(parsed)
        conflicts: list[dict[str, Any]] = []
        if base is not None and self.merger is not None:
            target, conflicts = self.merger(self.base_value(base), current, target)
        elif base is not None:
            target = notebook_ops.three_way(_yjs_safe(self._parse_new(base)), current, target)
        ymeta, ycells = _roots(doc)
        with doc.transaction(origin=origin):
            changed = notebook_ops.apply_notebook(ymeta, ycells, current, target, _choose_id)
            ids = [str(ycell["id"]) for ycell in ycells]
            if conflicts:
                _record_conflicts(doc.get("state", type=pycrdt.Map), conflicts, ids)
                changed = True
        # merged: the doc is not the file cell for cell, so pair them by id, not position
        ref_ids = ids if base is None else _pair_ids(parsed.value["cells"], ids)
        self._ref = _reference(self.path, parsed, ref_ids)
        self.warnings = list(self._ref.warnings)
        return changed

    @property
    def reference(self) -> object:
        """The file the doc is written like (its formatting; opaque). `apply_file` adopts
        the new file's; a channel that must keep writing like the session (an `rtc join`
        folder: its bytes are the commit's) puts the one it had back."""
        return self._ref

    @reference.setter
    def reference(self, ref: object) -> None:
        if not isinstance(ref, _Reference):
            raise TypeError("a NotebookCodec.reference value")
        self._ref = ref
        self.warnings = list(ref.warnings)

    def format_bytes(self) -> bytes:
        """The text of the file the doc is written like (its formatting): what an `rtc
        join` folder is written like too (`/api/format/{room}`, `joinformat`)."""
        return self._ref.parsed.text.encode("utf-8")

    def write_like(self, doc: pycrdt.Doc[Any], data: bytes) -> None:
        """From now on write the doc like the file `data` (its formatting only; the doc's
        cells paired with its cells by id). DocumentError if `data` is not a notebook."""
        parsed = self._parse_new(data)
        ids = [str(ycell["id"]) for ycell in doc.get("cells", type=pycrdt.Array)]
        self.reference = _reference(self.path, parsed, _pair_ids(parsed.value["cells"], ids))

    def merge_inputs(
        self, doc: pycrdt.Doc[Any], data: bytes, base: bytes
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The (base, current, new) values `apply_file(doc, data, base=base)` gives its
        merger now, so the merge can be computed ahead in a thread (`conflicts.merge_later`).
        DocumentError as `apply_file`."""
        return self.base_value(base), self.file_value(doc), _yjs_safe(self._parse_new(data))

    def base_value(self, base: bytes) -> dict[str, Any]:
        """A merge base's bytes as the value the merger gets."""
        return _yjs_safe(self._parse_new(base))

    def _parse_new(self, data: bytes) -> Parsed:
        try:
            return _parse_notebook(self.path, decode_text(self.path, data, self.max_bytes))
        except NotShareableError as exc:
            raise DocumentError(str(exc)) from None


def _pair_ids(cells: list[dict[str, Any]], ids: list[str]) -> list[str]:
    """For each cell of a file merged into the doc, the doc id of the same cell: its own
    id when the doc has it; by position when neither side has ids and the counts agree;
    else an id no doc cell has (the file's formatting is then not used for it)."""
    doc_ids = set(ids)
    positional = len(cells) == len(ids)
    out: list[str] = []
    for j, cell in enumerate(cells):
        cid = cell.get("id")
        if isinstance(cid, str) and cid in doc_ids and cid not in out:
            out.append(cid)
        elif positional and not isinstance(cid, str) and is_synthetic_id(ids[j]) and ids[j] not in out:
            out.append(ids[j])
        else:
            out.append(f"unpaired-{j}")
    return out


def _record_conflicts(state: pycrdt.Map[Any], conflicts: list[dict[str, Any]], ids: list[str]) -> None:
    """Store open conflicts in the doc's `state` map, cells named by their doc ids."""

    def cell_id(index: Any) -> str | None:
        return ids[index] if isinstance(index, int) and 0 <= index < len(ids) else None

    for conflict in conflicts:
        record = dict(conflict)
        record["cell"] = cell_id(record.get("cell"))
        if record.get("kind") == "inserted":
            record["mine"] = [cell_id(i) for i in record.get("mine") or []]
            record["theirs"] = [cell_id(i) for i in record.get("theirs") or []]
        state[f"{CONFLICT_PREFIX}{secrets.token_hex(6)}"] = record


def _choose_id(cell: dict[str, Any], current: str | None, taken: set[str]) -> str:
    """The doc id for a cell arriving from a file: its own id if usable, else keep or make one."""
    cid = cell.get("id")
    if isinstance(cid, str) and cid and cid not in taken and not is_synthetic_id(cid):
        return cid
    if current is not None and current not in taken:
        return current
    return f"rtc-{secrets.token_hex(8)}-0"


def _roots(doc: pycrdt.Doc[Any]) -> tuple[pycrdt.Map[Any], pycrdt.Array[Any]]:
    doc.get("state", type=pycrdt.Map)
    return doc.get("meta", type=pycrdt.Map), doc.get("cells", type=pycrdt.Array)


def _version(meta: dict[str, Any]) -> tuple[float, float]:
    major, minor = meta.get("nbformat"), meta.get("nbformat_minor", 0)
    ok = isinstance(major, (int, float)) and isinstance(minor, (int, float))
    return (major, minor) if ok else (0, 0)  # type: ignore[return-value]


# --- parsing and checking ------------------------------------------------------------


def _parse_notebook(path: str, text: str) -> Parsed:
    try:
        parsed = parse(text)
    except json.JSONDecodeError as exc:
        raise NotShareableError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    problem = _structure_problem(parsed)
    if problem:
        raise NotShareableError(f"{path}: {problem}")
    return parsed


def _structure_problem(parsed: Parsed) -> str | None:
    """Why the JSON cannot be a YNotebook document (None if it can)."""
    nb = parsed.value
    if parsed.duplicate_keys:
        return "a JSON object repeats a key, so the notebook's content is ambiguous"
    if parsed.lone_surrogates:
        return "a string holds an unpaired UTF-16 surrogate escape"
    return value_problem(nb)


def value_problem(nb: Any, floats: bool = False) -> str | None:
    """Why a notebook value is not one gitrtc can share and write (None if it is one);
    `floats`: integers may be floats (a document's values: Yjs holds every number as one)."""

    def integer(value: Any) -> bool:
        if floats and type(value) is float:
            return value.is_integer()
        return type(value) is int

    if not isinstance(nb, dict):
        return "not a notebook (the JSON is not an object)"
    major = nb.get("nbformat")
    if not integer(major) or major != 4:
        return f"nbformat {major!r} notebook; only nbformat 4 is shared as a notebook (convert it with nbformat)"
    if not isinstance(nb.get("cells"), list):
        return "nbformat 4 notebook without a cells list"
    if "nbformat_minor" in nb and not integer(nb["nbformat_minor"]):
        return "nbformat_minor is not an integer"
    if not isinstance(nb.get("metadata", {}), dict):
        return "notebook metadata is not an object"
    for i, cell in enumerate(nb["cells"]):
        problem = _cell_problem(cell)
        if problem:
            return f"cell {i}: {problem}"
    return None


def _cell_problem(cell: Any) -> str | None:
    if not isinstance(cell, dict):
        return "not an object"
    if not isinstance(cell.get("cell_type"), str):
        return "cell_type is missing or not a string"
    if not _is_multiline(cell.get("source", "")):
        return "source is not a string or a list of strings"
    if not isinstance(cell.get("metadata", {}), dict):
        return "metadata is not an object"
    if cell["cell_type"] != "code":
        return None
    outputs = cell.get("outputs", [])
    if not isinstance(outputs, list):
        return "outputs is not a list"
    for output in outputs:
        if not isinstance(output, dict) or not isinstance(output.get("output_type"), str):
            return "an output is not an object with an output_type"
        if output["output_type"] == "stream" and not _is_multiline(output.get("text", "")):
            return "a stream output's text is not a string or a list of strings"
    return None


def _is_multiline(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(line, str) for line in value))


def _load_ids(cells: list[dict[str, Any]], seed: str) -> list[str]:
    """Doc ids for a freshly loaded file: its own where usable, else synthetic (deterministic)."""
    ids: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        cid = cell.get("id")
        if not (isinstance(cid, str) and cid and cid not in seen and not is_synthetic_id(cid)):
            cid = f"rtc-{seed}-{i}"
        seen.add(cid)
        ids.append(cid)
    return ids


def _reference(path: str, parsed: Parsed, ids: list[str]) -> _Reference:
    """Map doc ids onto the file's cells; note the file's conventions and validation problems.

    Where a cell's doc id is not the file's, the file's value (or its absence) is recorded
    so that `dump` writes that instead.
    """
    cells: list[dict[str, Any]] = parsed.value["cells"]
    by_id: dict[str, dict[str, Any]] = {}
    synthetic: dict[str, Any] = {}
    for cell, doc_id in zip(cells, ids, strict=False):
        file_id = cell.get("id", _MISSING)
        if file_id != doc_id:
            synthetic[doc_id] = file_id
        by_id[doc_id] = cell
    sources = [cell["source"] for cell in cells if "source" in cell]
    lists = not sources or any(isinstance(s, list) for s in sources)
    notes = _validation_warnings(path, parsed.value)
    schema_valid = not notes
    notes.extend(
        f"{path}: cell {i} has cell_type {cell['cell_type']!r}, which editors show as a raw cell"
        for i, cell in enumerate(cells)
        if cell["cell_type"] not in _CELL_TYPES
    )
    return _Reference(parsed, by_id, synthetic, lists, notes, schema_valid)


def notebook_problem(data: bytes) -> str | None:
    """Why notebook file bytes do not validate as nbformat 4 (one line), or None."""
    try:
        nb = json.loads(data)
    except ValueError as exc:
        return f"not JSON: {exc}"
    notes = _validation_warnings("", nb if isinstance(nb, dict) else {})
    errors = [n for n in notes if "does not validate" in n]
    return errors[0].split(": does not validate as nbformat 4: ", 1)[-1] if errors else None


def _validation_warnings(path: str, nb: dict[str, Any]) -> list[str]:
    """nbformat's complaints about the notebook, as lines for the user (never fatal)."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            nbformat.validate(copy.deepcopy(nb))  # validate() repairs in place: never on our copy
        except nbformat.ValidationError as exc:
            first = str(getattr(exc, "message", exc)).splitlines()[0]
            notes.append(f"{path}: does not validate as nbformat 4: {first}")
    notes.extend(f"{path}: {w.message}" for w in caught)
    return notes


def _has_nan(value: Any) -> bool:
    """Whether a JSON value holds NaN or an infinity (a file may; JSON does not allow it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# --- representation helpers ------------------------------------------------------------


def _lines_like(ref: Any, value: Any, split_new: bool) -> Any:
    """A multiline field in the form the file had it (list of lines or one string)."""
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        text = "".join(value)
    elif isinstance(value, str):
        text = value
    else:
        return value
    if isinstance(ref, list) and all(isinstance(line, str) for line in ref):
        return ref if "".join(ref) == text else _split_like(ref, text)
    if isinstance(ref, str):
        return text
    if isinstance(value, list):
        return value
    return text.splitlines(keepends=True) if split_new else text


def _split_like(ref: list[str], text: str) -> list[str]:
    """Split into lines the way the file's list was split (nbformat: str.splitlines)."""
    joined = "".join(ref)
    if joined.splitlines(keepends=True) != ref and re.split(r"(?<=\n)(?!$)", joined) == ref:
        return re.split(r"(?<=\n)(?!$)", text) if text else []
    return text.splitlines(keepends=True)


def _output_like(ref: Any, output: Any, lists: bool) -> Any:
    if not isinstance(output, dict):
        return output
    same = isinstance(ref, dict) and ref.get("output_type") == output.get("output_type")
    ref = ref if same else {}
    out = dict(output)
    if "text" in out:
        out["text"] = _lines_like(ref.get("text", _MISSING), out["text"], lists)
    if isinstance(out.get("data"), dict):
        out["data"] = _bundle_like(ref.get("data"), out["data"], lists)
    return out


def _bundle_like(ref: Any, bundle: Any, lists: bool) -> Any:
    """A MIME bundle with each text value in the file's form (nbformat's split rules for new ones)."""
    if not isinstance(bundle, dict):
        return bundle
    ref = ref if isinstance(ref, dict) else {}
    out = {}
    for mime, value in bundle.items():
        is_json = mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))
        split = lists and (mime.startswith("text/") or mime in _SPLIT_MIMES)
        out[mime] = value if is_json else _lines_like(ref.get(mime, _MISSING), value, split)
    return out


def _yjs_safe(parsed: Parsed) -> dict[str, Any]:
    """The notebook value with integers Yjs cannot hold (beyond 64 bits) as floats."""
    return _floats_for_big_ints(parsed.value) if parsed.big_ints else parsed.value  # type: ignore[no-any-return]


def _floats_for_big_ints(value: Any) -> Any:
    if type(value) is int and not -_I64 <= value < _I64:
        return float(value)
    if isinstance(value, dict):
        return {k: _floats_for_big_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_for_big_ints(v) for v in value]
    return value
