"""Creating, renaming and deleting shared files on a participant's request.

Two doors to the same `FileSet` operations, editors (and the owner) only:

- the request channel (`requests.py`), service `files`, on any room's connection:
  `{"service": "files", "op": "create", "args": {"path": "a/b.md", "kind": "text"}}`,
  `op` `rename` with `{"path", "to"}`, `delete` with `{"path"}`; the participant is the
  connection's;
- `POST /api/files` with a JSON body `{"op", "path", "to"?, "kind"?, "name"?, "email"?}`
  (token as for every API call; `name`/`email` credit the participant as a room's query
  string does).

Answers: create → `{"path": the path it got}`, rename → `{"moved": [{from, path, room, kind}]}`,
delete → `{}`. Refusals are one line (`FileNameError` 400, `FileOpError` 409,
a viewer's link 403).
"""

from __future__ import annotations

from typing import Any

from .errors import ForbiddenError, RequestError
from .fileset import FileSet
from .origins import Participant
from .requests import Call

OPS = ("create", "rename", "delete")


async def run(fileset: FileSet, op: str, args: dict[str, Any], who: Participant) -> dict[str, Any]:
    """Do one file operation for `who` (already known to be allowed to edit)."""
    if op == "create":
        kind = args.get("kind", "text")
        return {"path": await fileset.create(args.get("path"), kind if isinstance(kind, str) else "", who)}
    if op == "rename":
        return {"moved": await fileset.rename(args.get("path"), args.get("to"), who)}
    if op == "delete":
        await fileset.delete(args.get("path"), who)
        return {}
    raise RequestError(f"unknown files op {op[:40]!r}: one of {', '.join(OPS)}")


def check_may_change(who: Participant) -> None:
    """Viewers may not create, rename or delete files."""
    if who.role == "viewer":
        raise ForbiddenError("a viewer's link cannot create, rename or delete files: ask for an editor link")


class FileService:
    """The request channel's `files` service."""

    def __init__(self, fileset: FileSet) -> None:
        self.fileset = fileset

    async def call(self, call: Call) -> Any:
        """Create, rename or delete for the connection's participant."""
        who = call.conn.participant
        if who.role == "viewer":  # (the session room is read-only for all: its role decides)
            raise RequestError("a viewer's link cannot create, rename or delete files: ask for an editor link")
        return await run(self.fileset, call.op, call.args, who)

    def disconnected(self, conn: Any) -> None:
        """Nothing belongs to a connection."""

    async def close(self) -> None:
        """Nothing to stop."""
