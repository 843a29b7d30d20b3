"""Plugins that misbehave, each in its own way (installed by the tests through entry points)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import pycrdt

from gitrtc.plugins import DocumentKind, KindLimits, Op, Service, ServiceCall


class _Text(DocumentKind):
    roots: ClassVar[dict[str, type]] = {"source": pycrdt.Text}
    limits = KindLimits(seconds=0.5)

    def load(self, data: bytes, doc: pycrdt.Doc[Any]) -> None:
        doc.get("source", type=pycrdt.Text).insert(0, data.decode())

    def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
        return str(doc.get("source", type=pycrdt.Text)).encode()


class Raises(_Text):
    name = "raises"
    patterns = ("*.raises",)

    def load(self, data: bytes, doc: pycrdt.Doc[Any]) -> None:
        raise RuntimeError("cannot parse this")


class Hangs(_Text):
    name = "hangs"
    patterns = ("*.hangs",)

    def load(self, data: bytes, doc: pycrdt.Doc[Any]) -> None:
        time.sleep(3600)


class Invalid(_Text):
    name = "invalid"
    patterns = ("*.invalid",)

    def render(self, doc: pycrdt.Doc[Any], original: bytes) -> Any:
        return "a str, not bytes"


class Lossy(_Text):
    name = "lossy"
    patterns = ("*.lossy",)

    def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
        return b"something else"


class Stalls(_Text):
    """Loads fine; hangs writing back once someone typed "hang"."""

    name = "stalls"
    patterns = ("*.stalls",)

    def render(self, doc: pycrdt.Doc[Any], original: bytes) -> bytes:
        text = str(doc.get("source", type=pycrdt.Text))
        if "hang" in text:
            time.sleep(3600)
        return text.encode()


class NotAKind:
    name = "notakind"


class Flood(Service):
    """Floods, hangs, raises and returns what is not JSON, on request."""

    name = "flood"
    seconds = 0.5
    pushes_per_second = 20.0

    def ops(self) -> Mapping[str, Op]:
        return {
            "go": Op(self.go, "viewer"),
            "nap": Op(self.nap, "viewer"),
            "boom": Op(self.boom, "viewer"),
            "junk": Op(self.junk, "viewer"),
            "ping": Op(self.ping, "viewer"),
        }

    async def go(self, call: ServiceCall) -> str:
        for i in range(100_000):
            call.broadcast("spam", i)
        return "done"

    async def nap(self, call: ServiceCall) -> None:
        await asyncio.sleep(3600)

    async def boom(self, call: ServiceCall) -> None:
        raise ZeroDivisionError("oops")

    async def junk(self, call: ServiceCall) -> Any:
        return {1, 2}

    async def ping(self, call: ServiceCall) -> str:
        return "pong"
