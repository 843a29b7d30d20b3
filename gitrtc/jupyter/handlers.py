"""The owner's REST API inside the Jupyter server (`gitrtc/api/...`, Jupyter's own auth).

Starting runs `rtc start --no-open --port 0 PATH...` in the server's root folder as a
detached process (its own process group), so the session is exactly one `rtc start`
would make: same store, same `session.json`; `rtc status` and `rtc stop` work on it
from a terminal, and it outlives a restart of the Jupyter server. Every other command
goes to the running session over its control socket (`ownerapi.call`), in a thread: those
calls block.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from .. import ownerapi
from ..errors import NoSessionError, RepositoryError, RtcError, SessionPausedError, SessionRunningError
from ..sessionfile import find_gitdir, pid_alive, read_session_file
from .proxy import LocalProxy, LocalRoomProxy, RemoteProxy, RemoteRoomProxy

#: How long a start may take before the Share command gives up waiting for `session.json`.
START_TIMEOUT = 60.0
#: The body fields each owner command passes on.
FIELDS: dict[str, tuple[str, ...]] = {
    "stop": ("message", "commit", "onto_branch"),
    "commit": ("message",),
    "invite": ("name", "viewer", "no_run"),
    "kick": ("name",),
}
#: The `rtc start` processes this server started (awaited, so none is left a zombie).
_children: set[asyncio.Task[int]] = set()
#: Their pids and git dirs: paused when the Jupyter server stops (`pause_started`).
_started: dict[int, Path] = {}
#: How long the Jupyter server's exit waits for each of its sessions to pause.
PAUSE_TIMEOUT = 30.0


class OwnerHandler(APIHandler):
    """Base of the owner commands: JSON in, JSON out, `RtcError`s as `{"error": ...}`."""

    @property
    def root(self) -> Path:
        return Path(self.settings["gitrtc_root"])

    def body(self) -> dict[str, Any]:
        """The request's JSON object (an empty one when there is no body)."""
        if not self.request.body:
            return {}
        try:
            found = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPError(400, "the body must be JSON") from None
        return found if isinstance(found, dict) else {}

    def answer(self, payload: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload))

    def fail(self, exc: RtcError) -> None:
        self.answer({"error": str(exc)}, exc.http_status if exc.http_status != 500 else 400)


class StatusHandler(OwnerHandler):
    """`GET gitrtc/api/status`: the running session (the owner's view) plus its proxied path."""

    @web.authenticated
    async def get(self) -> None:
        try:
            data = await asyncio.to_thread(ownerapi.running_session, self.root)
            status = await asyncio.to_thread(ownerapi.call, data, "GET", "/api/status")
        except SessionPausedError as exc:
            self.answer({"running": False, "paused": True, "message": str(exc)})
            return
        except RtcError as exc:
            self.answer({"running": False, "paused": False, "message": str(exc)})
            return
        proxy = self.base_url + "gitrtc/proxy/"
        name, email, prefix = await asyncio.to_thread(_owner, self.root)
        status.update(
            owner={"name": name, "email": email},
            root_in_repo=prefix,
            running=True,
            proxy_url=proxy + _fragment(str(status.get("url", ""))),
            proxy_readonly_url=proxy + _fragment(str(status.get("readonly_url", ""))),
            pid=data.get("pid"),
        )
        self.answer(status)


class StartHandler(OwnerHandler):
    """`POST gitrtc/api/start {paths, message?, kernels?, persistent?}`: `rtc start` them
    (persistent unless `persistent` is false)."""

    @web.authenticated
    async def post(self) -> None:
        body = self.body()
        paths = body.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise web.HTTPError(400, "paths must be a list of strings")
        try:
            await start_session(
                self.root,
                paths,
                message=body.get("message") if isinstance(body.get("message"), str) else None,
                kernels=body.get("kernels") is True,
                # paused, never lost, when the Jupyter server stops (`pause_started`)
                persistent=body.get("persistent") is not False,
            )
        except RtcError as exc:
            self.fail(exc)
            return
        self.answer({"started": True})


class CommandHandler(OwnerHandler):
    """`POST gitrtc/api/{stop,commit,invite,kick}`: the owner command of that name."""

    @web.authenticated
    async def post(self, command: str) -> None:
        body = self.body()
        fields = {k: body[k] for k in FIELDS[command] if k in body}
        try:
            data = await asyncio.to_thread(ownerapi.running_session, self.root)
            result = await asyncio.to_thread(ownerapi.call, data, "POST", f"/api/{command}", fields)
        except RtcError as exc:
            self.fail(exc)
            return
        if command == "stop" and result.get("ended"):
            await _exited(data.get("pid"))  # its store is gone then: status says "no session", not "paused"
        self.answer(result)


