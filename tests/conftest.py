"""Fixtures: a real repository in tmp_path and a real session server on a loopback port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitrtc import eventloop
from gitrtc.launch import Plan, prepare
from gitrtc.limits import DEFAULT, Limits
from gitrtc.server import serve
from gitrtc.session import Session

from .support import YClient, make_repo

NOTEBOOK = (
    json.dumps(
        {
            "cells": [
                {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# Title\n", "Some text"]},
                {
                    "cell_type": "code",
                    "execution_count": 1,
                    "id": "code1",
                    "metadata": {},
                    "outputs": [{"name": "stdout", "output_type": "stream", "text": ["hi\n"]}],
                    "source": ["print('hi')"],
                },
            ],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
        sort_keys=True,
        ensure_ascii=False,
    )
    + "\n"
)

FILES: dict[str, str | bytes] = {
    "README.md": "# Project\n\nHello world.\n",
    "docs/guide.md": "Guide\n=====\n\nText with émojis 📊.\n",
    "analysis.ipynb": NOTEBOOK,
    "src/tool.py": "def f():\n    return 1\n",
    "unrelated.txt": "not shared\n",
}


@dataclass
class Live:
    """A running session and how to reach it."""

    repo: Path
    session: Session
    port: int

    @property
    def tokens(self) -> dict[str, str]:
        return self.session.manifest.tokens

    def room(self, path: str) -> str:
        return self.session.manifest.room_for(path)

    def ws(self, path: str, role: str = "editor", name: str = "Alice", email: str = "alice@example.org") -> str:
        room = self.room(path) if path != "session" else self.session.manifest.session_room
        return f"ws://127.0.0.1:{self.port}/rooms/{room}?token={self.tokens[role]}&name={name}&email={email}"

    def client(self, path: str, role: str = "editor", name: str = "Alice", email: str = "alice@example.org") -> YClient:
        return YClient(self.ws(path, role, name, email))

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """In-process servers run on the loop `rtc start` runs on (uvloop where installed)."""
    return {"loop": eventloop.loop_factory()}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", FILES)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "limits(**fields): the `live` session's `Limits` (gitrtc/limits.py)")


def limits_of(request: pytest.FixtureRequest) -> Limits:
    """The `Limits` a test asks for with `@pytest.mark.limits(...)` (else the defaults)."""
    marker = request.node.get_closest_marker("limits")
    return Limits(**marker.kwargs) if marker else DEFAULT


@asynccontextmanager
async def live_session(
    repo: Path, paths: list[str], limits: Limits = DEFAULT, kernels: bool = False
) -> AsyncIterator[Live]:
    """A real session on `repo`'s `paths` (with `kernels`: running code allowed), served on
    a free loopback port."""
    launched = await prepare(Plan(cwd=repo, paths=paths, limits=limits, kernels=kernels))
    runner, port = await serve(launched.session, "127.0.0.1", 0)
    try:
        yield Live(repo, launched.session, port)
    finally:
        await runner.cleanup()
        await launched.session.close()
        launched.lock.close()


@pytest.fixture
async def live(repo: Path, request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    async with live_session(repo, ["README.md", "docs", "analysis.ipynb", "src"], limits_of(request)) as session:
        yield session
