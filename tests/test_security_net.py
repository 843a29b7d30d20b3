"""Issue 13, the network side: the session room's state, presence floods and forgeries,
slowloris connections, and Host names (DNS rebinding). Real server, real sockets."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pycrdt import Map, Text

from gitrtc import protocol
from gitrtc.launch import Plan, prepare
from gitrtc.limits import Limits
from gitrtc.server import guard
from gitrtc.server.app import serve

from .conftest import Live, live_session
from .support import YClient, async_wait_until, get_json

PATHS = ["README.md", "docs", "analysis.ipynb", "src"]


def awareness_update(*entries: tuple[int, int, object]) -> bytes:
    """An awareness message of (client id, clock, state) entries."""
    out = protocol.write_var_uint(len(entries))
    for client_id, clock, state in entries:
        raw = b"null" if state is None else json.dumps(state).encode()
        out += protocol.write_var_uint(client_id) + protocol.write_var_uint(clock)
        out += protocol.write_var_uint(len(raw)) + raw
    return protocol.awareness_frame(out)


def denials(client: YClient) -> list[bytes]:
    return [m for m in client.auth_messages if m[:2] == bytes([protocol.MessageType.AUTH, 0])]


# -- the session room -------------------------------------------------------------------


async def test_an_editor_cannot_write_the_session_state(live: Live) -> None:
    async with live.client("session", role="viewer", name="Vic") as watcher, live.client("session") as editor:
        await watcher.wait_synced()
        await editor.wait_synced()
        editor.doc.get("session", type=Map)["state"] = "ended"
        await async_wait_until(lambda: denials(editor), what="permission denied")
        assert b"read-only" in denials(editor)[0]
        room = live.session.rooms[live.session.manifest.session_room]
        assert room.doc.get("session", type=Map)["state"] == "live"
    # nothing of it was stored or forwarded: a new client reads the server's state
    async with live.client("session", role="viewer", name="Late") as late:
        await late.wait_synced()
        assert late.doc.get("session", type=Map)["state"] == "live"
    assert watcher.doc.get("session", type=Map)["state"] == "live"


async def test_the_server_still_announces_the_end(live: Live) -> None:
    async with live.client("session", role="viewer") as watcher:
        await watcher.wait_synced()
        result = await live.session.end("end", commit=False)
        assert result.ended
        await watcher.wait_closed()
        assert watcher.close_code == 4410
        assert watcher.doc.get("session", type=Map)["state"] == "ended"


# -- presence -----------------------------------------------------------------------------


async def test_a_flood_of_client_ids_is_refused_and_not_relayed(live: Live) -> None:
    async with live.client("README.md", role="viewer", name="Flood") as flood, live.client("README.md") as other:
        await flood.wait_synced()
        await other.wait_synced()
        await flood.send_raw(awareness_update(*((1000 + i, 1, {"user": {"name": f"n{i}"}}) for i in range(10_000))))
        await async_wait_until(lambda: denials(flood), what="the flood refused")
        assert b"too many client ids" in denials(flood)[0]
        # the next, honest message arrives; the flood never did
        await flood.send_raw(awareness_update((77, 1, {"user": {"name": "Flood", "role": "viewer"}})))
        await async_wait_until(lambda: any(b'"Flood"' in f for f in other.awareness_frames), what="presence")
        assert all(len(f) < 1000 for f in other.awareness_frames)
        room = live.session.rooms[live.room("README.md")]
        assert len(room.awareness.states) <= 3  # the server's, the honest flood's
        # a joiner downloads only the real presence
        async with live.client("README.md", name="Joiner") as joiner:
            await joiner.wait_synced()
            await async_wait_until(lambda: joiner.awareness_frames, what="presence for the joiner")
            assert all(len(f) < 1000 for f in joiner.awareness_frames)


async def test_nobody_can_update_or_remove_another_connections_presence(live: Live) -> None:
    async with (
        live.client("README.md", name="Ann") as ann,
        live.client("README.md", name="Eve") as eve,
        live.client("README.md", role="viewer", name="Vic") as vic,
    ):
        for c in (ann, eve, vic):
            await c.wait_synced()
        await ann.send_raw(awareness_update((500, 1, {"user": {"name": "Ann", "color": "#123456"}})))
        await async_wait_until(lambda: any(b"Ann" in f for f in vic.awareness_frames), what="Ann's presence")
        await eve.send_raw(awareness_update((500, 2, {"user": {"name": "Not Ann"}})))
        await eve.send_raw(awareness_update((500, 3, None)))
        await async_wait_until(lambda: len(denials(eve)) == 2, what="both refused")
        assert all(b"not your client id" in d for d in denials(eve))
        await eve.send_raw(awareness_update((600, 1, {"user": {"name": "Eve"}})))
        await async_wait_until(lambda: any(b'"Eve"' in f for f in vic.awareness_frames), what="Eve's own presence")
        assert not any(b"Not Ann" in f for f in vic.awareness_frames)
        room = live.session.rooms[live.room("README.md")]
        assert room.awareness.states[500]["user"]["name"] == "Ann"


async def test_the_same_person_reconnecting_takes_their_presence_over(live: Live) -> None:
    async with live.client("README.md", name="Ann") as old, live.client("README.md", name="Vic", role="viewer") as vic:
        await old.wait_synced()
        await vic.wait_synced()
        await old.send_raw(awareness_update((700, 1, {"user": {"name": "Ann"}})))
        await async_wait_until(lambda: any(b'"Ann"' in f for f in vic.awareness_frames), what="Ann")
        async with live.client("README.md", name="Ann") as new:  # same link, name and email
            await new.wait_synced()
            await new.send_raw(awareness_update((700, 2, {"user": {"name": "Ann", "color": "#0a0"}})))
            await async_wait_until(lambda: any(b"#0a0" in f for f in vic.awareness_frames), what="the new state")
            await old.close()
            room = live.session.rooms[live.room("README.md")]
            await async_wait_until(
                lambda: all(c.participant.name != "Ann" or c.awareness_ids for c in room.connections),
                what="the old connection left",
            )
            assert room.awareness.states[700]["user"]["color"] == "#0a0"
            assert denials(new) == []


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ({"name": "V", "color": "red; background: url(https://evil.example/x.png)"}, b"user.color"),
        ({"name": "V", "color": "#12345g"}, b"user.color"),
        ({"name": "V", "color": "#12345"}, b"user.color"),
        ({"name": "V", "colorLight": "#fff;position:fixed"}, b"user.colorLight"),
        ({"name": "V" * 81}, b"user.name"),
        ({"name": "V", "role": "editor"}, b"cannot claim"),
        ({"name": "V", "role": "owner"}, b"cannot claim"),
        ("not an object", b"user must be"),
        ({"name": "V", "sid": ["x"]}, b"user.sid"),
    ],
)
async def test_invalid_presence_fields_never_reach_the_others(live: Live, user: object, why: bytes) -> None:
    async with live.client("README.md", role="viewer", name="V") as viewer, live.client("README.md") as other:
        await viewer.wait_synced()
        await other.wait_synced()
        await viewer.send_raw(awareness_update((900, 1, {"user": user})))
        await async_wait_until(lambda: denials(viewer), what="refused")
        assert why in denials(viewer)[0]
        await viewer.send_raw(awareness_update((900, 2, {"user": {"name": "V", "color": "#abc", "role": "viewer"}})))
        await async_wait_until(lambda: any(b"#abc" in f for f in other.awareness_frames), what="the valid state")
        assert not any(b"evil" in f or b"position" in f or b"VVVV" in f for f in other.awareness_frames)


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ({"file": 5}, b"file must be"),
        ({"place": {"file": 5}}, b"place must be"),
        ({"place": {"file": "a.md", "line": "9"}}, b"place must be"),
        ({"place": "README.md"}, b"place must be"),
        ({"cursor": {"anchor": "x", "head": None}}, b"cursor must be"),
        ({"cursor": {"anchor": {"type": {"client": "a", "clock": 1}}, "head": None}}, b"cursor must be"),
    ],
)
async def test_presence_fields_the_page_reads_must_have_their_shape(
    live: Live, state: dict[str, object], why: bytes
) -> None:
    async with live.client("session", name="Odd") as odd, live.client("session", name="Other") as other:
        await odd.wait_synced()
        await other.wait_synced()
        await odd.send_raw(awareness_update((910, 1, {"user": {"name": "Odd"}, **state})))
        await async_wait_until(lambda: denials(odd), what="refused")
        assert why in denials(odd)[0]
        at = {"type": {"client": 1, "clock": 2}, "tname": None, "item": None, "assoc": 0}
        good = {
            "user": {"name": "Odd", "sid": "abc"},
            "file": "README.md",
            "place": {"file": "README.md", "cell": None, "line": 3},
            "cursor": {"anchor": at, "head": at},
        }
        await odd.send_raw(awareness_update((910, 2, good)))
        await async_wait_until(lambda: any(b'"Odd"' in f for f in other.awareness_frames), what="the valid state")
        assert len([f for f in other.awareness_frames if b'"Odd"' in f]) == 1


async def test_a_large_state_is_refused(live: Live) -> None:
    async with live.client("README.md", name="Big") as big, live.client("README.md", name="Other") as other:
        await big.wait_synced()
        await other.wait_synced()
        await big.send_raw(awareness_update((901, 1, {"user": {"name": "Big"}, "junk": "x" * 20_000})))
        await async_wait_until(lambda: denials(big), what="refused")
        assert b"at most" in denials(big)[0]
        await big.send_raw(awareness_update((901, 2, {"user": {"name": "Big"}})))
        await async_wait_until(lambda: any(b'"Big"' in f for f in other.awareness_frames), what="the small state")
        assert not any(b"xxxx" in f for f in other.awareness_frames)


@pytest.mark.limits(presence_rate=100.0, presence_burst=10.0)
async def test_presence_messages_are_slowed_down(live: Live) -> None:
    async with live.client("README.md", name="Fast") as fast, live.client("README.md", name="Other") as other:
        await fast.wait_synced()
        await other.wait_synced()
        started = time.monotonic()
        for clock in range(1, 211):
            await fast.send_raw(awareness_update((31, clock, {"user": {"name": "Fast", "n": clock}})))
        await async_wait_until(lambda: any(b'"n": 210}' in f for f in other.awareness_frames), what="the last")
        assert time.monotonic() - started >= 1.8  # (210 - 10) / 100 per second
        # other kinds of messages on other connections are not held up
        source = other.doc.get("source", type=Text)
        source.insert(0, "still quick ")
        await async_wait_until(
            lambda: str(fast.doc.get("source", type=Text)).startswith("still quick "), 2.0, what="an edit"
        )


# -- slowloris ------------------------------------------------------------------------------


@pytest.fixture
async def quick(repo: Path) -> AsyncIterator[tuple[Live, guard.ConnectionGuard]]:
    """A session whose pre-request timeout is 1 s and per-address cap is 20, with its guard."""
    launched = await prepare(Plan(cwd=repo, paths=PATHS, limits=Limits(idle_timeout=1.0, pending_per_address=20)))
    runner, port = await serve(launched.session, "127.0.0.1", 0)
    try:
        yield Live(repo, launched.session, port), runner.app[guard.GUARD]
    finally:
        await runner.cleanup()
        await launched.session.close()
        launched.lock.close()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds`."""
    try:
        data = await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    while data:  # an answer (e.g. 408/400) before the close is fine
        try:
            data = await asyncio.wait_for(reader.read(65536), seconds)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return True


