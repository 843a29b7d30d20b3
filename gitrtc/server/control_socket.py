"""The owner's control socket: the same application on a Unix-domain socket in `.git/rtc/`.

`rtc stop`, `status`, `commit`, `invite` and `kick` (`ownerapi.py`) connect here: no
address, TLS or host-name lookup on the way, and only this user can connect (the socket is
0600 in a 0700 folder); requests still carry the owner token, checked as over TCP.
"""

from __future__ import annotations

import logging
import os

from aiohttp import web

log = logging.getLogger(__name__)


async def serve_control_socket(runner: web.AppRunner, path: str) -> bool:
    """Serve `runner`'s application on the Unix socket `path` too; False (logged) when this
    file system or platform cannot, and the owner commands then use TCP."""
    folder = os.path.dirname(path)
    try:
        os.chmod(folder, 0o700)  # before the socket exists: nobody else may reach it meanwhile
        site = web.UnixSite(runner, path)  # a stale socket of a crashed session is replaced
        await site.start()
        os.chmod(path, 0o600)
    except (OSError, NotImplementedError) as exc:
        log.warning("no control socket at %s (%s): rtc stop and the other owner commands use TCP", path, exc)
        return False
    return True


def remove_control_socket(path: str) -> None:
    """Remove the socket file at the end (the listening socket is closed by the runner)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
