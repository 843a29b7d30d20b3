"""The file-set API: `POST /api/files` (create, rename, delete) and `GET /api/tree` (one
folder's entries at a time, so a browser never loads a 100,000-file listing to show a
tree, quick-open finds names with `?find=`, and `?path=` answers for one file).

A folder's listing is paged (`offset`, `limit`: at most `MAX_PAGE` entries, so a folder of
1,000,000 entries is never one giant answer) and served from an index of every folder,
built once per `files_version`, in a thread (not a scan of every shared file per request,
nor a quarter-second stall of the loop at 100,000 files)."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .. import safefs
from ..binaries import content_type
from ..errors import BadRequestError, FileOpError, ForbiddenError, UnknownRoomError
from ..fileops import check_may_change, run
from ..origins import Participant
from ..session import Session
from .auth import origin_allowed, request_token, require_role

MAX_FOUND = 50
#: Paths containing a quick-open query that are ranked at most (the first in path order):
#: a query found in every path of a 100,000-file tree costs this many steps, not 100,000.
MAX_RANKED = 1000
#: Entries of one folder per `/api/tree` answer, by default and at most.
PAGE = 2000
MAX_PAGE = 10_000


def add_routes(app: web.Application, session: Session) -> None:
    """Route the file-set API of `session` in `app`."""

    async def api_files(request: web.Request) -> web.Response:
        role = require_role(request, session)
        if not origin_allowed(request):
            raise ForbiddenError("cross-site request refused")
        try:
            body = json.loads(await request.read()) if request.can_read_body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequestError("the body must be JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("op"), str):
            raise BadRequestError('the body must be a JSON object with "op": create, rename or delete')
        _role, invite = session.grant_for(request_token(request)) or (role, None)
        name, email = body.get("name"), body.get("email")
        who = Participant(
            name if isinstance(name, str) and name else invite or "anonymous",
            email if isinstance(email, str) else "",
            role,
            invite,
        )
        check_may_change(who)
        return web.json_response(await run(session.fileset, body["op"], body, who))

    async def api_tree(request: web.Request) -> web.Response:
        require_role(request, session)
        query = request.query
        if "path" in query:
            return web.json_response(entry(session, query["path"]))
        offset, limit = _number(query.get("offset"), 0), min(_number(query.get("limit"), PAGE), MAX_PAGE)
        await views_ready(session, "find" in query)
        return web.json_response(tree(session, query.get("dir", ""), query.get("find"), offset, max(limit, 1)))

    async def api_raw(request: web.Request) -> web.StreamResponse:
        require_role(request, session)
        path = request.query.get("path", "")
        m = session.manifest
        if path not in m.binaries and session.fileset.entry(path) is None:
            raise UnknownRoomError("no shared file at that path")
        try:
            data = await asyncio.to_thread(safefs.read_file, session.info.workdir, path)
        except OSError as exc:
            raise FileOpError(f"{path}: cannot be read ({exc.strerror})") from None
        kind = content_type(path) if path in m.binaries else "text/plain; charset=utf-8"
        headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox"}
        if not kind.startswith("image/"):
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}"
        return web.Response(body=data, content_type=kind.split(";")[0], headers=headers)

    async def api_put_raw(request: web.Request) -> web.Response:
        role = require_role(request, session)
        if not origin_allowed(request):
            raise ForbiddenError("cross-site request refused")
        _role, invite = session.grant_for(request_token(request)) or (role, None)
        who = Participant(
            request.query.get("name") or invite or "anonymous", request.query.get("email", ""), role, invite
        )
        check_may_change(who)
        data = await _body(request, session.limits.max_file_bytes)
        path = await session.fileset.put_binary(request.query.get("path"), data, who)
        return web.json_response({"path": path})

    app.router.add_get("/api/raw", api_raw)
    app.router.add_put("/api/raw", api_put_raw)
    app.router.add_post("/api/files", api_files)
    app.router.add_get("/api/tree", api_tree)


async def _body(request: web.Request, limit: int) -> bytes:
    """A whole file's bytes, up to the shared-file limit (past the app's 1 MiB for JSON)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise FileOpError(f"the file is over the {limit}-byte limit for shared files")
        chunks.append(chunk)
    return b"".join(chunks)


def _number(raw: str | None, default: int) -> int:
    try:
        return max(int(raw), 0) if raw is not None else default
    except ValueError:
        raise BadRequestError("offset and limit are whole numbers") from None


@dataclass(slots=True)
class _Folder:
    """One folder's direct entries, each list sorted."""

    folders: list[str] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)  # FileEntry
    binaries: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Paths:
    """Every shared path, lower-cased, in one string (a query is found by `str.find`, in C)."""

    text: str
    starts: list[int]
    files: list[Any]  # FileEntry


#: Each session's views of its file set and the state each was built for (`_stale`): the
#: quick-open text (`_Paths`) and the folder index (`dict[str, _Folder]`).
_Views = weakref.WeakKeyDictionary[Session, tuple[tuple[int, ...], Any]]
_PATHS: _Views = weakref.WeakKeyDictionary()
_INDEX: _Views = weakref.WeakKeyDictionary()


def _stale(session: Session, find: bool) -> tuple[tuple[int, ...], Callable[[], Any]] | None:
    """If the quick-open text (`find`) or the folder index was built for another state of
    the file set: the state now and the view's build, from copies of the manifest's lists
    (to run on any thread); None while the view is current."""
    m = session.manifest
    key: tuple[int, ...]
    if find:
        views, key = _PATHS, (m.files_version, len(m.files))
    else:
        views, key = _INDEX, (m.files_version, len(m.files), len(m.binaries), len(m.skipped))
    held = views.get(session)
    if held is not None and held[0] == key:
        return None
    if find:
        return key, partial(_build_paths, list(m.files))
    return key, partial(_build_index, list(m.files), list(m.binaries), list(m.skipped))


