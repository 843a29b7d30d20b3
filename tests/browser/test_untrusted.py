"""Untrusted content cannot cover the page: HTML outputs and Markdown stay in their box,
and a participant's presence colour never becomes CSS (issue 13)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from gitrtc import protocol

from ..support import YClient
from .conftest import expect, join, screenshot
from .helpers import README, room_url

pytestmark = pytest.mark.browser

COVER = "position: fixed; top: 0; left: 0; width: 100vw; height: 100vh; z-index: 2147483647; background: red"
SHIFT = "margin-top: -3000px; height: 6000px; width: 100%; background: blue"
NOTEBOOK = (
    json.dumps(
        {
            "cells": [
                {
                    "cell_type": "markdown",
                    "id": "md",
                    "metadata": {},
                    "source": [f'Hello <div class="fake-md" style="{COVER}">FAKE</div>'],
                },
                {
                    "cell_type": "code",
                    "execution_count": 1,
                    "id": "out",
                    "metadata": {},
                    "source": ["show()"],
                    "outputs": [
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {
                                "text/html": [
                                    f'<div class="fake-out" style="{COVER}">FAKE PAGE</div>',
                                    f'<div class="fake-shift" style="{SHIFT}">SHIFTED</div>',
                                ],
                                "text/plain": ["<fake>"],
                            },
                        }
                    ],
                },
            ],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )
    + "\n"
)


def hit(page: Any, selector: str) -> bool:
    """Whether the element at the centre of `selector`'s box is that element (or inside it)."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return page.evaluate(
        "([s, x, y]) => { const e = document.elementFromPoint(x, y); return !!e && !!e.closest(s); }",
        [selector, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )


def test_an_output_cannot_cover_the_page(start_session, people):
    session = start_session({"README.md": README, "show.ipynb": NOTEBOOK})
    page = people.page()
    join(page, session.url_for("show.ipynb"), "Ann")
    nb = page.locator(".doc-notebook")
    expect(nb.locator(".fake-out")).to_have_count(1)
    expect(nb.locator(".fake-md")).to_have_count(1)
    screenshot(page, "untrusted-output")
    for control in (".file[data-path='README.md']", "button.me", ".brand"):
        assert hit(page, control), f"{control} is covered"
    positions = page.evaluate(
        "() => [...document.querySelectorAll('.fake-out, .fake-md')].map((e) => getComputedStyle(e).position)"
    )
    assert "fixed" not in positions and "absolute" not in positions
    # what is left of the styles is harmless and stays in the output's box
    assert page.evaluate("() => getComputedStyle(document.querySelector('.fake-shift')).marginTop") == "-3000px"
    assert hit(page, ".file[data-path='show.ipynb']")
    assert page.errors == []


def hold(url: str, frames: list[bytes], until: threading.Event) -> Callable[[], None]:
    """A pycrdt client that sends `frames` and stays connected until `until` is set."""
    ready = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        async with YClient(url) as client:
            await client.wait_synced()
            for frame in frames:
                await client.send_raw(frame)
            ready.set()
            await asyncio.to_thread(until.wait)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test thread below
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the client did not connect"
    assert not failure, failure

    def stop() -> None:
        until.set()
        thread.join(30)

    return stop


def presence(client_id: int, clock: int, user: dict[str, Any]) -> bytes:
    at_end = {"type": None, "tname": "source", "item": None, "assoc": 0}
    state = json.dumps({"user": user, "cursor": {"anchor": at_end, "head": at_end}}).encode()
    body = (
        protocol.write_var_uint(1)
        + protocol.write_var_uint(client_id)
        + protocol.write_var_uint(clock)
        + protocol.write_var_uint(len(state))
        + state
    )
    return protocol.awareness_frame(body)


def test_a_presence_colour_never_becomes_css(start_session, people):
    session = start_session({"README.md": README})
    page = people.page()
    join(page, session.url_for("README.md"), "Ann")
    evil = "#f00; position: fixed; inset: 0; z-index: 2147483647; background: url(https://evil.example/x.png)"
    stop = hold(
        room_url(session, "README.md", "Mallory"),
        [
            presence(1111, 1, {"name": "Mallory", "color": evil, "colorLight": evil}),
            presence(2222, 1, {"name": "Goodie", "color": "#00aa00", "colorLight": "#00aa0033"}),
        ],
        threading.Event(),
    )
    try:
        # the honest presence sent after the bad one is shown: the bad one had its chance
        expect(page.locator(".cm-ySelectionInfo", has_text="Goodie")).to_have_count(1)
        screenshot(page, "untrusted-presence")
        styles = page.evaluate("() => [...document.querySelectorAll('[style]')].map((e) => e.getAttribute('style'))")
        assert not any("evil" in s or "inset" in s or "2147483647" in s for s in styles), styles
        for control in (".file[data-path='README.md']", "button.me", ".doc-text .cm-content"):
            assert hit(page, control), f"{control} is covered"
        # (the page's own check above holds even against a server that relays it; ours does not)
        assert page.locator(".cm-ySelectionInfo", has_text="Mallory").count() == 0
    finally:
        stop()
