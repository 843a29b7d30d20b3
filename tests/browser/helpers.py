"""pycrdt-side helpers for the browser tests: read a room as another client would."""

from __future__ import annotations

import json
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc, Text

from ..support import YClient, async_wait_until
from .conftest import Session, run_async

NOTEBOOK = (
    json.dumps(
        {
            "cells": [
                {
                    "cell_type": "markdown",
                    "id": "intro",
                    "metadata": {},
                    "source": ["# Shared analysis\n", "\n", "Some *text*."],
                },
                {
                    "cell_type": "code",
                    "execution_count": 1,
                    "id": "load",
                    "metadata": {"tags": ["setup"]},
                    "outputs": [{"name": "stdout", "output_type": "stream", "text": ["loaded\n"]}],
                    "source": ["data = [1, 2, 3]\n", "print('loaded')"],
                },
                {
                    "cell_type": "code",
                    "execution_count": 2,
                    "id": "total",
                    "metadata": {},
                    "outputs": [
                        {
                            "data": {"text/plain": ["6"]},
                            "execution_count": 2,
                            "metadata": {},
                            "output_type": "execute_result",
                        }
                    ],
                    "source": ["sum(data)"],
                },
                {"cell_type": "markdown", "id": "outro", "metadata": {}, "source": ["The end."]},
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python", "file_extension": ".py"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )
    + "\n"
)

README = "# Notes\n\nFirst line.\nSecond line.\n"


def room_url(session: Session, path: str, name: str = "Checker") -> str:
    return f"{session.ws_base}{session.room(path)}?token={session.info['token']}&name={name}"


def read_text(session: Session, path: str, expected: str | None = None) -> str:
    """The text of a room as a fresh pycrdt client receives it (waiting for `expected`)."""

    async def go() -> str:
        doc = Doc()
        text = doc.get("source", type=Text)
        async with YClient(room_url(session, path), doc) as client:
            await client.wait_synced()
            if expected is not None:
                await async_wait_until(lambda: str(text) == expected, what=f"{path} == {expected!r}")
            return str(text)

    return run_async(go())


def read_cells(session: Session, path: str) -> list[dict[str, Any]]:
    """The cells of a notebook room as a fresh pycrdt client receives them."""

    async def go() -> list[dict[str, Any]]:
        doc = Doc()
        model = YNotebook(ydoc=doc)
        async with YClient(room_url(session, path), doc) as client:
            await client.wait_synced()
            return model.get()["cells"]

    return run_async(go())


def source(cell: dict[str, Any]) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s
