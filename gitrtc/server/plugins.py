"""The plugins' side of the HTTP API: their browser modules, and what `/api/session` and
`/api/status` say about them."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..plugins.loader import installed

if TYPE_CHECKING:
    from ..session import Session

#: What a plugin's static folder may serve (flat: no sub-folders).
SERVED = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".json": "application/json"}
CSP = "default-src 'none'"


@functools.cache
def _static_dirs() -> dict[str, Path]:
    """Plugin name → its static folder (kinds and services that declare one)."""
    plugins = installed()
    dirs: dict[str, Path] = {}
    holders: list[tuple[str, Path | None]] = [(k.name, k.static) for k in plugins.kinds]
    holders += [(name, cls.static) for name, cls in plugins.services.items()]
    for name, static in holders:
        if static is not None and Path(static).is_dir():
            dirs[name] = Path(static)
    return dirs


def view_url(name: str, module: str) -> str | None:
    """The URL of plugin `name`'s browser module `module`, if it ships one."""
    folder = _static_dirs().get(name)
    return f"/plugins/{name}/{module}" if folder is not None and (folder / module).is_file() else None


async def plugin_file(request: web.Request) -> web.StreamResponse:
    """`GET /plugins/{plugin}/{name}`: a file of a plugin's static folder (its view).

    No token: like the client at `/static/`, a plugin's code is public (it is in the
    package); names are checked against the folder's own listing.
    """
    folder = _static_dirs().get(request.match_info["plugin"])
    name = request.match_info["name"]
    if folder is None or name.startswith(".") or Path(name).suffix not in SERVED:
        raise web.HTTPNotFound()
    if name not in {p.name for p in folder.iterdir() if p.is_file()}:
        raise web.HTTPNotFound()
    headers = {"Content-Type": SERVED[Path(name).suffix], "Cache-Control": "no-cache", "Content-Security-Policy": CSP}
    return web.FileResponse(folder / name, headers=headers)


def describe(session: Session) -> dict[str, Any]:
    """For `/api/session`: each kind's view module and each service's panel and ops."""
    kinds = {k.name: view_url(k.name, "view.js") for k in installed().kinds if k.name not in ("text", "notebook")}
    services = [{**host.describe(), "panel": view_url(name, "panel.js")} for name, host in session.plugins.items()]
    return {"kinds": kinds, "services": services}


def status(session: Session) -> list[dict[str, Any]]:
    """For `/api/status` (`rtc status`): every plugin found and why one is not in use."""
    report = installed().report()
    for host in session.plugins.values():
        if host.broken:
            for item in report:
                if item["type"] == "service" and item["name"] == host.name and item["error"] is None:
                    item["error"] = f"stopped in this session: {host.broken}"
    return report
