"""Hostile and broken input: floods, fuzzed frames, traversal, failing disks, TLS, --fresh."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from gitrtc import protocol
from gitrtc.documents import open_codec
from gitrtc.errors import ProtocolError
from gitrtc.origins import Participant
from gitrtc.rooms import Connection, Room
from gitrtc.validation import DocumentGuard

from .conftest import FILES, Live
from .support import RTC, MemoryTransport, RtcProcess, YClient, async_wait_until, edit_stored, make_cert, make_repo
from .test_cli import ws_url


@pytest.mark.limits(rate=200.0, burst=20.0)
async def test_a_flood_is_slowed_not_dropped_and_others_go_first(live: Live) -> None:
    async with live.client("README.md", name="Flood") as flood, live.client("README.md") as other:
        await flood.wait_synced()
        await other.wait_synced()
        source = flood.doc.get("source", type=Text)
        started = time.monotonic()
        for _ in range(400):
            source.insert(0, "f")  # 400 update messages, as fast as the client can
        await asyncio.sleep(0)
        other.doc.get("source", type=Text).insert(len(other.doc.get("source", type=Text)), "mine")
        room = live.session.rooms[live.room("README.md")]
        server_text = room.doc.get("source", type=Text)
        await async_wait_until(lambda: str(server_text).endswith("mine"), what="the other client's edit")
        assert str(server_text).count("f") < 400  # served while the flood is still being read
        await async_wait_until(lambda: str(server_text).count("f") == 400, timeout=30, what="every flood update")
        assert time.monotonic() - started >= (400 - 20) / 200 * 0.9  # it was slowed to the rate


def valid_frames() -> list[bytes]:
    doc = Doc(client_id=4242)  # fixed, so hypothesis sees the same frames every time
    text = doc.get("source", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    text += "hello"
    text.insert(2, "XY")
    del text[0:1]
    awareness = (
        protocol.write_var_uint(1)
        + protocol.write_var_uint(7)
        + protocol.write_var_uint(1)
        + protocol.write_var_uint(2)
        + b"{}"
    )
    return [
        protocol.sync_step1(doc),
        protocol.sync_step2(doc.get_update()),
        *(protocol.sync_update(u) for u in updates),
        protocol.awareness_frame(awareness),
        b"\x03",
    ]


def mutated(frame: bytes, data: st.DataObject) -> bytes:
    raw = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
        elif action == "cut" and raw:
            del raw[data.draw(st.integers(0, len(raw) - 1)) :]
        else:
            raw.insert(data.draw(st.integers(0, len(raw))), data.draw(st.integers(0, 255)))
    return bytes(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_frames_never_crash_or_corrupt_a_room(data: st.DataObject) -> None:
    frames = valid_frames()

    async def run() -> None:
        doc = Doc()
        doc.get("source", type=Text).insert(0, "kept")
        room = Room("r", "f.txt", "text", doc, None)
        room.guard = DocumentGuard(doc, open_codec("f.txt", b"kept"), "f.txt")  # decodes every update first
        room.guard.learn(doc.get_update())
        conn = Connection(MemoryTransport(), Participant("Fuzz", "", "editor"))
        await room.join(conn)
        for _ in range(data.draw(st.integers(1, 5))):
            frame = (
                data.draw(st.binary(max_size=64))
                if data.draw(st.booleans())
                else mutated(data.draw(st.sampled_from(frames)), data)
            )
            try:
                await room.receive(conn, frame)
            except ProtocolError:
                pass  # the server closes this connection with 1007; the room must be intact
        text = str(doc.get("source", type=Text))
        assert isinstance(text, str)
        fresh = Doc()
        fresh.apply_update(doc.get_update())  # the room's state still encodes and decodes
        assert str(fresh.get("source", type=Text)) == text
        await conn.close(1000, "")

    asyncio.run(run())


def _u(n: int) -> bytes:
    return protocol.write_var_uint(n)


#: Malformed frames and their fate over the wire: the close code the server answers with,
#: or None when the frame carries nothing for the server and the connection serves on.
BAD_FRAMES: dict[str, tuple[bytes | str, int | None]] = {
    "an empty frame": (b"", 1007),
    "an unknown message type": (b"\x63hello", 1007),
    "a sync message without its step": (b"\x00", 1007),
    "an unknown sync step": (b"\x00\x07\x00", 1007),
    "a payload shorter than its length": (b"\x00\x02\x10abc", 1007),
    "an update that does not decode": (protocol.sync_update(b"\xff\xff\xff\xff"), 1007),
    "a state vector that does not decode": (b"\x00\x00\x03\xff\xff\xff", 1007),
    "awareness that is not JSON": (protocol.awareness_frame(_u(1) + _u(7) + _u(1) + _u(9) + b"{not json"), 1007),
    "awareness cut short": (protocol.awareness_frame(_u(5) + _u(7)), 1007),
    "a text frame": ("hello", 1003),
    "an auth message": (b"\x02\x00", None),
    "an awareness query with trailing bytes": (b"\x03junk", None),
}


async def _fate(client: YClient, frame: bytes | str) -> int | None:
    """Send `frame`, then a sync step 1 on the same connection: the close code if the server
    closed it (frames are handled in order, so the step 1 is never answered), or None when
    the step 2 answer came back (the frame was taken or ignored, and the connection serves)."""
    assert client.ws is not None
    client.synced.clear()
    if isinstance(frame, str):
        await client.ws.send_str(frame)
    else:
        await client.send_raw(frame)
    with contextlib.suppress(ConnectionError):  # already closing: the close code tells
        await client.send_raw(protocol.sync_step1(client.doc))
    await async_wait_until(lambda: client.closed.is_set() or client.synced.is_set(), what="the frame's fate")
    return client.close_code if client.closed.is_set() else None


async def _core_fate(room: Room, frame: bytes) -> int | None:
    """What the core does with `frame` in a copy of `room`: 1007 if it is malformed, else None."""
    doc = Doc()
    doc.apply_update(room.doc.get_update())
    copy = Room("copy", room.path, room.kind, doc, None)
    conn = Connection(MemoryTransport(), Participant("Fuzz", "", "editor"))
    await copy.join(conn)
    try:
        await copy.receive(conn, frame)
    except ProtocolError:
        return 1007
    return None


async def test_each_bad_frame_over_the_wire_meets_its_fate_and_the_session_loses_nothing(live: Live) -> None:
    async with live.client("README.md", name="Saver") as saver:
        await saver.wait_synced()
        saver.doc.get("source", type=Text).insert(0, "saved ")
        await async_wait_until(lambda: (live.repo / "README.md").read_text().startswith("saved "), what="disk")
    for what, (frame, expected) in BAD_FRAMES.items():
        async with live.client("README.md", name="Fuzz") as client:
            await client.wait_synced()
            assert await _fate(client, frame) == expected, what
    mutations = [bytearray(frame) for frame in valid_frames() * 3]
    for i, bad in enumerate(mutations):
        bad[(i * 7) % len(bad)] ^= 0x5A
        async with live.client("README.md", name=f"F{i}") as client:
            await client.wait_synced()
            expected = await _core_fate(live.session.rooms[live.room("README.md")], bytes(bad))
            assert await _fate(client, bytes(bad)) == expected, (i, bytes(bad))
    async with live.client("README.md", name="Second") as good:  # a second client is served
        await good.wait_synced()
        text = good.doc.get("source", type=Text)
        assert str(text).startswith("saved ")
        text.insert(0, "ok ")
        await async_wait_until(lambda: (live.repo / "README.md").read_text().startswith("ok saved "), what="disk")
        room = live.session.rooms[live.room("README.md")]
        replay = Doc()  # and the session's log still holds every saved edit
        for update in await live.session.store.updates(live.room("README.md")):
            replay.apply_update(update)
        assert str(replay.get("source", type=Text)) == str(room.doc.get("source", type=Text))
        assert str(replay.get("source", type=Text)).startswith("ok saved ")


async def test_api_paths_do_not_traverse(live: Live) -> None:
    token = live.tokens["editor"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for path in (
            "/api/original/..%2F..%2Fconfig",
            "/api/original/../../.git/config",
            "/static/..%2F..%2Fsession.py",
            "/static/%2e%2e/__init__.py",
        ):
            async with http.get(live.http + path) as response:
                assert response.status in (403, 404), path
                assert b"[core]" not in await response.read()


async def test_write_back_failure_is_reported_and_recovers(live: Live) -> None:
    target = live.repo / "src" / "tool.py"
    async with live.client("src/tool.py") as client:
        await client.wait_synced()
        target.unlink()
        target.mkdir()  # the path cannot be replaced by a file now (as a full or broken disk)
        client.doc.get("source", type=Text).insert(0, "# edit\n")
        state = live.session.disk.files["src/tool.py"]
        await async_wait_until(lambda: state.error, what="the failure to be reported")
        assert "not saved" in state.label
        assert any("cannot write" in e for e in live.session.events)
        shutil.rmtree(target)
        client.doc.get("source", type=Text).insert(0, "# again\n")
        # the file lands on disk (worker thread) a moment before the loop clears the error: wait for both
        await async_wait_until(
            lambda: (
                target.is_file()
                and target.read_text().startswith("# again\n# edit\n")
                and state.error is None
                and "not saved" not in state.label
            ),
            what="the next write-back restores it and clears the error",
        )


def test_fresh_saves_the_unfinished_result_as_a_patch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    first = RtcProcess(repo, ["README.md"])
    try:
        first.wait_ready()
        asyncio.run(edit_stored(ws_url(first, "README.md", "A", "a@example.org"), lambda t: t.insert(0, "Unfinished ")))
    finally:
        first.kill()
    (repo / "README.md").write_text("# Project\n\nHello world.\n")  # the owner resets the file
    second = RtcProcess(repo, ["README.md", "--fresh"])
    try:
        info = second.wait_ready()
        out, _ = second.terminate()
    finally:
        second.kill()
    patches = list((repo / ".git" / "rtc").glob("unfinished-*.patch"))
    assert len(patches) == 1 and str(patches[0]) in out.replace("\n", "")
    assert "+Unfinished # Project" in patches[0].read_text()
    check = subprocess.run(["git", "apply", "--check", str(patches[0])], cwd=repo, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert info["session"]  # a new session was served


def test_tls_and_the_warning_for_open_binds(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    cert, key = make_cert(tmp_path, "cert")
    proc = RtcProcess(repo, ["README.md", "--certfile", str(cert), "--keyfile", str(key)])
    try:
        info = proc.wait_ready()
        assert info["url"].startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        room = info["url"]  # only the token is needed from it
        token = room.split("#t=")[1]

        async def over_tls() -> int:
            async with aiohttp.ClientSession() as http:
                async with http.get(
                    f"https://127.0.0.1:{info['port']}/api/session",
                    ssl=context,
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    return response.status

        assert asyncio.run(over_tls()) == 200
        assert (
            subprocess.run([*RTC, "status"], cwd=repo, capture_output=True).returncode == 0
        )  # rtc status reaches it over TLS
        stopped = subprocess.run([*RTC, "stop", "--no-commit"], cwd=repo, capture_output=True, text=True)
        assert stopped.returncode == 0 and "session ended" in stopped.stderr, stopped.stderr  # rtc stop too
        assert proc.proc.wait(timeout=30) == 0
    finally:
        proc.terminate()
        proc.kill()
    open_bind = RtcProcess(repo, ["README.md", "--host", "0.0.0.0"])
    try:
        open_bind.wait_ready()
        out, _ = open_bind.terminate(signal.SIGTERM)
    finally:
        open_bind.kill()
    assert "without TLS" in out