async def test_silent_and_slow_connections_are_closed_and_others_served(
    quick: tuple[Live, guard.ConnectionGuard],
) -> None:
    live, _ = quick
    silent = [await asyncio.open_connection("127.0.0.1", live.port) for _ in range(10)]
    slow = [await asyncio.open_connection("127.0.0.1", live.port) for _ in range(5)]

    async def dribble(writer: asyncio.StreamWriter) -> None:
        request = f"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nX-Slow: ".encode()
        try:
            for i in range(40):  # one byte every 0.1 s: the headers would take 4 s or more
                writer.write(request[i : i + 1] if i < len(request) else b"a")
                await writer.drain()
                await asyncio.sleep(0.1)
        except ConnectionError:
            return

    dribblers = [asyncio.ensure_future(dribble(w)) for _, w in slow]
    # meanwhile a normal client is served
    status, body = await get_json(f"{live.http}/api/session", live.tokens["editor"])
    assert status == 200 and body["role"] == "editor"
    results = await asyncio.gather(*(closed_within(r, 5.0) for r, _ in silent + slow))
    assert all(results), results
    await asyncio.gather(*dribblers)
    for _, w in silent + slow:
        w.close()
    status, _ = await get_json(f"{live.http}/api/session", live.tokens["viewer"])
    assert status == 200


