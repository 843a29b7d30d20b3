"""Rooms: one shared document, its awareness, and the connections editing it.

Transport-agnostic: a `Connection` talks to its peer through any `Transport` (the
aiohttp WebSocket adapter in `server/ws.py`, or an in-memory one). The hot path for an
edit is: parse → apply to the doc (tagged with the sender's `ClientEdit` origin) →
append to the durable log → once durable, forward the received bytes to the others.
Nothing is dropped: a writer faster than the disk waits (`Store.wait_capacity`), and a
reader that cannot keep up is disconnected with close code 1013 and resyncs on reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from pycrdt import Awareness, Doc, merge_updates

from . import awareness, protocol
from .errors import ProtocolError, RejectedEditError, TooSlowError
from .limits import DEFAULT, Limits
from .origins import ClientEdit, DiskMerge, MovedCopies, Participant, credit_for
from .protocol import MessageType, SyncType
from .store import Store
from .validation import DocumentGuard

if TYPE_CHECKING:
    from .celldeletes import DeleteWatch

log = logging.getLogger(__name__)

_SYNC, _STEP1, _UPDATE = MessageType.SYNC, SyncType.STEP1, SyncType.UPDATE
_EMPTY_UPDATE = protocol.EMPTY_UPDATE


class Transport(Protocol):
    """The few things a room needs from a network connection."""

    def try_send(self, frames: list[bytes]) -> bool:
        """Send these binary messages now, in one write, if that needs no waiting; else False."""
        ...

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message, waiting for the peer to take it if need be."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the connection with a code and a short ASCII reason."""
        ...


class Connection:
    """One participant's connection to one room, with its own bounded send queue."""

    #: Whether the room posts its room-wide frames to this connection one by one (a
    #: relay's client gets them through its relay: `Room.relay` publishes each once).
    fanout = True

    def __init__(self, transport: Transport, participant: Participant, limits: Limits = DEFAULT) -> None:
        self.transport = transport
        self.participant = participant
        #: The origin of this connection's edits (one object, not one per update).
        self.origin = ClientEdit(participant)
        #: Who this connection's changes are credited to (`origins.credit_for`, asked once).
        self.credit = credit_for(self.origin)
        self._max_queued_bytes = limits.max_queued_bytes
        self._max_queued_frames = limits.max_queued_frames
        #: The awareness client ids this connection introduced (it alone may update them).
        self.awareness_ids: set[int] = set()
        #: Its last accepted presence, which a repeat may skip the checks for (`awareness.Heartbeat`).
        self.heartbeat: awareness.Heartbeat | None = None
        #: Whether document updates are accepted (not for viewers, nor in the session room,
        #: whose document only the server writes).
        self.may_write = participant.role != "viewer"
        #: An `rtc join` mirror's connection (`?client=join`): it holds every file, none
        #: is "open" in an editor, so it never keeps a file from being deleted (the mirror
        #: keeps its own unsent local changes aside).
        self.mirror = False
        self.closed = False
        self.close_code: int | None = None
        #: Called once when the server closes this connection (the room forgets it at once).
        self.on_close: Callable[[], None] | None = None
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._batch: list[bytes] = []
        #: Runs only while there is a backlog (most connections never need one).
        self._sender: asyncio.Task[None] | None = None

    @property
    def read_only(self) -> bool:
        """Whether this connection may only read."""
        return not self.may_write

    def enqueue(self, frame: bytes) -> None:
        """Send a frame after everything posted or queued before it."""
        self.flush()
        self._send([frame])

    def post(self, frame: bytes) -> bool:
        """Add a frame to this tick's batch, which `flush` sends; True if it is the first."""
        if self.closed:
            return False
        self._batch.append(frame)
        return len(self._batch) == 1

    def flush(self) -> None:
        """Send the frames posted so far, in one socket write when the socket takes them."""
        if self._batch:
            batch, self._batch = self._batch, []
            self._send(batch)

    def _send(self, frames: list[bytes]) -> None:
        """In order: at once when nothing is waiting and the socket takes them, else queued
        for the sender task; disconnect the reader if it falls too far behind."""
        if self.closed:
            return
        if self._sender is None and self.transport.try_send(frames):
            return
        for frame in frames:
            if self._queued_bytes + len(frame) > self._max_queued_bytes or len(self._queue) >= self._max_queued_frames:
                self.close_soon(TooSlowError.close_code, "too slow: reconnect to resync")
                return
            self._queue.append(frame)
            self._queued_bytes += len(frame)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_backlog())

    async def _send_backlog(self) -> None:
        try:
            while self._queue and not self.closed:
                frame = self._queue.popleft()
                self._queued_bytes -= len(frame)
                await self.transport.send_bytes(frame)  # waits while the peer's socket is full
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away mid-send; the reader side sees the close and cleans up.
            log.debug("send to %s stopped: %s", self.participant.name, exc)
            self._stop(None)
        finally:
            self._sender = None

    async def drain(self) -> None:
        """Wait until everything posted or queued has been handed to the transport."""
        self.flush()
        sender = self._sender
        if sender is not None and not self.closed:
            await asyncio.wait({sender})

    def _stop(self, code: int | None) -> bool:
        """Stop sending at once and tell the room; False if already stopped."""
        if self.closed:
            return False
        self.closed = True
        self.close_code = code
        self._batch = []
        self._queue.clear()
        self._queued_bytes = 0
        if self.on_close is not None:
            self.on_close()
        sender = self._sender
        if sender is not None and asyncio.current_task() is not sender:
            sender.cancel()  # a send blocked on a full socket must not hold the close frame back
        return True

    def close_soon(self, code: int, reason: str) -> None:
        """Close from synchronous code (fan-out): stop now, send the close frame in a task."""
        if self._stop(code):
            asyncio.get_running_loop().create_task(self.transport.close(code, reason))

    async def close(self, code: int, reason: str) -> None:
        """Send what was posted this tick if the socket takes it, stop, close the transport."""
        self.flush()
        if self._stop(code):
            await self.transport.close(code, reason)


