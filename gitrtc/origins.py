"""Typed origins for CRDT transactions: who or what made a change.

Dirtiness and co-authorship are derived from these, never guessed: an edit is a
participant's only if it arrived as a `ClientEdit` from that participant's connection.
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


Origin = ClientEdit | DiskLoad | DiskMerge | StoreReplay


@dataclass(frozen=True, slots=True, eq=False)
class RemoteSync:
    """Updates a client (`rtc join`'s mirror, a test client) received from the server.

    One per client, compared by identity: the client's observer sends every transaction
    except these back to the server, and reports these as remote changes.
    """
