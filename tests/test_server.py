"""The server over real WebSockets with real pycrdt clients."""

from __future__ import annotations

import asyncio

import aiohttp
from pycrdt import Text

from gitrtc import protocol

from .conftest import Live
from .support import YClient, async_wait_until, get_json


def source(client: YClient) -> Text:
    return client.doc.get("source", type=Text)


async def test_concurrent_edits_converge_and_reach_disk(live: Live) -> None:
    async with live.client("README.md") as a, live.client("README.md", name="Bob", email="bob@example.org") as b:
        await a.wait_synced()
        await b.wait_synced()
        assert str(source(a)) == "# Project\n\nHello world.\n"
        for i in range(20):
            source(a).insert(0, "A")
            source(b).insert(len(source(b)), "B")
            if i % 5 == 0:
                await asyncio.sleep(0)
        expected_len = len("# Project\n\nHello world.\n") + 40
        await async_wait_until(
            lambda: len(str(source(a))) == expected_len == len(str(source(b))) and str(source(a)) == str(source(b)),
            what="convergence",
        )
        text = str(source(a))
        assert text.startswith("A" * 20) and text.endswith("B" * 20)
        disk = live.repo / "README.md"
        await async_wait_until(lambda: disk.read_text() == text, what="write-back to disk")


async def test_multibyte_text_round_trips_to_disk(live: Live) -> None:
    async with live.client("docs/guide.md") as a:
        await a.wait_synced()
        text = source(a)
        pos = len(str(text).encode()[: str(text).encode().index("📊".encode())])  # UTF-8 offset
        text.insert(pos, "é✓")
        expected = "Guide\n=====\n\nText with émojis é✓📊.\n"
        await async_wait_until(lambda: (live.repo / "docs/guide.md").read_text() == expected, what="disk")


async def test_viewer_cannot_edit_but_reads(live: Live) -> None:
    async with live.client("README.md") as editor, live.client("README.md", role="viewer", name="Vic") as viewer:
        await editor.wait_synced()
        await viewer.wait_synced()
        source(viewer).insert(0, "HACK ")
        await async_wait_until(lambda: viewer.auth_messages, what="permission denied")
        assert viewer.auth_messages[0] == protocol.permission_denied("read-only")
        source(editor).insert(0, "ok ")
        await async_wait_until(
            lambda: str(source(viewer)).startswith("HACK ok ") or str(source(viewer)).startswith("ok HACK "),
            what="viewer receives",
        )
        # A barrier instead of a wait: the server had judged HACK (the denial came back) before
        # a third client's marker, and forwards edits in the order it takes them, so HACK would
        # reach the editor before the marker does.
        async with live.client("README.md", name="Marker") as marker:
            await marker.wait_synced()
            source(marker).insert(len(source(marker)), "<marker>")
            await async_wait_until(lambda: str(source(editor)).endswith("<marker>"), what="the marker")
        assert "HACK" not in str(source(editor))
        assert viewer.ws is not None and not viewer.ws.closed
    assert "HACK" not in str(live.session.rooms[live.room("README.md")].doc.get("source", type=Text))


async def test_bad_token_unknown_room_and_stale_epoch_close_codes(live: Live) -> None:
    room = live.room("README.md")
    cases = {
        f"ws://127.0.0.1:{live.port}/rooms/{room}?token=wrong": 4401,
        f"ws://127.0.0.1:{live.port}/rooms/{room}": 4401,
        f"ws://127.0.0.1:{live.port}/rooms/{live.session.manifest.epoch}.nope?token={live.tokens['editor']}": 4404,
        f"ws://127.0.0.1:{live.port}/rooms/..%2F..%2Fetc%2Fpasswd?token={live.tokens['editor']}": 4404,
        f"ws://127.0.0.1:{live.port}/rooms/AAAAAAAA.{room.split('.')[1]}?token={live.tokens['editor']}": 4410,
    }
    for url, code in cases.items():
        async with YClient(url) as client:
            assert await client.wait_closed() == code, url


async def test_garbage_frames_close_only_the_sender(live: Live) -> None:
    async with live.client("README.md") as good, live.client("README.md", name="Mallory") as bad:
        await good.wait_synced()
        await bad.wait_synced()
        await bad.send_raw(b"\x00\x02\xff\xff\xff\xff\x0f garbage")
        assert await bad.wait_closed() == 1007
        source(good).insert(0, "still fine ")
        await async_wait_until(lambda: (live.repo / "README.md").read_text().startswith("still fine "), what="disk")
    async with live.client("README.md", name="Carol") as later:
        await later.wait_synced()
        assert str(source(later)).startswith("still fine # Project")


async def test_api_session_lists_files_and_refuses_bad_tokens(live: Live) -> None:
    status, body = await get_json(f"{live.http}/api/session", live.tokens["editor"])
    assert status == 200
    assert body["role"] == "editor" and body["state"] == "live"
    kinds = {f["path"]: f["kind"] for f in body["files"]}
    assert kinds == {"README.md": "text", "docs/guide.md": "text", "analysis.ipynb": "notebook", "src/tool.py": "text"}
    for f in body["files"]:
        assert all(c.isalnum() or c in "._~:-" for c in f["room"])
    status, body = await get_json(f"{live.http}/api/session", "nope")
    assert status == 401 and "error" in body
    status, body = await get_json(f"{live.http}/api/session", None)
    assert status == 401


async def test_cross_origin_websocket_is_refused(live: Live) -> None:
    async with aiohttp.ClientSession() as http:
        try:
            await http.ws_connect(live.ws("README.md"), headers={"Origin": "http://evil.example"})
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
        else:
            raise AssertionError("cross-origin upgrade was accepted")
        ws = await http.ws_connect(live.ws("README.md"), headers={"Origin": live.http})
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.BINARY
        await ws.close()


async def test_awareness_is_relayed_and_removed_on_disconnect(live: Live) -> None:
    async with live.client("README.md") as a:
        await a.wait_synced()
        b = live.client("README.md", name="Bob")
        await b.connect()
        await b.wait_synced()
        state = b'{"user":{"name":"Bob"}}'
        update = (
            protocol.write_var_uint(1)
            + protocol.write_var_uint(4242)
            + protocol.write_var_uint(1)
            + protocol.write_var_uint(len(state))
            + state
        )
        await b.send_raw(protocol.awareness_frame(update))
        await async_wait_until(lambda: any(b"Bob" in f for f in a.awareness_frames), what="presence")
        await b.close()
        await async_wait_until(lambda: any(b"null" in f for f in a.awareness_frames), what="removal")


async def test_simultaneous_joiners_share_one_room(live: Live) -> None:
    clients = [live.client("src/tool.py", name=f"P{i}") for i in range(8)]
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.gather(*(c.wait_synced() for c in clients))
    for i, c in enumerate(clients):
        source(c).insert(0, f"#{i}\n")
    await async_wait_until(
        lambda: (
            len({str(source(c)) for c in clients}) == 1 and all(f"#{i}\n" in str(source(clients[0])) for i in range(8))
        ),
        what="all joiners converge",
    )
    assert str(source(clients[0])).count("def f():") == 1
    for c in clients:
        await c.close()