async def _exited(pid: object, timeout: float = 15.0) -> None:
    """Wait (bounded) for the session process `pid` to exit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if not (isinstance(pid, int) and pid_alive(pid)):
            return
        await asyncio.sleep(0.05)  # a process exit has no event to wait on here


def _owner(root: Path) -> tuple[str, str, str]:
    """The checkout's git identity (the owner's name in the live view, and the email that
    keeps the owner out of the co-author trailers) and where the Jupyter root is in the
    checkout (`""` at its top), to map the session's paths to the file browser's."""
    from .. import git

    try:
        repo = git.open_repo(root)
        name, email = git.owner_identity(repo)
    except RtcError:
        return "Owner", "", ""  # the session itself started, so git knows: only a race gets here
    workdir = Path(repo.workdir or root).resolve()
    try:
        prefix = root.resolve().relative_to(workdir).as_posix()
    except ValueError:
        prefix = ""
    return name, email, "" if prefix == "." else prefix


def _fragment(url: str) -> str:
    """`#t=TOKEN` of a session URL (empty when it has none)."""
    return "#" + url.partition("#")[2] if "#" in url else ""


async def start_session(root: Path, paths: list[str], message: str | None, kernels: bool, persistent: bool) -> None:
    """Run `rtc start` for `paths` (relative to `root`) detached; return once its
    `session.json` names it, or raise the one-line reason it gave for stopping."""
    gitdir = find_gitdir(root)
    if gitdir is None:
        raise RepositoryError(f"{root} is not inside a git checkout: sharing needs one")
    running = read_session_file(gitdir)
    if running and isinstance(running.get("pid"), int) and pid_alive(running["pid"]):
        raise SessionRunningError("a session is already running in this repository: end it before sharing again")
    args = [sys.executable, "-m", "gitrtc", "start", "--no-open", "--port", "0"]
    if message:
        args += ["-m", message]
    if kernels:
        args.append("--kernels")
    if persistent:
        args.append("--persistent")
    log = Path(gitdir) / "rtc" / "jupyter-start.log"
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    out = await asyncio.to_thread(open, log, "wb")
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            "--",
            *paths,
            cwd=root,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: the Jupyter server's Ctrl-C does not end it
            env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
        )
    finally:
        out.close()
    waiter = asyncio.ensure_future(proc.wait())
    _children.add(waiter)
    if persistent:
        _started[proc.pid] = Path(gitdir)
    waiter.add_done_callback(_children.discard)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline:
        data = read_session_file(gitdir)
        if data and data.get("pid") == proc.pid:
            return
        if waiter.done():
            raise NoSessionError(_last_line(log) or f"rtc start exited with status {proc.returncode}")
        await asyncio.sleep(0.1)
    raise NoSessionError(f"the session did not start within {START_TIMEOUT:.0f} s: see {log}")


def pause_started() -> None:
    """Pause the persistent sessions this Jupyter server started (SIGTERM: the session
    flushes, closes its connections with "restarting", and keeps its store), and wait for
    them: a session shared from JupyterLab is paused, never lost, when the server stops.
    `Share live…` or `rtc start` resumes it with the same links, `rtc stop` ends it.
    Called at the server process's exit (a module extension has no stop hook)."""
    waiting = []
    for pid, gitdir in list(_started.items()):
        data = read_session_file(gitdir)
        if data and data.get("pid") == pid and pid_alive(pid):  # still that session, not a reused pid
            os.kill(pid, signal.SIGTERM)
            waiting.append(pid)
    _started.clear()
    for pid in waiting:
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.05)  # a process's exit has no event to wait on here


def _running(pid: int) -> bool:
    """Whether `pid` still runs (reaping it when it is our exited child)."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child, or reaped already
        return pid_alive(pid)
    return done == 0


def _last_line(path: Path) -> str:
    """The last non-empty line of `rtc start`'s output (its one-line reason when it fails)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].removeprefix("Error: ") if lines else ""


def setup_handlers(web_app: Any, root_dir: str) -> None:
    """Add gitrtc's routes under the server's base URL."""
    base = web_app.settings.get("base_url", "/")
    web_app.settings["gitrtc_root"] = root_dir
    prefix = base.rstrip("/") + "/gitrtc"
    web_app.add_handlers(
        ".*$",
        [
            (prefix + "/api/status", StatusHandler),
            (prefix + "/api/start", StartHandler),
            (prefix + r"/api/(stop|commit|invite|kick)", CommandHandler),
            (prefix + r"/proxy/rooms/(.+)", LocalRoomProxy),
            (prefix + r"/proxy/(.*)", LocalProxy),
            (prefix + r"/remote/rooms/(.+)", RemoteRoomProxy),
            (prefix + r"/remote/(.*)", RemoteProxy),
        ],
    )
