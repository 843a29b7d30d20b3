"""Plugin services on the rooms' request channel (`requests.py`), one host each.

`ServiceHost` stands between the channel and a plugin's `Service`: it checks the op and
the caller's role, bounds a handler's time, turns a handler's crash into an error
answer (and an event for the owner), makes sure what it returns is JSON, and bounds
what it pushes: a service that floods its channel is stopped, with why, and the
session serves everything else. A handler reaches the session only through its
`ServiceCall`: the document (its changes tagged `ServiceEdit(plugin)`), pushes, and
its per-session state (kept in the session store).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pycrdt

from ..errors import PluginError, RequestError
from ..origins import Participant, ServiceEdit
from ..requests import Call, broadcast, push
from .api import ROLE_RANK, Op, Service
from .loader import installed, service_ops
from .sandbox import Sandbox

if TYPE_CHECKING:
    from ..rooms import Connection
    from ..session import Session

log = logging.getLogger(__name__)
T = TypeVar("T")


class ServiceCall:
    """One request to a plugin service, as its handler sees it."""

    def __init__(self, host: ServiceHost, call: Call) -> None:
        self._host = host
        self._call = call
        self.op = call.op
        #: The request's arguments (a JSON object).
        self.args: dict[str, Any] = call.args
        #: Who asks (from their token, never from the request).
        self.participant: Participant = call.conn.participant
        #: The shared file of the room asked, its kind and room name.
        self.path: str = call.room.path or ""
        self.kind: str = call.room.kind
        self.room: str = call.room.name

    @property
    def doc(self) -> pycrdt.Doc[Any]:
        """The room's live document: read it here, change it only through `edit`."""
        return self._call.room.doc

    def edit(self, fn: Callable[[], object]) -> bool:
        """Run `fn` (which changes `doc`) as one transaction tagged `ServiceEdit(name)`:
        logged, sent to everyone, written back, credited to nobody. True if it changed."""
        return self._call.room.edit(fn, ServiceEdit(self._host.name))

    def push(self, event: str, data: Any) -> None:
        """Send `{event: "SERVICE.event", data}` to the asking connection only."""
        self._host.count_push()
        push(self._call.conn, f"{self._host.name}.{event}", _json(data, self._host.name))

    def broadcast(self, event: str, data: Any) -> None:
        """Send `{event: "SERVICE.event", data}` to every connection of the room."""
        self._host.count_push()
        broadcast(self._call.room, f"{self._host.name}.{event}", _json(data, self._host.name))

    async def state(self) -> dict[str, Any]:
        """The service's per-session state (a JSON object; change it, then `save_state`)."""
        return await self._host.load_state()

    async def save_state(self) -> None:
        """Keep the state in the session store (it survives a restart of the session)."""
        await self._host.save_state()

    async def run_sync(self, fn: Callable[[], T]) -> T:
        """Run blocking `fn` in the plugin's own thread, within the service's time limit."""
        host = self._host
        return await asyncio.to_thread(host.sandbox.run, fn, host.cls.seconds, f"{self.op}")


