"""gitrtc's plugin API (version 1): document kinds and services from installed packages.

A package adds a kind of shared file with an entry point in the group
`gitrtc.documents` naming a `DocumentKind` subclass, and a back-end service with one in
`gitrtc.services` naming a `Service` subclass. See docs/plugins.md.
"""

from __future__ import annotations

from .api import API_VERSION, DocumentKind, KindLimits, Merged, Op, Role, Service

__all__ = ["API_VERSION", "DocumentKind", "KindLimits", "Merged", "Op", "Role", "Service", "ServiceCall"]


def __getattr__(name: str) -> object:
    if name == "ServiceCall":  # the session's side, imported only when asked for
        from .services import ServiceCall

        return ServiceCall
    raise AttributeError(name)