async def test_connections_without_a_token_are_capped_per_address(quick: tuple[Live, guard.ConnectionGuard]) -> None:
    live, guardian = quick
    async with live.client("README.md") as authenticated:  # counted only until its token is seen
        await authenticated.wait_synced()
        idle = [await asyncio.open_connection("127.0.0.1", live.port) for _ in range(20)]
        await async_wait_until(lambda: guardian.pending == 20, what="20 waiting connections")
        # a 21st closes the oldest at once (not after the 1 s timeout); a normal client
        # sharing the flood's address is served
        more = [await asyncio.open_connection("127.0.0.1", live.port) for _ in range(5)]
        assert all(await asyncio.gather(*(closed_within(r, 0.9) for r, _ in idle[:5])))
        assert guardian.evicted == 5 and guardian.pending == 20
        status, _ = await get_json(f"{live.http}/api/session", live.tokens["editor"])
        assert status == 200
        for _, w in idle + more:
            w.close()
        await async_wait_until(lambda: guardian.pending == 0, what="the idle ones gone")
        assert authenticated.ws is not None and not authenticated.ws.closed


async def test_the_server_raises_the_open_files_limit_to_the_hard_limit(repo: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(soft, hard - 1, 1024) if hard != resource.RLIM_INFINITY else min(soft, 1024)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        async with live_session(repo, PATHS):
            raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raised > low and (raised == hard or hard == resource.RLIM_INFINITY)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- Host names ---------------------------------------------------------------------------


async def request_with_host(live: Live, path: str, host: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Send a request with this Host header over a raw socket; (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.decode("latin-1").partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_other_host_names_are_refused_on_every_route(live: Live) -> None:
    token = live.tokens["editor"]
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    room = live.room("README.md")
    for path, headers in [
        ("/", None),
        ("/api/session?token=" + token, None),
        (f"/rooms/{room}?token={token}", upgrade),
    ]:
        status, body = await request_with_host(live, path, f"rebound.evil.example:{live.port}", headers)
        assert status == 421, (path, status)
        assert "does not answer" in json.loads(body)["error"]
    # the names it serves on still work
    for host in (f"127.0.0.1:{live.port}", f"localhost:{live.port}", f"[::1]:{live.port}", "localhost"):
        status, _ = await request_with_host(live, "/api/session?token=" + token, host)
        assert status == 200, host
    live.session.url = f"http://studio.example.org:{live.port}/#t={token}"
    status, _ = await request_with_host(live, "/api/session?token=" + token, f"Studio.Example.org:{live.port}")
    assert status == 200
    status, _ = await request_with_host(live, "/", "evil.example@127.0.0.1")
    assert status in (400, 421)


async def test_a_websocket_through_another_host_name_is_refused(live: Live) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(live.ws("README.md"), headers={"Host": f"evil.example:{live.port}"})
        assert refused.value.status == 421


def test_host_names_answered() -> None:
    names = {"localhost", "studio.lan"}
    for host in ("Studio.LAN:8000", "studio.lan.", "localhost", "[::1]:1", "[fe80::1]", "10.0.0.5:80", None):
        assert guard.host_allowed(host, names), host
    for host in (
        "evil.example",
        "evil.example:80",
        "evil.example@127.0.0.1",
        "",
        "studio.lan:x",
        "127.0.0.1.evil.example",
    ):
        assert not guard.host_allowed(host, names), host