class ServiceHost:
    """One plugin service in one session (implements `requests.Service`)."""

    def __init__(self, session: Session, cls: type[Service]) -> None:
        self.session = session
        self.cls = cls
        self.name = cls.name
        self.sandbox = Sandbox(f"service-{cls.name}")
        #: Why the service is stopped (it failed to start, or flooded), or None.
        self.broken: str | None = None
        self._ops: dict[str, Op] = {}
        self._state: dict[str, Any] | None = None
        rate = max(cls.pushes_per_second, 1.0)
        self._rate, self._burst = rate, rate * 10
        self._tokens, self._stamp = self._burst, time.monotonic()
        try:
            self.service: Service | None = cls()
            self._ops = service_ops(self.service)
        except Exception as exc:
            self.service = None
            self._stop(f"could not be started: {type(exc).__name__}: {exc}")

    def _stop(self, why: str) -> None:
        if self.broken is None:
            self.broken = why[:300]
            self.session.events(f"plugin service {self.name} stopped: {self.broken}")

    def describe(self) -> dict[str, Any]:
        """For `/api/session` and `rtc status`."""
        kinds = sorted(self.cls.kinds) if self.cls.kinds is not None else None
        return {"name": self.name, "ops": sorted(self._ops), "kinds": kinds, "error": self.broken}

    def count_push(self) -> None:
        """One more pushed message: a service past its rate is stopped (`RequestError`)."""
        if self.broken is not None:
            raise RequestError(f"service {self.name} is stopped: {self.broken}")
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            self._stop(f"flooded its channel (more than {self._rate:g} messages/s)")
            raise RequestError(f"service {self.name} is stopped: {self.broken}")
        self._tokens -= 1

    async def load_state(self) -> dict[str, Any]:
        if self._state is None:
            meta = await self.session.store.get_meta()
            value = meta.get(f"plugin.{self.name}")
            self._state = value if isinstance(value, dict) else {}
        return self._state

    async def save_state(self) -> None:
        state = await self.load_state()
        await self.session.store.set_meta({f"plugin.{self.name}": _json(state, self.name)})

    # -- requests.Service ------------------------------------------------------------------

    async def call(self, call: Call) -> Any:
        """Check and run one request (see the module docstring)."""
        if self.broken is not None or self.service is None:
            raise RequestError(f"service {self.name} is stopped: {self.broken}")
        kinds = self.cls.kinds
        if kinds is not None and call.room.kind not in kinds:
            raise RequestError(f"service {self.name} works on {', '.join(sorted(kinds))} files: open one")
        op = self._ops.get(call.op)
        if op is None:
            raise RequestError(f"unknown {self.name} op {call.op[:40]!r}: one of {', '.join(sorted(self._ops))}")
        role = call.conn.participant.role
        if ROLE_RANK.get(role, -1) < ROLE_RANK[op.role]:
            raise RequestError(f"{self.name}.{call.op} needs the {op.role} role; you are a {role}")
        try:
            data = await asyncio.wait_for(op.handler(ServiceCall(self, call)), self.cls.seconds)
        except RequestError:
            raise
        except TimeoutError:
            slow = f"{self.name}.{call.op} took longer than {self.cls.seconds:g} s"
            self.session.events(f"plugin service {slow}")
            raise RequestError(f"{slow}: try again later") from None
        except PluginError as exc:
            raise RequestError(str(exc)) from None
        except Exception as exc:  # the plugin's bug: logged in full, the owner and the asker told
            log.exception("plugin service %s.%s failed", self.name, call.op)
            why = f"{type(exc).__name__}: {exc}"
            self.session.events(f"plugin service {self.name}: {call.op} failed: {why}"[:300])
            raise RequestError(f"{self.name}.{call.op} failed on the server: {why}"[:300]) from None
        return _json(data, self.name)

    def disconnected(self, conn: Connection) -> None:
        if self.service is not None and self.broken is None:
            try:
                self.service.disconnected(conn)
            except Exception:  # the plugin's bug: logged, the others still told
                log.exception("plugin service %s failed on a disconnect", self.name)

    async def close(self) -> None:
        if self.service is not None:
            try:
                await asyncio.wait_for(self.service.close(), self.cls.seconds)
            except Exception:  # the plugin's bug: logged; the session still ends
                log.exception("plugin service %s failed to close", self.name)


def _json(data: Any, name: str) -> Any:
    """`data` if it is JSON (what the channel can send), else `RequestError`."""
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"service {name} returned data that is not JSON: {exc}"[:200]) from None
    return data


def add_services(session: Session) -> dict[str, ServiceHost]:
    """A host for every installed plugin service, registered on the session's channel."""
    hosts = {}
    for name, cls in installed().services.items():
        host = hosts[name] = ServiceHost(session, cls)
        session.requests.register(name, host)
    return hosts
