"""A service with a panel for every file (tests that panels sit on built-in views too)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gitrtc.plugins import Op, Service, ServiceCall


class Hello(Service):
    name = "hello"
    static = Path(__file__).parent / "static"

    def ops(self) -> Mapping[str, Op]:
        return {"ping": Op(self.ping, "viewer")}

    async def ping(self, call: ServiceCall) -> str:
        return f"pong to {call.participant.name} on {call.path}"
