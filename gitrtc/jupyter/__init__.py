"""gitrtc inside a Jupyter server: the `gitrtc.jupyter` server extension.

Enabled by `jupyter-config/jupyter_server_config.d/gitrtc.json` (shipped in the wheel) or
`--ServerApp.jpserver_extensions='{"gitrtc.jupyter": True}'`. It adds, under the server's
base URL:

- `gitrtc/api/...` (Jupyter's own authentication): start a session of the server's
  checkout exactly as `rtc start` does, and the owner commands over the session's control
  socket (`ownerapi.py`): status, commit, stop, invite, kick (`handlers.py`);
- `gitrtc/proxy/...`: the running session's HTTP and WebSocket endpoints, so that on
  JupyterHub it is reachable under `/user/NAME/` with no extra port; gitrtc's token is
  still required, passed through unchanged (`proxy.py`);
- `gitrtc/remote/...` (Jupyter's authentication): a session elsewhere, for JupyterLab's
  "Join live session…" (a browser page may not open a WebSocket to another origin's
  session: the server refuses foreign `Origin`s).
"""

from __future__ import annotations

import atexit
from typing import Any

from .handlers import pause_started, setup_handlers


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The extension's entry point, as jupyter_server looks it up."""
    return [{"module": "gitrtc.jupyter"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension is (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "gitrtc"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the handlers on the server's application."""
    setup_handlers(serverapp.web_app, serverapp.root_dir)
    atexit.register(pause_started)  # the server's exit pauses the sessions it started
    serverapp.log.info("gitrtc: live sessions at %sgitrtc/", serverapp.base_url)
