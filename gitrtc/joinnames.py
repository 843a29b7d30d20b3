"""What a server we join may send, checked before any of it touches the disk or the terminal.

`rtc join` follows a pasted link: the server at the other end is not trusted. Every name
it sends (session id, file paths, room names, the base commit, branch and participant
names) is validated here; the mirror uses only what these functions return.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .errors import JoinError
from .manifest import ROOM_NAME

#: Session ids: `rtc start` makes 16 hex digits; any URL-safe token up to 64 is accepted.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A commit id: SHA-1 or SHA-256, lower-case hex.
COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: A file kind: text, notebook, or a plugin kind's name (`plugins.loader.NAME`).
KIND = re.compile(r"[a-z][a-z0-9_-]{0,39}")
MAX_PATH = 4096
MAX_COMPONENT = 255
MAX_ROOM = 200
MAX_FILES = 10_000
#: The mirror's own state in a folder that is not a checkout; no shared path may enter it.
STATE_FOLDER = ".rtc-join"
_DRIVE = re.compile(r"[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class SharedFile:
    """One file of the session, as validated: a safe relative path, its kind and room."""

    path: str
    kind: str
    room: str


def _refuse(what: str, value: object, why: str) -> JoinError:
    return JoinError(
        f"the session sent an unsafe {what} {printable(value)}: {why}; refusing to join "
        "(is this link from someone you trust?)"
    )


def printable(value: object, limit: int = 80) -> str:
    """`value` quoted for a one-line message: control characters escaped, cut at `limit`."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def session_id(value: object) -> str:
    """The session id: URL-safe letters, digits, `-`, `_` (it is shown, never a path)."""
    if not isinstance(value, str) or not SESSION_ID.fullmatch(value):
        raise _refuse("session id", value, "expected up to 64 letters, digits, - or _")
    return value


def room_name(value: object) -> str:
    """A room name: the documented `[A-Za-z0-9._~:-]` segments joined by `/`, no `.`/`..`."""
    if not isinstance(value, str) or len(value) > MAX_ROOM or not ROOM_NAME.match(value):
        raise _refuse("room name", value, "expected letters, digits and ._~:- (and /)")
    if any(part in (".", "..") for part in value.split("/")):
        raise _refuse("room name", value, "a . or .. segment")
    return value


def relative_path(value: object) -> str:
    """A shared file's path: relative, `/`-separated, inside the folder, never in `.git`.

    Refused: absolute paths and drive letters, empty, `.` and `..` components, `\\`, NUL
    and other control characters, a `.git` component in any case (or with the trailing
    dots and spaces some file systems ignore), and the mirror's own state folder.
    """
    if not isinstance(value, str) or not value:
        raise _refuse("path", value, "not a file name")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise _refuse("path", value, "too long")
    if value.startswith("/") or _DRIVE.match(value):
        raise _refuse("path", value, "an absolute path")
    if "\\" in value or "\x00" in value or _has_control(value):
        raise _refuse("path", value, "a backslash or control character")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise _refuse("path", value, "not valid Unicode")
    parts = value.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise _refuse("path", value, "an empty, . or .. component")
        if len(part.encode()) > MAX_COMPONENT:
            raise _refuse("path", value, "a file name too long")
        if part.rstrip(". ").casefold() == ".git":
            raise _refuse("path", value, "a .git component")
    if parts[0].rstrip(". ").casefold() == STATE_FOLDER:
        raise _refuse("path", value, f"{STATE_FOLDER} is rtc join's own folder")
    return value


def folders(value: object) -> list[str]:
    """The session's shared folders ("" for the whole tree): where a file created in the
    join folder joins the session. Absent (an older server): none."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_FILES:
        raise _refuse("folder list", type(value).__name__, "expected a list of folders")
    return sorted({"" if v == "" else relative_path(v) for v in value})


def commit_id(value: object) -> str:
    """The session's base commit id (full hex)."""
    if not isinstance(value, str) or not COMMIT_ID.fullmatch(value):
        raise JoinError(
            f"the session did not say which commit it started from (base {printable(value)}): "
            "refusing to mirror it into a checkout"
        )
    return value


def label(value: object, limit: int = 200) -> str:
    """A name to show (branch, participant): control characters dropped, at most `limit`."""
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value if not _has_control(ch))[:limit]


def shared_files(value: object) -> list[SharedFile]:
    """The session's `files` listing, every entry checked; no path twice, none inside another."""
    if not isinstance(value, list):
        raise _refuse("file list", type(value).__name__, "expected a list of files")
    if len(value) > MAX_FILES:  # a large tree shared whole: not hostile, too big to mirror
        raise JoinError(
            f"this session shares {len(value):,} files and rtc join mirrors at most {MAX_FILES:,} "
            "(one connection each): open the link in a browser, or ask the owner to share a smaller folder"
        )
    files: list[SharedFile] = []
    seen_paths: set[str] = set()
    seen_rooms: set[str] = set()
    for entry in value:
        if not isinstance(entry, dict):
            raise _refuse("file entry", entry, "not an object")
        path = relative_path(entry.get("path"))
        room = room_name(entry.get("room"))
        kind = entry.get("kind", "text")
        if not isinstance(kind, str) or not KIND.fullmatch(kind):
            raise _refuse("file kind", kind, "expected text, notebook or a plugin kind's name")
        if path in seen_paths or room in seen_rooms:
            raise _refuse("path", path, "listed twice")
        seen_paths.add(path)
        seen_rooms.add(room)
        files.append(SharedFile(path, kind, room))
    folders = {f.path.rsplit("/", i)[0] for f in files for i in range(1, f.path.count("/") + 1)}
    for f in files:
        if f.path in folders:
            raise _refuse("path", f.path, "both a file and a folder of other files")
    return files


def participants(value: object) -> list[dict[str, Any]]:
    """The participants to show: names, emails, roles and files as plain, short labels."""
    if not isinstance(value, list):
        return []
    shown = []
    for p in value[:200]:
        if isinstance(p, dict):
            files = p.get("files")
            shown.append(
                {
                    "name": label(p.get("name"), 100),
                    "email": label(p.get("email"), 100),
                    "role": label(p.get("role"), 20),
                    "files": [label(f) for f in files[:20]] if isinstance(files, list) else [],
                }
            )
    return shown
