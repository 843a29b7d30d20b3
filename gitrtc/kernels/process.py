"""One kernel process on the owner's machine, through jupyter_client.

`KernelProcess` starts a kernel from an installed kernelspec (`AsyncKernelManager`),
talks to it with an `AsyncKernelClient`, and routes what comes back (IOPub, shell
replies, stdin requests) to the `Execution` that asked, by the request's msg_id. A
watcher notices a kernel that died (killed, crashed, out of memory) and fails whatever
was running, so nobody waits for a reply that will never come.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import KernelError

log = logging.getLogger(__name__)


class Execution(Protocol):
    """What receives the messages of one execute request."""

    def on_iopub(self, msg_type: str, content: dict[str, Any]) -> None:
        """An IOPub message (output, status, execute_input) of this request."""
        ...

    def on_reply(self, content: dict[str, Any]) -> None:
        """The shell channel's execute_reply."""
        ...

    def on_stdin(self, content: dict[str, Any]) -> None:
        """The kernel asks for input (`input()`, `getpass`)."""
        ...

    def on_death(self, reason: str) -> None:
        """The kernel died before the request finished."""
        ...


def check_kernelspec(name: str) -> str:
    """The display name of kernelspec `name`; `KernelError` if none is installed (blocking:
    run it in a thread)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return str(KernelSpecManager().get_kernel_spec(name).display_name)
    except NoSuchKernel:
        raise KernelError(
            f"no kernel named {name!r} is installed on the owner's machine: "
            "pick another kernel in the notebook's metadata"
        ) from None


def _open_log(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")


def lower_priority(pid: int, nice: int) -> None:
    """Run the kernel `pid` (and the processes and threads it starts) `nice` steps below
    the server, so that a cell spinning a core leaves the server its turn: the session's
    keystrokes are served first on a busy machine, the cell only slows when they compete.
    The kernel leads its own process group (jupyter_client starts it in a new session),
    and `PRIO_PGRP` sets every thread of the group, those it starts later inheriting it.
    Not on Windows (no `setpriority`); a refusal is logged, the kernel runs as it is."""
    if not hasattr(os, "setpriority"):
        return
    try:
        target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)
        group = os.getpgid(pid)
        if group != os.getpgid(0):
            os.setpriority(os.PRIO_PGRP, group, target)
        else:  # a provisioner that kept it in our group: never lower the server itself
            os.setpriority(os.PRIO_PROCESS, pid, target)
    except OSError as exc:
        log.warning("could not lower the kernel's CPU priority: %s", exc)


class KernelProcess:
    """A started kernel and the readers that route its messages."""

    def __init__(
        self,
        name: str,
        cwd: Path,
        on_death: Callable[[str], None],
        log: Path | None = None,
        start_timeout: float = 60.0,
        watch_every: float = 0.5,
        nice: int = 0,
    ) -> None:
        self.name = name
        #: How much lower than the server's the kernel's CPU priority is (`lower_priority`).
        self.nice = nice
        #: Seconds the kernel may take to start and answer; between two looks at whether it lives.
        self.start_timeout = start_timeout
        self.watch_every = watch_every
        self.cwd = cwd
        #: Where the kernel process's own stdout/stderr go (not into the owner's terminal).
        self.log = log
        self._on_death = on_death
        self.km: Any = None
        self.kc: Any = None
        self.executions: dict[str, Execution] = {}
        self.dead: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: A private folder (0700) for the kernel's IPC sockets, removed at shutdown.
        self._sockets: str | None = None

    async def start(self) -> None:
        """Start the kernel and wait until it answers; `KernelError` if it cannot."""
        from jupyter_client.kernelspec import NoSuchKernel
        from jupyter_client.manager import AsyncKernelManager

        # IPC sockets in a private folder, not TCP ports: no other local user can reach the
        # kernel, and kernels started at once by several processes cannot race for a port
        # (a free TCP port picked by one can be taken by another before its kernel binds).
        self._sockets = tempfile.mkdtemp(prefix="rtc-kernel-")
        self.km = AsyncKernelManager(kernel_name=self.name, transport="ipc", ip=f"{self._sockets}/k")
        handle = await asyncio.to_thread(_open_log, self.log) if self.log is not None else None
        try:
            if handle is None:
                await self.km.start_kernel(cwd=str(self.cwd))
            else:
                await self.km.start_kernel(cwd=str(self.cwd), stdout=handle, stderr=handle)
        except NoSuchKernel:
            await self.shutdown()  # removes the sockets' folder
            raise KernelError(f"no kernel named {self.name!r} is installed on the owner's machine") from None
        except (OSError, RuntimeError) as exc:
            await self.shutdown()
            raise KernelError(f"the kernel {self.name!r} could not be started: {exc}") from exc
        finally:
            if handle is not None:
                handle.close()  # the kernel process has its own copy
        if self.nice and self.pid is not None:
            lower_priority(self.pid, self.nice)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            await self.kc.wait_for_ready(timeout=self.start_timeout)
        except Exception as exc:  # jupyter_client raises RuntimeError, or what a garbled reply gives
            await self.shutdown()
            raise KernelError(f"the kernel {self.name!r} did not start: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_iopub()),
            loop.create_task(self._read_shell()),
            loop.create_task(self._read_stdin()),
            loop.create_task(self._watch()),
        ]

    @property
    def pid(self) -> int | None:
        """The kernel process's id (tests kill it)."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    def execute(self, code: str, execution: Execution) -> str:
        """Send `code` to run; its messages go to `execution`. The msg_id."""
        if self.dead is not None:
            raise KernelError(f"the kernel is dead ({self.dead}): restart it")
        msg_id: str = self.kc.execute(code, allow_stdin=True, stop_on_error=False)
        self.executions[msg_id] = execution
        return msg_id

    def done(self, msg_id: str) -> None:
        """Stop routing messages of `msg_id`."""
        self.executions.pop(msg_id, None)

    def input(self, value: str) -> None:
        """Answer the kernel's pending input request."""
        self.kc.input(value)

    async def interrupt(self) -> None:
        """Interrupt what the kernel is running (a signal, or an interrupt request)."""
        if self.dead is None:
            await self.km.interrupt_kernel()

    async def _read_iopub(self) -> None:
        while True:
            msg = await self.kc.get_iopub_msg()
            execution = self.executions.get(msg.get("parent_header", {}).get("msg_id", ""))
            if execution is not None:
                execution.on_iopub(msg["header"]["msg_type"], msg.get("content", {}))
            # Messages already queued come back without a loop turn (a done future), so a
            # flooding kernel's burst would be read, decoded and handled in one go while
            # every room's keystrokes wait: one turn per message lets them in between.
            await asyncio.sleep(0)

    async def _read_shell(self) -> None:
        while True:
            msg = await self.kc.get_shell_msg()
            execution = self.executions.get(msg.get("parent_header", {}).get("msg_id", ""))
            if execution is not None and msg["header"]["msg_type"] == "execute_reply":
                execution.on_reply(msg.get("content", {}))

    async def _read_stdin(self) -> None:
        while True:
            msg = await self.kc.get_stdin_msg()
            execution = self.executions.get(msg.get("parent_header", {}).get("msg_id", ""))
            if msg["header"]["msg_type"] != "input_request":
                continue
            if execution is None:
                self.kc.input("")  # nobody to ask: an empty answer, not a kernel stuck forever
            else:
                execution.on_stdin(msg.get("content", {}))

    async def _watch(self) -> None:
        while await self.km.is_alive():  # noqa: ASYNC110 (nothing to wait on: a process is polled)
            await asyncio.sleep(self.watch_every)
        code = None
        provisioner = getattr(self.km, "provisioner", None)
        if provisioner is not None:
            code = await provisioner.poll()
        self.dead = f"the kernel process exited with code {code}" if code is not None else "the kernel process exited"
        if self.log is not None:
            self.dead += f" (its own output is in {self.log})"
        log.info("kernel %s: %s", self.name, self.dead)
        for execution in list(self.executions.values()):
            execution.on_death(self.dead)
        self.executions.clear()
        self._on_death(self.dead)

    async def shutdown(self) -> None:
        """Stop the readers and the kernel process (at once: its state is not kept)."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current), return_exceptions=True)
        self._tasks = []
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None and self.km.has_kernel:
            try:
                await self.km.shutdown_kernel(now=True)
            except (OSError, RuntimeError) as exc:
                log.warning("kernel %s did not shut down cleanly: %s", self.name, exc)
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
            self._sockets = None
