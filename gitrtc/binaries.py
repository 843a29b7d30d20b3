"""Binary files in a session (images, data files): listed, served, replaced whole, committed.

A file that cannot be a shared document because it is binary (a NUL byte) or not UTF-8,
but is a regular file within the size limit, is shared as a whole file: it has no room;
`GET /api/raw?path=` serves its bytes (any role), `PUT /api/raw?path=` replaces or creates
it (editors), a change on the owner's disk is noticed by the folder watcher, and every
client is told (`files_changes` op `binary` with its new digest). The end commit has each
one whose bytes differ from the start (`Manifest.binaries`: path → digest at the start,
"" for one that appeared during the session), read from the disk then.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

from . import safefs
from .manifest import Manifest

#: Suffix → content type for what browsers show inline (images); anything else downloads.
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".bmp": "image/bmp",
    ".ico": "image/x-icon",
}


def bdigest(data: bytes) -> str:
    """The digest clients compare to know a binary changed."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def is_binary(data: bytes, max_bytes: int) -> bool:
    """Whether `data` is a file to share whole: within the limit, and binary or not UTF-8."""
    if len(data) > max_bytes:
        return False
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def content_type(path: str) -> str:
    """What to serve `path` as: an image type, else a download."""
    suffix = path[path.rfind(".") :].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return IMAGE_TYPES.get(suffix, "application/octet-stream")


class Binaries:
    """The session's whole-file shares (their list lives in the manifest)."""

    def __init__(self, manifest: Manifest, workdir: object, event: Callable[[str], None]) -> None:
        self.manifest = manifest
        self.workdir = workdir
        self._event = event
        #: Path → the digest last seen (on disk or put), for the clients.
        self.seen: dict[str, str] = {}

    def listing(self) -> list[dict[str, str]]:
        """`[{path, type, digest}]` for `/api/session` and `/api/tree`."""
        return [
            {"path": p, "type": content_type(p), "digest": self.seen.get(p) or start}
            for p, start in sorted(self.manifest.binaries.items())
        ]

    async def changed(self) -> dict[str, bytes]:
        """Path → bytes of each binary whose bytes on disk differ from the start."""
        paths = dict(self.manifest.binaries)

        def read() -> dict[str, bytes]:
            out = {}
            for path, start in paths.items():
                try:
                    data = safefs.read_file(str(self.workdir), path)
                except OSError:
                    continue  # gone (its removal is recorded) or a link now: not committed as bytes
                if bdigest(data) != start:
                    out[path] = data
            return out

        return await asyncio.to_thread(read)
