"""The `kernel` service of the request channel: run a notebook's cells on the owner's machine.

Each notebook has one shared kernel (started on its first run, from the notebook's
`metadata.kernelspec`), whose outputs the server writes into the notebook's document;
a participant may instead switch a notebook to a private kernel of their own, whose
outputs reach only their connection. Running is the owner's choice (`rtc start
--kernels`); viewers never run, nor editors invited with `--no-run`.

Ops (`{"service": "kernel", "op": ..., "args": ...}` on a notebook room's channel):
`state` (a snapshot), `run {cells: [id, ...]}`, `run_all`, `interrupt`, `restart`,
`input_reply {value}`, `private {on: bool}`. Events: `kernel.status`, `kernel.cell`
(to the room for the shared kernel, to the one connection for a private one),
`kernel.stdin` (to the runner) and `kernel.outputs` (a private kernel's outputs).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pycrdt import Array, Map

from ..errors import KernelError, RequestError
from ..origins import KernelOutput
from ..requests import Call, broadcast, push
from .outputs import DocSink, ListSink
from .process import check_kernelspec
from .runner import KernelRunner

if TYPE_CHECKING:
    from ..rooms import Connection, Room
    from ..session import Session


class KernelService:
    """Every kernel of a session, reached through the request channel (bounded by the
    session's `Limits`: private kernels, cells per run, queue, output caps)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.limits = session.limits
        self.enabled = False
        self.owner = ""
        self.shared: dict[str, KernelRunner] = {}  # room name → its shared kernel
        self.private: dict[tuple[Connection, str], KernelRunner] = {}
        # held while a participant switches a notebook's private kernel on or off: their
        # later requests wait for it, so "my own kernel" then Shift-Enter runs privately
        self._switching: dict[tuple[Connection, str], asyncio.Lock] = {}
        self._specs: dict[str, str] = {}  # kernelspec names found installed
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rtc-outputs")
        self._closing: set[asyncio.Task[None]] = set()

    def describe(self) -> dict[str, Any]:
        """For `/api/session` and `rtc status`: whether code runs here, on whose machine."""
        return {
            "enabled": self.enabled,
            "owner": self.owner,
            "shared": {_path(self.session, name): r.status for name, r in self.shared.items()},
            "private": len(self.private),
        }

    # -- the channel ---------------------------------------------------------------------

    async def call(self, call: Call) -> Any:
        """Do one kernel request (see the module docstring)."""
        if call.op == "state":
            return self._snapshot(call.room, call.conn)
        op = _OPS.get(call.op)
        if op is None:
            raise RequestError(f"unknown kernel op {call.op[:40]!r}: one of state, {', '.join(_OPS)}")
        if call.room.kind != "notebook":
            raise RequestError("only notebooks run code: open a notebook")
        self._check_run(call.conn)
        key = (call.conn, call.room.name)
        if call.op == "private":
            lock = self._switching.setdefault(key, asyncio.Lock())
            async with lock:
                return await op(self, call)
        switch = self._switching.get(key)
        if switch is not None and switch.locked():
            async with switch:  # the switch asked before this request comes first
                pass
        return await op(self, call)

    def _check_run(self, conn: Connection) -> None:
        refusal = self.refusal(conn)
        if refusal:
            raise RequestError(refusal)

    def refusal(self, conn: Connection) -> str | None:
        """Why `conn` may not run code here, or None if it may."""
        p = conn.participant
        if not self.enabled:
            return "running code is off in this session: the owner can allow it with rtc start --kernels"
        if p.role == "viewer":
            return "viewers cannot run code: ask the owner for an editor link"
        if p.invite is not None and any(
            i.get("name") == p.invite and i.get("run") is False for i in self.session.manifest.invites
        ):
            return "your link does not allow running code: ask the owner for one that does"
        return None

    def disconnected(self, conn: Connection) -> None:
        """(channel hook) A connection left: its private kernels stop; its `input()` is answered."""
        for runner in self.shared.values():
            runner.disconnected(conn)
        for key in [k for k in self.private if k[0] is conn]:
            self._close_later(self.private.pop(key))
        for key in [k for k in self._switching if k[0] is conn]:
            del self._switching[key]

    async def close(self) -> None:
        """The session ends: stop every kernel (outputs written so far stay, and the full
        streams of truncated cells are on disk when this returns)."""
        runners = [*self.shared.values(), *self.private.values()]
        self.shared.clear()
        self.private.clear()
        await asyncio.gather(*(r.close() for r in runners))
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)

    def _close_later(self, runner: KernelRunner) -> None:
        task = asyncio.get_running_loop().create_task(runner.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- ops -------------------------------------------------------------------------------

    async def _run(self, call: Call) -> Any:
        ids = call.args.get("cells")
        most = self.limits.run_cells
        if not isinstance(ids, list) or not ids or len(ids) > most or not all(isinstance(i, str) for i in ids):
            raise RequestError(f"run needs cells: a list of 1 to {most} cell ids")
        cells = _code_cells(call.room)
        by_id = dict(cells)
        missing = [i for i in ids if i not in by_id and not _is_cell(call.room, i)]
        if missing:
            raise RequestError(f"no cell with id {missing[0][:60]!r} in this notebook")
        wanted = [(i, by_id[i]) for i in ids if i in by_id]
        runner = await self._runner(call)
        return {"scope": runner.scope, "queued": runner.enqueue(wanted, call.conn) if wanted else []}

    async def _run_all(self, call: Call) -> Any:
        runner = await self._runner(call)
        cells = _code_cells(call.room)
        return {"scope": runner.scope, "queued": runner.enqueue(cells, call.conn) if cells else []}

    async def _interrupt(self, call: Call) -> Any:
        runner = self._existing(call)
        if runner is not None:
            await runner.interrupt()
        return {"scope": runner.scope if runner else self._scope(call)}

    async def _restart(self, call: Call) -> Any:
        runner = await self._runner(call)
        await runner.restart()
        return {"scope": runner.scope, "status": runner.status}

    async def _input_reply(self, call: Call) -> Any:
        value = call.args.get("value")
        if not isinstance(value, str) or len(value) > self.limits.input_chars:
            raise RequestError(f"input_reply needs value: a string of at most {self.limits.input_chars} characters")
        for runner in (self.private.get((call.conn, call.room.name)), self.shared.get(call.room.name)):
            if runner is not None and runner.asking is not None and runner.asking.conn is call.conn:
                runner.answer(call.conn, value)
                return {"scope": runner.scope}
        raise RequestError("no input is being asked of you")

    async def _private(self, call: Call) -> Any:
        on = call.args.get("on")
        if not isinstance(on, bool):
            raise RequestError("private needs on: true (my own kernel) or false (the shared kernel)")
        key = (call.conn, call.room.name)
        if not on:
            runner = self.private.pop(key, None)
            if runner is not None:
                await runner.close()
            return {"private": False}
        if key not in self.private:
            if len(self.private) >= self.limits.private_kernels:
                raise RequestError(
                    f"this session runs at most {self.limits.private_kernels} private kernels: "
                    "use the shared kernel, or ask someone to switch theirs off"
                )
            name = await self._kernel_name(call.room)
            conn = call.conn
            if conn.closed or key in self.private:  # it left, or asked twice, while we looked
                return {"private": not conn.closed}
            sink = ListSink(
                lambda cell, outputs, count: push(
                    conn,
                    "kernel.outputs",
                    {"scope": "private", "cell": cell, "outputs": outputs, "execution_count": count},
                )
            )
            self.private[key] = KernelRunner(
                "private",
                name,
                self._cwd(call.room),
                sink,
                lambda event, data: push(conn, event, data),
                self._outputs_dir(),
                self._executor,
                self.limits,
            )
        return {"private": True}

    # -- helpers ---------------------------------------------------------------------------

    def _scope(self, call: Call) -> str:
        return "private" if (call.conn, call.room.name) in self.private else "shared"

    def _existing(self, call: Call) -> KernelRunner | None:
        return self.private.get((call.conn, call.room.name)) or self.shared.get(call.room.name)

    async def _runner(self, call: Call) -> KernelRunner:
        """The kernel `call` goes to: the caller's private one if switched on, else the shared one."""
        private = self.private.get((call.conn, call.room.name))
        if private is not None:
            return private
        room = call.room
        runner = self.shared.get(room.name)
        if runner is None:
            name = await self._kernel_name(room)
            runner = self.shared.get(room.name)  # another request may have made it meanwhile
            if runner is None:
                runner = KernelRunner(
                    "shared",
                    name,
                    self._cwd(room),
                    DocSink(room, KernelOutput(room.path or "")),
                    lambda event, data: broadcast(room, event, data),
                    self._outputs_dir(),
                    self._executor,
                    self.limits,
                )
                self.shared[room.name] = runner
        return runner

    async def _kernel_name(self, room: Room) -> str:
        """The installed kernelspec the notebook names; a clear `KernelError` otherwise."""
        meta = room.doc.get("meta", type=Map)
        metadata = meta.get("metadata")
        spec = metadata.get("kernelspec") if isinstance(metadata, Map) else None
        if isinstance(spec, Map):
            spec = spec.to_py()
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not name:
            raise KernelError(
                "this notebook names no kernel (metadata.kernelspec): "
                "choose one in Jupyter and save, or add it to the notebook's metadata"
            )
        if name not in self._specs:
            self._specs[name] = await asyncio.to_thread(check_kernelspec, name)
        return name

    def _cwd(self, room: Room) -> Path:
        folder = PurePosixPath(room.path or "").parent
        return self.session.info.workdir / folder

    def _outputs_dir(self) -> Path:
        return self.session.store.path.parent / "outputs"

    def _snapshot(self, room: Room, conn: Connection) -> dict[str, Any]:
        shared = self.shared.get(room.name)
        private = self.private.get((conn, room.name))
        return {
            "enabled": self.enabled,
            "owner": self.owner,
            "refusal": self.refusal(conn),
            "private_on": private is not None,
            "shared": shared.describe() if shared else None,
            "private": private.describe() if private else None,
        }


def _code_cells(room: Room) -> list[tuple[str, str]]:
    """(id, source) of the notebook's code cells, in order."""
    out = []
    for cell in room.doc.get("cells", type=Array):
        if isinstance(cell, Map) and cell.get("cell_type") == "code" and isinstance(cell.get("id"), str):
            out.append((cell["id"], str(cell.get("source") or "")))
    return out


def _path(session: Session, room: str) -> str:
    entry = session.files.get(room)
    return entry.path if entry else room


def _is_cell(room: Room, cell_id: str) -> bool:
    return any(isinstance(c, Map) and c.get("id") == cell_id for c in room.doc.get("cells", type=Array))


_OPS = {
    "run": KernelService._run,
    "run_all": KernelService._run_all,
    "interrupt": KernelService._interrupt,
    "restart": KernelService._restart,
    "input_reply": KernelService._input_reply,
    "private": KernelService._private,
}

__all__ = ["KernelError", "KernelService"]
