"""Typed origins for CRDT transactions: who or what made a change, and what follows.

Every transaction on a session's documents is tagged with one of these (`Origin`).
Whether a change is credited to someone and whether it must be written back to the
owner's file are decided here, from the origin, and nowhere else (`credit_for`,
`dirties_disk`): an edit is a participant's only if it arrived as a `ClientEdit` from
that participant's connection and changed something.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone connected to the session, as they identified themselves."""

    name: str
    email: str
    role: str  # "owner" | "editor" | "viewer"
    invite: str | None = None  # the `rtc invite` name whose link this is, if any

    @property
    def key(self) -> str:
        """A stable identity for crediting: the email if given, else the name."""
        return self.email.lower() if self.email else f"name:{self.name}"


@dataclass(frozen=True, slots=True, eq=False)
class ClientEdit:
    """An update received from a participant's connection.

    One per connection, compared by identity: pycrdt hashes the origin of every
    transaction, and a field-by-field hash cost more than the rest of tagging an update.
    """

    participant: Participant


@dataclass(frozen=True, slots=True)
class DiskLoad:
    """The initial load of a file from the owner's working tree."""

    path: str


@dataclass(frozen=True, slots=True)
class DiskMerge:
    """An out-of-band change of a file on disk, merged in as CRDT operations."""

    path: str


@dataclass(frozen=True, slots=True)
class StoreReplay:
    """Updates replayed from the durable log when a session resumes."""


@dataclass(frozen=True, slots=True)
class ServerEdit:
    """A change the server makes itself (the session room's state, the end notice)."""


@dataclass(frozen=True, slots=True)
class MovedCopies:
    """The server making one cell of the copies that moves made at the same time leave
    (each move deletes the cell and inserts a copy with its id: two moves, two copies)."""


def credit_for(origin: object) -> Participant | None:
    """Who a change with this origin is credited to as a co-author, if anyone.

    Only a participant's own edits, and only if they may edit: a file loaded or merged
    from disk is the owner's (the commit's author), a replay was credited when it first
    happened, and the server's own changes are nobody's. The caller credits only a
    change that changed something (a client's resync repeating what we have is not one).
    Rooms ask once per connection (its origin is fixed), so this costs nothing per update.
    """
    if isinstance(origin, ClientEdit) and origin.participant.role != "viewer":
        return origin.participant
    return None


def dirties_disk(origin: object) -> bool:
    """Whether a change with this origin makes the shared file's bytes on disk stale.

    A client's edit does. A load or merge from disk does too, but only in case the
    rendering differs from the bytes read (a normalized file, or client edits merged
    alongside): the write-back renders, compares with what the disk holds, and writes
    nothing when they are equal, so what was just read is never written back as is.
    A replay from the log does not (the resume's disk reconcile decides), nor does the
    server's own change (the session room has no file). A shared kernel's outputs do,
    and so does a plugin service's change.
    """
    return isinstance(origin, (ClientEdit, DiskMerge, DiskLoad, KernelOutput, ServiceEdit, MovedCopies))


def coalesced_on_disk(origin: object) -> bool:
    """Whether a change with this origin may reach the disk at a bounded rate
    (`disk.OUTPUT_WRITE_SECONDS`): a shared kernel's outputs, which are in the durable
    store and with every participant as they come."""
    return isinstance(origin, KernelOutput)


@dataclass(frozen=True, slots=True)
class KernelOutput:
    """Outputs (and execution counts) a shared kernel produced, written by the server.

    Credited to nobody (running a cell is not editing it), but the notebook on disk is
    stale after one (`dirties_disk`).
    """

    path: str


@dataclass(frozen=True, slots=True)
class ServiceEdit:
    """A change a plugin service made to a document (`gitrtc.plugins.Service`).

    Credited to nobody (the service is not a co-author), but the file on disk is stale
    after one (`dirties_disk`); `plugin` names the service, for history and the events.
    """

    plugin: str


@dataclass(frozen=True, slots=True, eq=False)
class RemoteSync:
    """Updates a client (`rtc join`'s mirror, a test client) received from the server.

    One per client, compared by identity: the client's observer sends every transaction
    except these back to the server, and reports these as remote changes.
    """


Origin = ClientEdit | DiskLoad | DiskMerge | StoreReplay | ServerEdit | KernelOutput | ServiceEdit | RemoteSync
