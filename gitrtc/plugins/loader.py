"""Finding and loading plugins: entry points `gitrtc.documents` and `gitrtc.services`.

Each entry point is loaded on its own, in its own sandbox thread with a time limit: one
that fails to import, raises, hangs or is not a valid plugin is recorded with why (for
`rtc plugins`, `rtc status`) and never stops the others. The built-in kinds (notebook,
text) are loaded from a built-in list of entry points through the same code, after the
installed ones, so a plugin may take files the built-ins would otherwise take.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from ..documents import MAX_FILE_BYTES, Codec
from ..errors import DocumentError, NotShareableError, PluginError
from .api import API_VERSION, DocumentKind, Op, Service, matches
from .codec import broken_plugins, sandbox_for
from .sandbox import MAX_SECONDS, Sandbox

if TYPE_CHECKING:
    from ..merge.files import FileMerge

KINDS_GROUP = "gitrtc.documents"
SERVICES_GROUP = "gitrtc.services"
NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
BUILTIN = (
    metadata.EntryPoint("notebook", "gitrtc.plugins.builtin:NotebookKind", KINDS_GROUP),
    metadata.EntryPoint("text", "gitrtc.plugins.builtin:TextKind", KINDS_GROUP),
)
RESERVED_SERVICES = frozenset({"kernel"})
#: Kind name → its last failure on a file in this process (the file was shared as another kind).
FAILURES: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One entry point as found: where it comes from and whether it was loaded (or why not)."""

    group: str
    name: str
    value: str
    dist: str  # "name version" of the package, or "gitrtc (built-in)"
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        kind = "kind" if self.group == KINDS_GROUP else "service"
        return {"type": kind, "name": self.name, "value": self.value, "dist": self.dist, "error": self.error}


@dataclass(slots=True)
class Plugins:
    """What this process loaded: kinds in the order files are offered to them, services
    by name (classes: each session makes its own), and every entry point's `PluginInfo`."""

    kinds: list[DocumentKind] = field(default_factory=list)
    services: dict[str, type[Service]] = field(default_factory=dict)
    infos: list[PluginInfo] = field(default_factory=list)

    def kind(self, name: str) -> DocumentKind | None:
        """The loaded kind called `name`."""
        return next((k for k in self.kinds if k.name == name), None)

    def report(self) -> list[dict[str, Any]]:
        """Every plugin found, with the error of one not loaded or broken since (hung)."""
        broken = broken_plugins()
        out = []
        for info in self.infos:
            item = info.to_json()
            if item["error"] is None and info.name in broken:
                item["error"] = f"stopped while in use: {broken[info.name]}"
            elif item["error"] is None and item["type"] == "kind" and info.name in FAILURES:
                item["error"] = f"failed on a file: {FAILURES[info.name]}"
            out.append(item)
        return out


@functools.cache
def installed() -> Plugins:
    """The plugins of this process (found and loaded once)."""
    return discover(_entry_points(KINDS_GROUP), _entry_points(SERVICES_GROUP))


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)


def discover(
    kinds: list[metadata.EntryPoint], services: list[metadata.EntryPoint], seconds: float = MAX_SECONDS
) -> Plugins:
    """Load the given entry points (then the built-in kinds), each in isolation (an
    import or start taking more than `seconds` counts as hung)."""
    found = Plugins()
    for ep in [*kinds, *BUILTIN]:
        builtin = ep in BUILTIN
        try:
            kind = _load_kind(ep, builtin, {k.name for k in found.kinds}, seconds)
        except PluginError as exc:
            found.infos.append(PluginInfo(KINDS_GROUP, ep.name, ep.value, _dist(ep, builtin), str(exc)))
            continue
        found.kinds.append(kind)
        found.infos.append(PluginInfo(KINDS_GROUP, ep.name, ep.value, _dist(ep, builtin)))
    for ep in services:
        try:
            cls = _load_service(ep, set(found.services), seconds)
        except PluginError as exc:
            found.infos.append(PluginInfo(SERVICES_GROUP, ep.name, ep.value, _dist(ep, False), str(exc)))
            continue
        found.services[cls.name] = cls
        found.infos.append(PluginInfo(SERVICES_GROUP, ep.name, ep.value, _dist(ep, False)))
    return found


def _dist(ep: metadata.EntryPoint, builtin: bool) -> str:
    if builtin:
        return "gitrtc (built-in)"
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def _import(ep: metadata.EntryPoint, seconds: float) -> Any:
    """The entry point's object, imported in a sandbox thread (an import may hang)."""
    box = Sandbox(ep.name)  # its own: a hung import must not block another plugin
    try:
        return box.run(ep.load, seconds, "import")
    except PluginError as exc:
        raise PluginError(str(exc).replace(f"plugin {ep.name}: ", "", 1)) from None
    finally:
        box.close()


def _load_kind(ep: metadata.EntryPoint, builtin: bool, taken: set[str], seconds: float) -> DocumentKind:
    cls = _import(ep, seconds)
    if not (isinstance(cls, type) and issubclass(cls, DocumentKind)):
        raise PluginError(f"{ep.value} is not a gitrtc.plugins.DocumentKind subclass")
    _check_common(cls, ep, taken | ({"text", "notebook"} if not builtin else set()))
    roots = getattr(cls, "roots", None)
    if not isinstance(roots, dict) or not roots or "state" in roots:
        raise PluginError("roots must be a non-empty dict of root name → pycrdt type (not 'state')")
    try:
        kind: DocumentKind = cls() if builtin else sandbox_for(cls.name).run(cls, seconds, "start")
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"could not be started: {type(exc).__name__}: {exc}") from exc
    return kind


