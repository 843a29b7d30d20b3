"""gitrtc's plugin API (version 1): document kinds and services from installed packages.

A package adds a kind of shared file with an entry point in the group
`gitrtc.documents` naming a `DocumentKind` subclass, and a back-end service with one in
`gitrtc.services` naming a `Service` subclass. See docs/plugins.md.
"""

from __future__ import annotations

from .api import API_VERSION, Change, DocumentKind, KindLimits, Merged, Op, Role, Service
from .services import ServiceCall

__all__ = ["API_VERSION", "Change", "DocumentKind", "KindLimits", "Merged", "Op", "Role", "Service", "ServiceCall"]
