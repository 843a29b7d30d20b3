"""The file-set API: `POST /api/files` (create, rename, delete) and `GET /api/tree` (one
folder's entries at a time, so a browser never loads a 100,000-file listing to show a
tree, and quick-open finds names with `?find=`)."""

from __future__ import annotations

import asyncio
import json
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
        return web.json_response(tree(session, request.query.get("dir", ""), request.query.get("find")))

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


def tree(session: Session, folder: str, find: str | None = None) -> dict[str, Any]:
    """One folder's direct entries (`folders`: names; `files`: {path, kind, room}), or with
    `find` the first shared files whose path contains it (case-insensitive)."""
    files = session.manifest.files
    if find is not None:
        needle = find.lower()
        found = [f for f in files if needle in f.path.lower()]
        found.sort(key=lambda f: (needle not in f.path.rsplit("/", 1)[-1].lower(), len(f.path)))
        return {"files": [_file(f) for f in found[:MAX_FOUND]], "more": len(found) > MAX_FOUND}
    prefix = folder.strip("/") + "/" if folder.strip("/") else ""
    folders: set[str] = set()
    here = []
    for f in files:
        if not f.path.startswith(prefix):
            continue
        rest = f.path[len(prefix) :]
        head, slash, _tail = rest.partition("/")
        if slash:
            folders.add(head)
        else:
            here.append(_file(f))
    skipped = [
        {"path": p, "reason": r}
        for p, r in session.manifest.skipped
        if p.startswith(prefix) and "/" not in p[len(prefix) :]
    ]
    binaries = [b for b in session.fileset.binaries.listing() if b["path"].rpartition("/")[0] == prefix.rstrip("/")]
    return {
        "binaries": binaries,
        "dir": prefix.rstrip("/"),
        "folders": sorted(folders),
        "files": sorted(here, key=lambda f: f["path"]),
        "skipped": skipped,
        "version": session.manifest.files_version,
    }


def _file(f: Any) -> dict[str, Any]:
    return {"path": f.path, "kind": f.kind, "room": f.room}