def _view(session: Session, find: bool) -> Any:
    """The quick-open text (`find`) or the folder index, built here if stale (the API has
    it built in a thread first: `views_ready`)."""
    views = _PATHS if find else _INDEX
    stale = _stale(session, find)
    if stale is not None:
        views[session] = stale[0], stale[1]()
    return views[session][1]


async def views_ready(session: Session, find: bool) -> None:
    """Rebuild the quick-open text (`find`) or the folder index in a thread if the file set
    changed since it was built: at 100,000 files a rebuild is a quarter of a second, a
    stall every room on the loop would feel. Only the copies of the lists are made here."""
    stale = _stale(session, find)
    if stale is not None:
        key, build = stale
        built = await asyncio.to_thread(build)
        (_PATHS if find else _INDEX)[session] = key, built


def _build_paths(files: list[Any]) -> _Paths:
    """(any thread) The quick-open text of `files`, a copy of the manifest's list."""
    paths = [f.path.lower() for f in files]
    starts = [0, *itertools.accumulate(len(p) + 1 for p in paths)]
    return _Paths("\n".join(paths), starts, files)


def _find(session: Session, needle: str) -> list[Any]:
    """The first `MAX_RANKED` shared files (in the manifest's order) whose path contains
    `needle` (lower-case), from a text rebuilt once per `files_version`."""
    found: list[Any] = []
    here: _Paths = _view(session, find=True)
    if "\n" in needle:  # no path holds one: it would match across two
        return found
    at = here.text.find(needle) if needle else 0
    while 0 <= at < len(here.text) and len(found) < MAX_RANKED:
        n = bisect.bisect_right(here.starts, at) - 1
        found.append(here.files[n])
        at = here.text.find(needle, here.starts[n + 1]) if needle else here.starts[n + 1]
    return found


def _build_index(files: list[Any], binaries: list[str], skipped: list[tuple[str, str]]) -> dict[str, _Folder]:
    """(any thread) Every folder's entries, from copies of the manifest's lists."""
    index: dict[str, _Folder] = {}
    subfolders: dict[str, set[str]] = {}

    def folder_of(path: str) -> _Folder:
        parent, _slash, _name = path.rpartition("/")
        here = index.get(parent)
        if here is None:
            here = index[parent] = _Folder()
            child = parent
            while child:  # every folder above lists the next one down
                up, _slash, name = child.rpartition("/")
                names = subfolders.setdefault(up, set())
                if name in names:
                    break
                names.add(name)
                child = up
        return here

    for f in files:
        folder_of(f.path).files.append(f)
    for path in binaries:
        folder_of(path).binaries.append(path)
    for path, reason in skipped:
        folder_of(path).skipped.append((path, reason))
    for parent, names in subfolders.items():
        index.setdefault(parent, _Folder()).folders = sorted(names)
    for here in index.values():
        here.files.sort(key=lambda f: f.path)
        here.binaries.sort()
    return index


def tree(session: Session, folder: str, find: str | None = None, offset: int = 0, limit: int = PAGE) -> dict[str, Any]:
    """One folder's direct entries (`folders`: names; `files`: {path, kind, room};
    `binaries`; `skipped`), one page of them: the folders, files, binaries and skipped
    entries in that order, from `offset`, at most `limit` (`more` and `next` say where
    the next page starts); or with `find` the first shared files whose path contains it
    (case-insensitive)."""
    if find is not None:
        found = _find(session, find.lower())
        found.sort(key=lambda f: (find.lower() not in f.path.rsplit("/", 1)[-1].lower(), len(f.path)))
        return {"files": [_file(f) for f in found[:MAX_FOUND]], "more": len(found) > MAX_FOUND}
    name = folder.strip("/")
    index: dict[str, _Folder] = _view(session, find=False)
    here = index.get(name, _Folder())
    pages: list[list[Any]] = []
    skip, room = offset, limit
    for part in (here.folders, here.files, here.binaries, here.skipped):
        take = part[skip : skip + room] if skip < len(part) else []
        skip = max(skip - len(part), 0)
        room -= len(take)
        pages.append(take)
    total = len(here.folders) + len(here.files) + len(here.binaries) + len(here.skipped)
    seen = dict(session.fileset.binaries.seen)
    binaries = session.manifest.binaries
    answer: dict[str, Any] = {
        "binaries": [{"path": p, "type": content_type(p), "digest": seen.get(p) or binaries[p]} for p in pages[2]],
        "dir": name,
        "folders": pages[0],
        "files": [_file(f) for f in pages[1]],
        "skipped": [{"path": p, "reason": r} for p, r in pages[3]],
        "version": session.manifest.files_version,
    }
    shown = offset + sum(map(len, pages))
    if shown < total:
        answer["more"] = True
        answer["next"] = shown
    return answer


def entry(session: Session, path: str) -> dict[str, Any]:
    """`?path=`: the one shared file or whole file at `path` (`files` or `binaries` holds
    it, both empty if nothing is shared there), for a page opening a link to a file
    whose folder it has not listed."""
    found = session.fileset.entry(path)
    digest = None if found is not None else session.manifest.binaries.get(path)
    if digest is not None:
        digest = session.fileset.binaries.seen.get(path) or digest
    return {
        "files": [_file(found)] if found is not None else [],
        "binaries": [{"path": path, "type": content_type(path), "digest": digest}] if digest else [],
        "version": session.manifest.files_version,
    }


def _file(f: Any) -> dict[str, Any]:
    return {"path": f.path, "kind": f.kind, "room": f.room}
