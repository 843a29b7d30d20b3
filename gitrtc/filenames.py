"""The rules a path must follow to be created in, or renamed to, a shared folder.

Pure functions, no disk: `check_new_path` says why a name cannot be used (one line) or
returns it normalised. What git itself refuses (`.git` anywhere, empty or `.`/`..`
components), what would escape the work tree (absolute paths, `..`, backslashes), what a
terminal or a file system would mangle (control characters, a trailing dot or space, over
255 bytes a name) and case-only renames (half the file systems cannot tell them apart)
are all refused. Whether the path clashes with an existing file or folder is the file
set's business: it knows the disk.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import FileNameError

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]")


def inside(path: str, folders: list[str]) -> bool:
    """Whether repository-relative `path` lies in one of `folders` ("" is the whole tree)."""
    return any(folder == "" or path.startswith(folder + "/") for folder in folders)


def check_new_path(raw: object, folders: list[str]) -> str:
    """`raw` as a repository-relative path a new (or renamed) file may take, inside one
    of the shared `folders`; `FileNameError` saying why not."""
    if not isinstance(raw, str) or not raw:
        raise FileNameError("give the file's path as a non-empty string")
    if _CONTROL.search(raw):
        raise FileNameError("a file name cannot contain control characters (tabs, newlines, …)")
    if "\\" in raw:
        raise FileNameError(f"{raw!r}: use / between folders; a backslash cannot be in a name")
    path = unicodedata.normalize("NFC", raw)
    if path.startswith("/"):
        raise FileNameError(f"{raw!r}: give a path relative to the repository, not an absolute one")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise FileNameError(f"the path is too long (at most {MAX_PATH_BYTES} bytes)")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise FileNameError(f"{raw!r}: empty, . and .. are not names (paths stay inside the shared folders)")
        if part.lower() == ".git":
            raise FileNameError(f"{raw!r}: git cannot store anything named .git")
        if part.endswith((" ", ".")):
            raise FileNameError(f"{raw!r}: a name cannot end with a space or a dot")
        if len(part.encode()) > MAX_NAME_BYTES:
            raise FileNameError(f"{raw!r}: a name is at most {MAX_NAME_BYTES} bytes")
    if not inside(path, folders):
        where = ", ".join(f or "." for f in folders) or "none: only listed files are shared"
        raise FileNameError(f"{raw!r} is outside the shared folders ({where})")
    return path


def check_rename(old: str, new: str) -> None:
    """Refuse a rename that only changes letter case (a case-insensitive file system
    would lose one of the two names); `FileNameError`."""
    if old != new and old.lower() == new.lower():
        raise FileNameError(
            f"{old} → {new}: a rename that only changes letter case is refused "
            "(it breaks on case-insensitive file systems); rename through another name"
        )


def second_name(path: str, taken: set[str]) -> str:
    """A clear name for a second file created at `path`: `name (2).ext`, `name (3).ext`…"""
    folder, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension (or a dotfile)
        stem, dot, ext = name, "", ""
    n = 2
    while True:
        candidate = f"{folder}{slash}{stem} ({n}){dot}{ext}"
        if candidate not in taken:
            return candidate
        n += 1