def _load_service(ep: metadata.EntryPoint, taken: set[str], seconds: float) -> type[Service]:
    cls = _import(ep, seconds)
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise PluginError(f"{ep.value} is not a gitrtc.plugins.Service subclass")
    _check_common(cls, ep, taken | RESERVED_SERVICES)
    return cls


def _check_common(cls: type[Any], ep: metadata.EntryPoint, taken: set[str]) -> None:
    if getattr(cls, "api", None) != API_VERSION:
        raise PluginError(f"made for plugin API {getattr(cls, 'api', None)!r}; this gitrtc speaks {API_VERSION}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise PluginError(f"its name {name!r} is not [a-z][a-z0-9_-]* (at most 40)")
    if name != ep.name:
        raise PluginError(f"its name {name!r} differs from its entry point's {ep.name!r}")
    if name in taken:
        raise PluginError(f"the name {name!r} is already taken")


def service_ops(service: Service) -> dict[str, Op]:
    """A service's ops, checked (`PluginError` if `ops()` fails or is not a mapping of `Op`)."""
    try:
        ops = dict(service.ops())
    except Exception as exc:
        raise PluginError(f"plugin {service.name}: ops() failed: {type(exc).__name__}: {exc}") from exc
    if not all(isinstance(k, str) and isinstance(v, Op) for k, v in ops.items()):
        raise PluginError(f"plugin {service.name}: ops() must map names to gitrtc.plugins.Op")
    return ops


def open_codec(path: str, data: bytes, max_bytes: int = MAX_FILE_BYTES) -> Codec:
    """The codec for a shared file from the first kind that takes it (installed kinds,
    then notebook, then text). A plugin that fails on the file is reported as a warning
    and the file is shared by the next kind that takes it (text, at worst: untouched)."""
    notes: list[str] = []
    plugins = installed()
    for kind in plugins.kinds:
        builtin = kind.name in ("text", "notebook")
        try:
            if builtin:
                if not kind.takes(path, data):
                    continue
                codec = kind.codec(path, data, max_bytes)
            else:
                if kind.patterns and not matches(path, kind.patterns):
                    continue  # decided here: no trip to the plugin's thread
                box = sandbox_for(kind.name)
                if not box.run(_taker(kind, path, data), kind.limits.seconds, f"sniff of {path}"):
                    continue
                codec = kind.codec(path, data, max_bytes)
        except PluginError as exc:
            notes.append(f"{exc}; shared as the next kind that takes it")
            FAILURES[kind.name] = str(exc)
            continue
        except NotShareableError:
            raise
        codec.warnings[:0] = notes
        return codec
    raise NotShareableError(f"{path}: no document kind takes this file")  # text takes any text file


def merge3(path: str, base: bytes, ours: bytes, theirs: bytes) -> FileMerge:
    """Three-way merge of a shared file's bytes by the kind that takes `ours` (a plugin
    kind in its sandbox; a plugin that fails leaves a conflict: nothing is committed)."""
    from ..merge.files import FileMerge

    for kind in installed().kinds:
        if kind.name in ("text", "notebook"):
            if kind.takes(path, ours):
                done = kind.merge3(base, ours, theirs)
                return FileMerge(done.data, done.conflict)
            continue
        if kind.patterns and not matches(path, kind.patterns):
            continue
        box = sandbox_for(kind.name)
        try:
            if not box.run(_taker(kind, path, ours), kind.limits.seconds, f"sniff of {path}"):
                continue
            done = box.run(_merger(kind, base, ours, theirs), kind.limits.seconds, f"merge3 of {path}")
        except PluginError:
            return FileMerge(theirs, True)
        if not isinstance(done.data, bytes):
            return FileMerge(theirs, True)
        return FileMerge(done.data, bool(done.conflict))
    return FileMerge(theirs, True)


def _taker(kind: DocumentKind, path: str, data: bytes) -> Any:
    return lambda: kind.sniff(path, data)


def _merger(kind: DocumentKind, base: bytes, ours: bytes, theirs: bytes) -> Any:
    return lambda: kind.merge3(base, ours, theirs)


def open_kind(kind: str, path: str, data: bytes, max_bytes: int = MAX_FILE_BYTES) -> Codec:
    """The codec of a file the session already shares as `kind` (a resume, `rtc join`):
    that kind's, whatever else would take the file now; `DocumentError` (one line) if the
    kind is not installed here or cannot open the file any more."""
    found = installed().kind(kind)
    if found is None:
        raise DocumentError(
            f"{path} is shared as a {kind} file, and no {kind} kind is installed here: "
            f"install the gitrtc plugin for {kind} files (see rtc plugins)"
        )
    try:
        codec = found.codec(path, data, max_bytes)
    except PluginError as exc:
        raise DocumentError(f"{path} is shared as a {kind} file: {exc}") from exc
    if codec.kind != kind:  # the notebook kind shares a broken notebook as text
        raise DocumentError(f"{path}: stored as {kind}, now reads as {codec.kind}")
    return codec
