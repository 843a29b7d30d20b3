"""Render a stored (unfinished) session's result as a unified diff patch file."""

from __future__ import annotations

import asyncio
import difflib
from pathlib import Path
from typing import Any

from pycrdt import Doc

from . import safefs
from .errors import DocumentError, NotShareableError, StoreError
from .manifest import Manifest
from .plugins.loader import open_kind
from .store import Store
from .validation import DocumentGuard


async def stored_changes(store: Store, problems: list[str] | None = None) -> dict[str, tuple[bytes, bytes]]:
    """path → (original, current) for every file the stored session changed; a document
    that cannot be written (see `validation`) is left out and its problem added to `problems`."""
    manifest = Manifest.from_meta(await store.get_meta())
    kinds = {f.room: f for f in manifest.files}
    out: dict[str, tuple[bytes, bytes]] = {}
    touched = await store.rooms_with_updates()
    for room, path, kind, original in await store.files():
        if room not in touched or room not in kinds or original is None:
            continue  # unchanged (a file never opened was never read: it has no log either)
        doc: Doc[Any] = Doc()
        for update in await store.updates(room):
            doc.apply_update(update)
        try:
            current = DocumentGuard(doc, open_kind(kind, path, bytes(original)), path).render()
        except NotShareableError as exc:
            raise StoreError(f"{path}: {exc}") from exc
        except DocumentError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        if current != bytes(original):
            out[path] = (bytes(original), current)
    return out


def unified_patch(changes: dict[str, tuple[bytes, bytes]]) -> str:
    """A `git apply`-able unified diff of text changes."""
    parts = []
    for path, (old, new) in sorted(changes.items()):
        diff = difflib.unified_diff(
            old.decode("utf-8", "replace").splitlines(keepends=True),
            new.decode("utf-8", "replace").splitlines(keepends=True),
            f"a/{path}",
            f"b/{path}",
        )
        for line in diff:
            parts.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(parts)


async def write_patch(store_file: Path, target: Path, problems: list[str] | None = None) -> bool:
    """Write the stored session's changes to `target`; False if there were none. Documents
    that cannot be written are left out, their problems added to `problems`."""
    store = Store(store_file)
    await store.open()
    try:
        changes = await stored_changes(store, problems)
    except KeyError as exc:
        raise StoreError(f"no manifest in {store_file}") from exc
    finally:
        await store.close()
    if not changes:
        return False
    await asyncio.to_thread(safefs.write_private, target, unified_patch(changes).encode())
    return True
