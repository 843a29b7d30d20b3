"""Capability tokens: where a request carries one, and what it may do."""

from __future__ import annotations

from aiohttp import web

from ..errors import ForbiddenError, UnauthorizedError
from ..session import Session


def request_token(request: web.Request) -> str | None:
    """The token of a request: `Authorization: Bearer T` or `?token=T`."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.query.get("token")


def require_role(request: web.Request, session: Session, *allowed: str) -> str:
    """The caller's role; `UnauthorizedError` (bad token) or `ForbiddenError` (role not
    allowed) otherwise, which the error middleware answers with their statuses."""
    role = session.role_for(request_token(request))
    if role is None:
        raise UnauthorizedError("missing or wrong token: use the link rtc start printed")
    if allowed and role not in allowed:
        raise ForbiddenError(f"the {role} link may not do this")
    return role


def origin_allowed(request: web.Request) -> bool:
    """A browser `Origin` must be this server's own; programs that send none are fine."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == f"{request.scheme}://{request.host}"
