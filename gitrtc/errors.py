"""The one exception tree of gitrtc.

Every error a user can act on derives from `RtcError`; its message is one line that says
what happened and what to do. The CLI turns these (and only these) into a one-line exit.
"""

from __future__ import annotations


class RtcError(Exception):
    """Base of every expected gitrtc failure; the message is meant for the user."""


class RepositoryError(RtcError):
    """The folder is not a usable git checkout (no repository, detached HEAD, unborn branch)."""


class PathError(RtcError):
    """A path given to share is missing, outside the repository, or leaves it by a symlink."""


class SessionRunningError(RtcError):
    """Another live session already runs in this repository."""


class NoSessionError(RtcError):
    """No running session was found where one was expected."""


class NotShareableError(RtcError):
    """A file cannot be shared (binary, not UTF-8, too large, unknown format)."""


class DocumentError(RtcError):
    """A shared document could not be turned back into file bytes."""


class CommitError(RtcError):
    """The end-of-session commit could not be made; the session's result stays in the store."""


class BranchMovedError(CommitError):
    """The branch moved and the moved commits touch the session's files."""


class StoreError(RtcError):
    """The durable session store is unreadable or cannot be written."""


class ProtocolError(RtcError):
    """A malformed or unsupported y-websocket message."""


class MessageTooBigError(ProtocolError):
    """A message exceeds the size limit."""


class PermissionDeniedError(ProtocolError):
    """A read-only participant tried to change a document."""


class JoinError(RtcError):
    """`rtc join` cannot mirror the session into the given folder."""


class UnknownRoomError(ProtocolError):
    """No such room in this session (close code 4404)."""


class StaleEpochError(ProtocolError):
    """The room belongs to another epoch of the session: reload (close code 4410)."""


class SessionEndedError(RtcError):
    """The session has ended or is ending: no new connections or edits (close code 4410)."""


class UnknownInviteError(RtcError):
    """`rtc kick` named nobody who was invited (or `rtc invite` got no name)."""


class RequestError(RtcError):
    """A request on a room's request channel was refused (answered, the connection kept)."""


class KernelError(RequestError):
    """A kernel could not be started, or is not there to take a request."""
