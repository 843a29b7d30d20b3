"""Hatchling build hook: build the browser client (web/ -> gitrtc/static/) for wheels and
editable installs, so `pip install .` and `pip install -e .` ship a working client.

Runs `npm ci` in web/ when web/node_modules is missing, then `npm run build`. Needs node
and npm; set GITRTC_SKIP_WEB_BUILD=1 to skip (the server then serves a page that says the
client is not built).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NO_NPM = "gitrtc's browser client needs node and npm to build: install nodejs/npm"


class WebClientBuildHook(BuildHookInterface):
    """Build gitrtc/static/ from web/ before the wheel (or the editable wheel) is made."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        self._ship_labextension(build_data)
        if os.environ.get("GITRTC_SKIP_WEB_BUILD") == "1":
            return
        web = Path(self.root) / "web"
        if not (web / "package.json").is_file():
            # a wheel built from an sdist that already carries the built client
            if (Path(self.root) / "gitrtc" / "static" / "app.js").is_file():
                return
            raise RuntimeError("gitrtc's browser client sources (web/) are missing and no built client was found")
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise RuntimeError(NO_NPM)
        if not (web / "node_modules").is_dir():
            self._run([npm, "ci", "--no-audit", "--no-fund"], web)
        self._run([npm, "run", "build"], web)

    def _ship_labextension(self, build_data: dict[str, Any]) -> None:
        """Ship the prebuilt JupyterLab extension when it is built (labextension/build.sh,
        which scripts/setup runs: it needs JupyterLab itself, not in an isolated build)."""
        built = Path(self.root) / "gitrtc" / "labextension"
        if (built / "package.json").is_file():
            build_data.setdefault("shared_data", {})[str(built)] = "share/jupyter/labextensions/gitrtc"
        else:
            self.app.display_warning("gitrtc: the JupyterLab extension is not built (labextension/build.sh)")

    def _run(self, cmd: list[str], cwd: Path) -> None:
        self.app.display_info(f"gitrtc: npm {' '.join(cmd[1:])} (in web/)")
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise RuntimeError(f"gitrtc's browser client failed to build ({' '.join(cmd[1:])} in web/):\n{output}")
        if done.stdout.strip():
            self.app.display_info(done.stdout.strip().splitlines()[-1])
