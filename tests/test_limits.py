"""Limits: oversized messages, readers that stop reading, writers faster than the fan-out."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import pytest
from pycrdt import Doc, Text

from gitrtc import protocol

from .conftest import Live
from .support import async_wait_until


@pytest.mark.limits(max_message_bytes=100_000)
async def test_oversized_message_closes_1009_and_others_continue(live: Live) -> None:
    async with live.client("README.md") as good, live.client("README.md", name="Big") as big:
        await good.wait_synced()
        await big.wait_synced()
        await big.send_raw(protocol.sync_update(b"\x00" * 200_000))
        assert await big.wait_closed() == 1009
        good.doc.get("source", type=Text).insert(0, "fine ")
        await async_wait_until(lambda: (live.repo / "README.md").read_text().startswith("fine "), what="disk")


async def raw_upgrade(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that reads nothing after the handshake (a frozen laptop)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def close_code_of(stream: bytes) -> int | None:
    """The status code of the first close frame in a server-to-client frame stream."""
    pos = 0
    while pos + 2 <= len(stream):
        opcode, length = stream[pos] & 0x0F, stream[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            length = int.from_bytes(stream[pos : pos + 2], "big")
            pos += 2
        elif length == 127:
            length = int.from_bytes(stream[pos : pos + 8], "big")
            pos += 8
        if opcode == 0x8:
            return int.from_bytes(stream[pos : pos + 2], "big")
        pos += length
    return None


@pytest.mark.limits(max_queued_bytes=4 * 1024 * 1024)
async def test_reader_that_stops_reading_is_closed_1013_while_healthy_readers_get_everything(live: Live) -> None:
    url = live.ws("README.md", name="Stuck")
    async with live.client("README.md") as writer, live.client("README.md", name="Healthy") as healthy:
        stuck_reader, stuck_writer = await raw_upgrade(live.port, url.split(f":{live.port}", 1)[1])
        await writer.wait_synced()
        await healthy.wait_synced()
        room = live.session.rooms[live.room("README.md")]
        stuck_conn = next(c for c in room.connections if c.participant.name == "Stuck")

        async def stuck_close_code() -> object:
            await async_wait_until(
                lambda: not any(c.participant.name == "Stuck" for c in room.connections),
                timeout=60,
                what="the server to drop the stuck reader",
            )
            assert stuck_conn.close_code == 1013
            data = await asyncio.wait_for(stuck_reader.read(), 30)  # all it was sent, up to the close
            return close_code_of(data)

        stuck_result = asyncio.ensure_future(stuck_close_code())
        text = writer.doc.get("source", type=Text)
        healthy_text = healthy.doc.get("source", type=Text)
        chunk = "x" * 100_000
        for _ in range(150):  # 15 MB through the room, at the pace of the healthy reader
            text.insert(0, chunk)
            expected = len(text)
            await async_wait_until(
                lambda expected=expected: len(healthy_text) == expected,
                timeout=30,
                what="the healthy reader receives every update",
            )
        assert str(healthy_text) == str(text)
        assert healthy.close_code is None
        assert await asyncio.wait_for(stuck_result, 30) == 1013
        stuck_writer.close()


async def test_resync_after_being_dropped_gets_the_full_document(live: Live) -> None:
    async with live.client("README.md") as writer:
        await writer.wait_synced()
        writer.doc.get("source", type=Text).insert(0, "before ")
        served = live.session.rooms[live.room("README.md")].doc.get("source", type=Text)
        await async_wait_until(lambda: str(served).startswith("before "), what="the edit at the server")
        doc = Doc()
        doc.get("source", type=Text)
        from .support import YClient

        async with YClient(live.ws("README.md", name="Late"), doc) as late:
            await late.wait_synced()
            assert str(doc.get("source", type=Text)).startswith("before # Project")


@pytest.mark.limits(ping_every=0.5)  # a busy test machine may stall the loop 0.2 s
async def test_a_peer_that_stops_answering_pings_is_dropped_while_one_that_answers_stays(live: Live) -> None:
    url = live.ws("README.md", name="Frozen")
    room_path = url.split(f":{live.port}", 1)[1]
    async with live.client("README.md", name="Awake") as awake, live.client("README.md") as writer:
        await awake.wait_synced()
        await writer.wait_synced()
        room = live.session.rooms[live.room("README.md")]
        frozen_reader, frozen_writer = await raw_upgrade(live.port, room_path)
        names = lambda: {c.participant.name for c in room.connections}  # noqa: E731
        await async_wait_until(lambda: "Frozen" in names(), what="the frozen peer joins")
        await async_wait_until(lambda: "Frozen" not in names(), timeout=10, what="the frozen peer is dropped")
        assert await asyncio.wait_for(frozen_reader.read(), 10) is not None  # its socket was closed
        frozen_writer.close()
        await five_pings_answered(live.ws("README.md", name="Counter"))  # five more ping periods
        assert awake.close_code is None and "Awake" in names()  # the peer that answers stays
        writer.doc.get("source", type=Text).insert(0, "still here ")
        awake_text = awake.doc.get("source", type=Text)
        await async_wait_until(lambda: str(awake_text).startswith("still here "), what="an edit after the pings")


async def five_pings_answered(url: str) -> None:
    """Return once a peer at `url` that answers pings by hand has had five: a wait on the
    server's own clock instead of a fixed sleep."""
    import aiohttp

    pings = 0

    async def answer(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal pings
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
                pings += 1

    async with aiohttp.ClientSession() as http, http.ws_connect(url, autoping=False) as ws:
        answering = asyncio.ensure_future(answer(ws))
        try:
            await async_wait_until(lambda: pings >= 5 or answering.done(), timeout=60, what="five pings")
        finally:
            answering.cancel()
        assert pings >= 5, "the server dropped a peer that answered its pings"


async def test_a_client_ping_is_answered(live: Live) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.ws_connect(live.ws("README.md"), autoping=False) as ws:
        await ws.ping(b"are you there")
        while True:
            msg = await asyncio.wait_for(ws.receive(), 10)
            if msg.type is aiohttp.WSMsgType.PONG:
                break
        assert msg.data == b"are you there"