class Room:
    """A shared document and everyone connected to it."""

    def __init__(
        self,
        name: str,
        path: str | None,
        kind: str,
        doc: Doc[Any],
        store: Store | None,
        on_change: Callable[[Room, object], None] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.kind = kind
        self.doc = doc
        self.store = store
        self.awareness = Awareness(doc)
        #: Which connection introduced each client's awareness state (see `awareness.py`).
        self.awareness_owners: dict[int, Connection] = {}
        self.connections: set[Connection] = set()
        #: The connections `_post` visits: all but relays' clients (`Connection.fanout`), so
        #: an update costs the owner nothing per reader on a relay.
        self.readers: set[Connection] = set()
        self.accepting = True
        self.logged_since_compaction = 0
        #: Checks clients' updates before they are applied (a shared file's room; see `validation`).
        self.guard: DocumentGuard | None = None
        #: A notebook's check of cell deletions against edits their sender had not seen.
        self.cell_deletes: DeleteWatch | None = None
        self._on_change = on_change
        #: Where REQUEST frames go (`requests.RequestChannel.receive`); None: ignored.
        self.requests: Callable[[Room, Connection, bytes], Awaitable[None]] | None = None
        #: The step 2 for a new client, kept until the next change (all changes go through
        #: this class, which drops it).
        self._full_step2: bytes | None = None
        #: Connections with frames posted this tick, flushed once the tick's work is done.
        self._posted: list[Connection] = []
        #: Also given every frame sent to the whole room, with its sender (`relay.owner`
        #: publishes it once for all relays' clients); None without relays.
        self.relay: Callable[[Room, bytes, Connection | None], None] | None = None

    async def join(self, conn: Connection) -> None:
        """Add a connection: send our state vector and everyone's presence."""
        self.connections.add(conn)
        if conn.fanout:
            self.readers.add(conn)
        conn.enqueue(protocol.sync_step1(self.doc))
        if self.awareness.states:
            ids = list(self.awareness.states)
            conn.enqueue(protocol.awareness_frame(self.awareness.encode_awareness_update(ids)))

    def leave(self, conn: Connection) -> None:
        """Remove a connection and tell the others its presence is gone."""
        self.connections.discard(conn)
        self.readers.discard(conn)
        mine = [i for i in conn.awareness_ids if self.awareness_owners.get(i) is conn]
        gone = [i for i in mine if i in self.awareness.states]
        if gone:
            self.awareness.remove_awareness_states(gone, "disconnect")
            self._fanout(protocol.awareness_frame(self.awareness.encode_awareness_update(gone)), None)
        for client_id in mine:  # a long session's comings and goings leave nothing behind
            del self.awareness_owners[client_id]
            self.awareness.meta.pop(client_id, None)

    async def receive(self, conn: Connection, frame: bytes) -> None:
        """Handle one frame from `conn`; `ProtocolError` if it is malformed."""
        msg = protocol.parse(frame)
        if msg.type is _SYNC:
            if msg.sync is _STEP1:
                conn.enqueue(self._step2_for(msg.payload))
                return
            store = self.store
            if store is not None and not store.has_capacity and conn.may_write:
                await store.wait_capacity()  # the one wait on an update's path (writer backpressure)
            self._receive_update(conn, frame, msg)
        elif msg.type is MessageType.AWARENESS:
            self._receive_awareness(conn, frame, msg.payload)
        elif msg.type is MessageType.QUERY_AWARENESS:
            ids = list(self.awareness.states)
            conn.enqueue(protocol.awareness_frame(self.awareness.encode_awareness_update(ids)))
        elif msg.type is MessageType.REQUEST:
            if self.requests is not None:
                await self.requests(self, conn, msg.payload)
        # AUTH messages from clients carry nothing for the server.

    def _step2_for(self, state_vector: bytes) -> bytes:
        """The sync step 2 answering `state_vector`.

        A new client's vector is empty; its answer (the whole document, the costly
        encode) is kept until the next change, so a crowd joining at once costs one.
        """
        if state_vector == protocol.EMPTY_STATE_VECTOR:
            if self._full_step2 is None:
                self._full_step2 = protocol.sync_step2(self.doc.get_update())
            return self._full_step2
        try:
            return protocol.sync_step2(self.doc.get_update(state_vector))
        except Exception as exc:  # pycrdt raises plain exceptions for undecodable input
            raise ProtocolError(f"malformed state vector: {exc}") from exc

    def _receive_update(self, conn: Connection, frame: bytes, msg: protocol.Message) -> None:
        """A sync update or step 2, once the store has room: checked, applied, logged and
        (once durable) forwarded. Synchronous (no coroutine of its own): every edit takes it."""
        update = msg.payload
        if update == _EMPTY_UPDATE:
            return
        if not conn.may_write:
            if protocol.would_change(self.doc, update):
                conn.enqueue(protocol.permission_denied("read-only"))
            return
        if not self.accepting:
            conn.enqueue(protocol.permission_denied("session-ending"))
            return
        origin = conn.origin
        # A client sends an update message only for its own local change; a step 2 (sent on
        # every connect) often repeats what we have, so it is checked before it is applied.
        # No document observer runs on this hot path (it would encode every update again).
        is_update = msg.sync is _UPDATE
        changed = is_update or protocol.would_change(self.doc, update)
        checked = None
        guard = self.guard
        if changed and guard is not None:
            try:
                checked = guard.check(update)
            except RejectedEditError as exc:  # not applied, not forwarded: the sender is told why
                log.info("refused an edit of %s by %s: %s", self.path, conn.participant.name, exc)
                conn.enqueue(protocol.permission_denied(f"invalid-edit: {exc}".encode("ascii", "replace").decode()))
                return
        self._full_step2 = None
        watch = self.cell_deletes
        noted = late = None
        if watch is not None and checked is not None:
            noted = watch.before(update) if checked.structural else None
            # an edit of a cell deleted meanwhile (a join checks that on its side)
            late = watch.late(update) if watch.graves and not conn.mirror else None
        try:
            with self.doc.transaction(origin=origin):
                self.doc.apply_update(update)
        except Exception as exc:  # pycrdt raises plain exceptions for undecodable updates
            raise ProtocolError(f"malformed update: {exc}") from exc
        credit = changed
        if checked is not None and guard is not None:
            guard.accept(checked)
            credit = checked.credit  # edits of roots the file does not render earn no credit
        forward = frame if is_update else protocol.sync_update(update)
        store = self.store
        if store is None:
            self._fanout(forward, conn)
        else:
            store.append(self.name, update, conn.credit if credit else None, self._forward_stored, forward, conn)
            self.logged_since_compaction += 1
        if changed and self._on_change is not None:
            self._on_change(self, origin)
        if watch is not None and noted is not None:
            watch.after(noted, conn.participant.name, self.edit)  # a cell with unseen edits comes back
        if watch is not None and checked is not None and checked.structural:
            watch.merge_copies(self.edit)  # two moves of one cell at once: one cell again
        if watch is not None and late:
            watch.bring_back(late, update, self.edit)  # so does a cell edited after its delete

    def _log_and_forward(
        self, update: bytes, forward: bytes, sender: Connection | None, credit: Participant | None
    ) -> None:
        if self.store is None:
            self._fanout(forward, sender)
        else:
            self.store.append(self.name, update, credit, self._forward_stored, forward, sender)
            self.logged_since_compaction += 1

    def _receive_awareness(self, conn: Connection, frame: bytes, payload: bytes) -> None:
        """Apply and forward a client's presence, unless `awareness.refusal` refuses it."""
        owners = self.awareness_owners
        beat = conn.heartbeat
        if beat is not None and owners.get(beat.client_id) is conn and awareness.repeats(payload, beat):
            # the same state again, new clock: refusal would say what it said (`awareness.Heartbeat`)
            try:
                self.awareness.apply_awareness_update(payload, conn)
            except (ValueError, UnicodeDecodeError, RuntimeError, IndexError) as exc:
                raise ProtocolError(f"malformed awareness update: {exc}") from exc
            self._fanout(frame, conn)
            return
        entries = awareness.parse(payload)
        # ids of other people's connections (the same person reconnecting before their old
        # connection is dropped takes theirs over)
        others = [
            e.client_id
            for e in entries
            if (owner := owners.get(e.client_id, conn)) is not conn and owner.participant != conn.participant
        ]
        refused = awareness.refusal(
            entries, conn.participant.role, conn.awareness_ids, others, self.awareness.client_id
        )
        if refused is not None:
            conn.enqueue(protocol.permission_denied(refused))
            return
        try:
            self.awareness.apply_awareness_update(payload, conn)
        except (ValueError, UnicodeDecodeError, RuntimeError, IndexError) as exc:
            raise ProtocolError(f"malformed awareness update: {exc}") from exc
        for entry in entries:
            previous = owners.get(entry.client_id)
            if previous is not None and previous is not conn:
                previous.awareness_ids.discard(entry.client_id)
            conn.awareness_ids.add(entry.client_id)
            owners[entry.client_id] = conn
        conn.heartbeat = awareness.heartbeat(payload, entries)
        self._fanout(frame, conn)

    def _fanout(self, frame: bytes, sender: Connection | None) -> None:
        """Send `frame` to everyone but `sender`, batched per reader over this tick so a
        burst of updates costs each reader one socket write, not one per update."""
        if self._post(frame, sender):
            asyncio.get_running_loop().call_soon(self._flush_posted)

    def _forward_stored(self, frame: bytes, sender: Connection | None) -> Callable[[], None] | None:
        """(store callback) Post a durable update to everyone but `sender`; the flush is
        returned for the store to run after the whole batch, which saves the loop a turn
        per keystroke over `_fanout`'s next-tick flush."""
        return self._flush_posted if self._post(frame, sender) else None

    def _post(self, frame: bytes, sender: Connection | None) -> bool:
        """Add `frame` to the readers' batches; True if a flush is now due (none was)."""
        posted = self._posted
        first = not posted
        for conn in self.readers:  # `Connection.post`, inline: this runs per reader per update
            if conn is not sender and not conn.closed:
                batch = conn._batch
                batch.append(frame)
                if len(batch) == 1:
                    posted.append(conn)
        if self.relay is not None:
            self.relay(self, frame, sender)
        return first and bool(posted)

    def _flush_posted(self) -> None:
        posted, self._posted = self._posted, []
        for conn in posted:
            conn.flush()  # may close a slow reader, whose leave posts to the others
        if self._posted:
            asyncio.get_running_loop().call_soon(self._flush_posted)

    def edit(self, fn: Callable[[], object], origin: object) -> bool:
        """Run a server-side edit (`fn`) as one transaction; log and forward it.

        Used for disk loads and merges and the server's own changes: the change is
        appended to the durable log (credited as `origins.credit_for(origin)` says) and
        sent to every connection. Returns whether the document changed.
        """
        captured: list[bytes] = []
        self._full_step2 = None
        watch = self.cell_deletes
        # a save merged from the owner's disk may delete cells, and so does making one cell
        # of moved copies: graves for them (`lateedits`)
        graves = isinstance(origin, (DiskMerge, MovedCopies))
        noted = watch.before_server_edit() if watch is not None and graves else None
        subscription = self.doc.observe(lambda event: captured.append(event.update))
        try:
            with self.doc.transaction(origin=origin):
                fn()
        finally:
            self.doc.unobserve(subscription)
        if not captured:
            return False
        update = captured[0] if len(captured) == 1 else merge_updates(*captured)
        if self.guard is not None:
            self.guard.learn(update)
        if watch is not None and noted is not None:
            from . import yupdate
            from .celldeletes import Noted

            deletes = yupdate.decode(update, 1 << 30).deletes
            if deletes:
                who = "the owner's disk" if isinstance(origin, DiskMerge) else "someone at the same time"
                watch.after(Noted(noted.state, noted.ids, deletes), who, self.edit, keep=False)
        self._log_and_forward(update, protocol.sync_update(update), None, credit_for(origin))
        if self._on_change is not None:
            self._on_change(self, origin)
        return True

    async def close_all(self, code: int, reason: str) -> None:
        """Close every connection (session end, epoch change)."""
        await asyncio.gather(*(c.close(code, reason) for c in list(self.connections)))
        self.connections.clear()
        self.readers.clear()
